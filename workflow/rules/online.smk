# Online use (`snakemake online`): the held-out session replayed as if live. The `fit` rule trains a
# causal leave-one-out fit (split online: whole sessions, the window ending at the bin it embeds) and
# its centred twin (split all); one job adapts the held-out session into both from its first seconds,
# streams the rest bin by bin through the causal one and embeds it in one batch through the centred one.


rule online_session:
    input:
        **session_tables(SESSIONS),
        model=fit_file(paths.FIT_MODEL, ONLINE, FIRST_SEED, "multi_without/{session}"),
        offline=fit_file(paths.FIT_MODEL, "all", FIRST_SEED, "multi_without/{session}"),
    output:
        table=paths.ONLINE,
        csv=report(
            paths.ONLINE_CSV,
            caption="../report/online_table.rst",
            category="Online",
        ),
    log:
        "logs/online/{session}.log",
    benchmark:
        "results/benchmarks/online_session/{session}.tsv"
    conda:
        "../../envs/fit.yaml"
    threads: 1  # the latency per bin is measured on one CPU thread
    resources:
        **gpu_resources(),
    params:
        sessions=SESSIONS,
        trained=plan.trained,
        seconds=lookup(dpath="online/seconds", within=config),
        bin_seconds=lookup(dpath="online/bin_seconds", within=config),
        iterations=plan.online_iterations(),
        device=lookup(dpath="device", within=config),
        score=lookup(dpath="evaluation/score", within=config),
        neighbors=lookup(dpath="analysis/decoding_neighbors", within=config),
        labels=lookup(dpath="labels", within=config),
    script:
        "../scripts/online_session.py"


rule plot_online:
    input:
        rules.online_session.output.table,
    output:
        png=report(
            paths.figure("online_{session}"),
            caption="../report/online.rst",
            category="Online",
        ),
        pdf=paths.figure("online_{session}", "pdf"),
    log:
        "logs/figures/online_{session}.log",
    benchmark:
        "results/benchmarks/plot_online/{session}.tsv"
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/plot_online.py"


rule online:
    input:
        lambda wildcards: plan.online_targets(),
