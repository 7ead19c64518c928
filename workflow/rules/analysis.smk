# Analysis: alignment to the first session, consistency across sessions, position decoding.


rule align:
    input:
        embeddings=embeddings,
        sessions=session_tables,
    output:
        "results/alignment/{kind}.parquet",
    log:
        "logs/analysis/align_{kind}.log",
    params:
        sessions=SESSIONS,
        top_k=config["analysis"].get("alignment_top_k", 5),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/align.py"


rule consistency:
    input:
        single="results/alignment/single.parquet",
        multi="results/alignment/multi.parquet",
    output:
        "results/tables/consistency.parquet",
    log:
        "logs/analysis/consistency.log",
    params:
        sessions=SESSIONS,
        bins=config["analysis"].get("consistency_bins", 100),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/consistency.py"


rule decoding:
    input:
        single="results/alignment/single.parquet",
        multi="results/alignment/multi.parquet",
    output:
        table="results/tables/decoding.parquet",
        csv=report(
            "results/tables/decoding.csv",
            caption="../report/decoding.rst",
            category="Decoding",
        ),
    log:
        "logs/analysis/decoding.log",
    params:
        sessions=SESSIONS,
        neighbors=config["analysis"].get("decoding_neighbors", 36),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/decoding.py"
