# Parameter sweeps (`snakemake sweep`): every grid point x seed is a job of the one fit rule, on the
# split sweep/<point> (train parts without their validation parts; the plan names the points),
# so --cores or a cluster runs them side by side. One job then scores them on the validation parts,
# chooses, and scores the chosen point (and the reference) on the test parts.


rule sweep_table:
    input:
        unpack(lambda wildcards: plan.sweep_inputs()),
    output:
        table=paths.SWEEP,
        csv=report(
            paths.SWEEP_CSV,
            caption="../report/sweep_table.rst",
            category="Parameter sweep",
        ),
        chosen=paths.SWEEP_CHOSEN,
    log:
        "logs/sweep/table.log",
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    params:
        runs=lambda wildcards: plan.sweep_runs(),
        sessions=plan.sweep_sessions,
        select_by=lookup(dpath="sweep/select_by", within=config),
        neighbors=lookup(dpath="analysis/decoding_neighbors", within=config),
        bins=lookup(dpath="analysis/consistency_bins", within=config),
        decode=lookup(dpath="evaluation/score", within=config),
        label=lookup(dpath="analysis/consistency_label", within=config),
    script:
        "../scripts/sweep_table.py"


rule plot_sweep:
    input:
        table=rules.sweep_table.output.table,
    output:
        png=report(
            paths.figure("sweep"),
            caption="../report/sweep.rst",
            category="Parameter sweep",
        ),
        pdf=paths.figure("sweep", "pdf"),
    log:
        "logs/figures/sweep.log",
    group:
        "post"
    conda:
        "../../envs/figures.yaml"
    params:
        grid_keys=list(config["sweep"]["grid"]),
    script:
        "../scripts/plot_sweep.py"


rule sweep:
    input:
        lambda wildcards: plan.sweep_targets(),
