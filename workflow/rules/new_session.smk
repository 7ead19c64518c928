# A new, unseen session (leave one animal out), held out twice: the `fit` rule trains
# multi_without/<session> on the other sessions' train parts; `CEBRA.adapt` fits the held-out
# session's encoder on its train part; every score is computed on its test part, next to its
# single-session and full multi-session held-out fits and an untrained encoder.


rule adapt_session:
    input:
        **session_tables(SESSIONS),
        model=fit_file(paths.FIT_MODEL, "{fold}", "{seed}", "multi_without/{session}"),
    output:
        model=paths.ADAPTED_MODEL,
        embedding=paths.ADAPTED_EMBEDDING,
        untrained=paths.UNTRAINED_EMBEDDING,
    log:
        "logs/new_session/{fold}/seed{seed}/adapt_{session}.log",
    benchmark:
        "results/benchmarks/adapt_session/{fold}/seed{seed}/{session}.tsv"
    conda:
        "../../envs/fit.yaml"
    threads: config["fit_threads"]
    resources:
        **gpu_resources(),
    params:
        sessions=SESSIONS,
        trained=plan.trained,
        split=lambda wildcards: plan.split_params(wildcards.fold),
        iterations=lookup(dpath="new_session/iterations", within=config),
        device=lookup(dpath="device", within=config),
        labels=lookup(dpath="labels", within=config),
    script:
        "../scripts/adapt_session.py"


rule score_new_session:
    input:
        unpack(lambda wildcards: plan.new_session_inputs(wildcards.session)),
    output:
        table=paths.NEW_SESSION,
        csv=report(
            paths.NEW_SESSION_CSV,
            caption="../report/new_session_table.rst",
            category="New session",
        ),
    log:
        "logs/analysis/new_session_{session}.log",
    benchmark:
        "results/benchmarks/score_new_session/{session}.tsv"
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    params:
        sessions=SESSIONS,
        runs=plan.new_session_runs(),
        bins=lookup(dpath="analysis/consistency_bins", within=config),
        neighbors=lookup(dpath="analysis/decoding_neighbors", within=config),
        min_coverage=lookup(dpath="evaluation/min_coverage", within=config),
        label=lookup(dpath="analysis/consistency_label", within=config),
    script:
        "../scripts/score_new_session.py"


rule plot_new_session:
    input:
        rules.score_new_session.output.table,
    output:
        png=report(
            paths.figure("new_session_{session}"),
            caption="../report/new_session.rst",
            category="New session",
        ),
        pdf=paths.figure("new_session_{session}", "pdf"),
    log:
        "logs/figures/new_session_{session}.log",
    benchmark:
        "results/benchmarks/plot_new_session/{session}.tsv"
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    params:
        decode=lookup(dpath="evaluation/score", within=config),
    script:
        "../scripts/plot_new_session.py"
