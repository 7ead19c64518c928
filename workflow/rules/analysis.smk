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
    params:
        sessions=SESSIONS,
        top_k=config["analysis"]["alignment_top_k"],
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/align.py"


rule consistency:
    input:
        single=all_seeds("results/alignment/seed{seed}/single.parquet"),
        multi=all_seeds("results/alignment/seed{seed}/multi.parquet"),
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
    params:
        sessions=SESSIONS,
        seeds=SEEDS,
        bins=config["analysis"]["consistency_bins"],
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/consistency.py"


rule decoding:
    input:
        [path for group in heldout_groups() for path in group["paths"]],
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
    params:
        groups=heldout_groups(),
        sessions=SESSIONS,
        neighbors=config["analysis"]["decoding_neighbors"],
        top_k=config["analysis"]["alignment_top_k"],
        min_coverage=config["evaluation"]["min_coverage"],
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/decoding.py"


rule statistics:
    input:
        consistency="results/tables/consistency.parquet",
        decoding="results/tables/decoding.parquet",
        single=[fit_file("embedding.parquet", "all", seed, f"single/{s}") for seed in SEEDS for s in SESSIONS],
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
    params:
        sessions=SESSIONS,
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/statistics.py"
