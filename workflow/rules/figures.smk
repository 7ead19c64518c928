# Figures, registered for the Snakemake report (snakemake --report report.html). The notebook's
# figures show the first seed's whole-session fits; the summary figure shows every seed.


rule plot_embeddings:
    input:
        single=fill(paths.ALIGNED, seed=FIRST_SEED, kind="single"),
        multi=fill(paths.ALIGNED, seed=FIRST_SEED, kind="multi"),
    output:
        png=report(
            paths.figure("embeddings"),
            caption="../report/embeddings.rst",
            category="Embeddings",
        ),
        pdf=paths.figure("embeddings", "pdf"),
    log:
        "logs/figures/embeddings.log",
    benchmark:
        "results/benchmarks/plot_embeddings/plot_embeddings.tsv"
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    params:
        sessions=SESSIONS,
        colour_by=lookup(dpath="figures/colour_by", within=config),
    script:
        "../scripts/plot_embeddings.py"


rule plot_embeddings_3d:
    input:
        single=rules.plot_embeddings.input.single,
        multi=rules.plot_embeddings.input.multi,
    output:
        report(
            paths.EMBEDDINGS_3D,
            caption="../report/embeddings_3d.rst",
            category="Embeddings",
            subcategory="Interactive 3-D, one page per rat",
            labels={"rat": "{session}"},
        ),
    log:
        "logs/figures/embeddings_3d/{session}.log",
    benchmark:
        "results/benchmarks/plot_embeddings_3d/{session}.tsv"
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    params:
        sessions=SESSIONS,
        colour_by=lookup(dpath="figures/colour_by", within=config),
    script:
        "../scripts/plot_embeddings_3d.py"


rule plot_consistency:
    input:
        rules.consistency.output.table,
    output:
        png=report(
            paths.figure("consistency"),
            caption="../report/consistency.rst",
            category="Consistency",
        ),
        pdf=paths.figure("consistency", "pdf"),
    log:
        "logs/figures/consistency.log",
    benchmark:
        "results/benchmarks/plot_consistency/plot_consistency.tsv"
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    params:
        sessions=SESSIONS,
        seed=int(FIRST_SEED),
    script:
        "../scripts/plot_consistency.py"


rule plot_loss:
    input:
        single=[
            fit_file(paths.FIT_LOSS, "all", FIRST_SEED, fit)
            for fit in plan.kind_fits("single")
        ],
        multi=fit_file(paths.FIT_LOSS, "all", FIRST_SEED, "multi"),
    output:
        png=report(
            paths.figure("loss"),
            caption="../report/loss.rst",
            category="Training",
        ),
        pdf=paths.figure("loss", "pdf"),
    log:
        "logs/figures/loss.log",
    benchmark:
        "results/benchmarks/plot_loss/plot_loss.tsv"
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    params:
        sessions=SESSIONS,
        batch_size=lookup(dpath="cebra/batch_size", within=config),
    script:
        "../scripts/plot_loss.py"


rule plot_summary:
    input:
        statistics=rules.statistics.output.table,
    output:
        png=report(
            paths.figure("summary"),
            caption="../report/summary.rst",
            category="Statistics",
        ),
        pdf=paths.figure("summary", "pdf"),
    log:
        "logs/figures/summary.log",
    benchmark:
        "results/benchmarks/plot_summary/plot_summary.tsv"
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    params:
        sessions=SESSIONS,
        decode=lookup(dpath="evaluation/score", within=config),
    script:
        "../scripts/plot_summary.py"
