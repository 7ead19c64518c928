# Figures, registered for the Snakemake report (snakemake --report report.html).


rule plot_embeddings:
    input:
        single="results/alignment/single.parquet",
        multi="results/alignment/multi.parquet",
    output:
        report(
            "results/figures/embeddings.png",
            caption="../report/embeddings.rst",
            category="Embeddings",
        ),
    log:
        "logs/figures/embeddings.log",
    params:
        sessions=SESSIONS,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_embeddings.py"


rule plot_consistency:
    input:
        "results/tables/consistency.parquet",
    output:
        report(
            "results/figures/consistency.png",
            caption="../report/consistency.rst",
            category="Consistency",
        ),
    log:
        "logs/figures/consistency.log",
    params:
        sessions=SESSIONS,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_consistency.py"


rule plot_loss:
    input:
        single=expand("results/fits/single/{session}/loss.parquet", session=SESSIONS),
        multi="results/fits/multi/loss.parquet",
    output:
        report(
            "results/figures/loss.png",
            caption="../report/loss.rst",
            category="Training",
        ),
    log:
        "logs/figures/loss.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_loss.py"

