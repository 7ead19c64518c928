# Analysis: alignment to the first session and consistency across sessions (whole-session fits,
# the notebook's), held-out decoding of every label column (fits on train parts, scored on test parts), and
# the statistics over seeds and rat pairs.


rule align:
    input:
        lambda wildcards: plan.kind_embeddings(wildcards.kind, wildcards.seed),
    output:
        paths.ALIGNED,
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
        top_k=lookup(dpath="analysis/alignment_top_k", within=config),
    script:
        "../scripts/align.py"


rule consistency:
    input:
        expand(paths.ALIGNED, seed=plan.seeds, kind=["single", "multi"]),
    output:
        table=paths.CONSISTENCY,
        csv=report(
            paths.CONSISTENCY_CSV,
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
        bins=lookup(dpath="analysis/consistency_bins", within=config),
        label=lookup(dpath="analysis/consistency_label", within=config),
    script:
        "../scripts/consistency.py"


rule decoding:
    input:
        **plan.heldout_inputs(),
    output:
        table=paths.DECODING,
        csv=report(
            paths.DECODING_CSV,
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
        neighbors=lookup(dpath="analysis/decoding_neighbors", within=config),
        top_k=lookup(dpath="analysis/alignment_top_k", within=config),
        min_coverage=lookup(dpath="evaluation/min_coverage", within=config),
        k_grid=plan.decoding_k_grid(),
        label=lookup(dpath="analysis/consistency_label", within=config),
    script:
        "../scripts/decoding.py"


rule statistics:
    input:
        consistency=rules.consistency.output.table,
        decoding=rules.decoding.output.table,
        single=plan.whole_session_embeddings("single"),
        multi=plan.whole_session_embeddings("multi"),
    output:
        table=paths.STATISTICS,
        csv=report(
            paths.STATISTICS_CSV,
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
