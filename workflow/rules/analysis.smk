# Analysis: alignment to the first session and consistency across sessions (whole-session fits,
# the notebook's), held-out position decoding (fits on train parts, scored on test parts), and
# the statistics over seeds and rat pairs.


rule align:
    input:
        kind_embeddings,
    output:
        "results/alignment/seed{seed}/{kind}.parquet",
    log:
        "logs/analysis/align/seed{seed}/{kind}.log",
    benchmark:
        "results/benchmarks/align/seed{seed}/{kind}.tsv"
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    params:
        sessions=SESSIONS,
        top_k=config["analysis"]["alignment_top_k"],
    script:
        "../scripts/align.py"


rule consistency:
    input:
        single=all_seeds(rules.align.output[0], kind="single"),
        multi=all_seeds(rules.align.output[0], kind="multi"),
    output:
        table="results/tables/consistency.parquet",
        csv=report(
            "results/tables/consistency.csv",
            caption="../report/consistency_table.rst",
            category="Consistency",
        ),
    log:
        "logs/analysis/consistency.log",
    benchmark:
        "results/benchmarks/consistency/consistency.tsv"
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    params:
        sessions=SESSIONS,
        seeds=SEEDS,
        bins=config["analysis"]["consistency_bins"],
    script:
        "../scripts/consistency.py"


rule decoding:
    input:
        [path for group in plan.heldout_groups() for path in group["paths"]],
    output:
        table="results/tables/decoding.parquet",
        csv=report(
            "results/tables/decoding.csv",
            caption="../report/decoding.rst",
            category="Decoding",
        ),
    log:
        "logs/analysis/decoding.log",
    benchmark:
        "results/benchmarks/decoding/decoding.tsv"
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    params:
        groups=plan.heldout_groups(),
        sessions=SESSIONS,
        neighbors=config["analysis"]["decoding_neighbors"],
        top_k=config["analysis"]["alignment_top_k"],
        min_coverage=config["evaluation"]["min_coverage"],
        k_grid=plan.decoding_k_grid(),
    script:
        "../scripts/decoding.py"


rule statistics:
    input:
        consistency=rules.consistency.output.table,
        decoding=rules.decoding.output.table,
        single=[
            fit_file("embedding.parquet", "all", seed, f"single/{s}")
            for seed in SEEDS
            for s in SESSIONS
        ],
        multi=all_seeds(fit_file("embedding.parquet", "all", "{seed}", "multi")),
    output:
        table="results/tables/statistics.parquet",
        csv=report(
            "results/tables/statistics.csv",
            caption="../report/statistics.rst",
            category="Statistics",
        ),
    log:
        "logs/analysis/statistics.log",
    benchmark:
        "results/benchmarks/statistics/statistics.tsv"
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    params:
        sessions=SESSIONS,
    script:
        "../scripts/statistics.py"
