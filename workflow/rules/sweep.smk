# Parameter sweeps (`snakemake sweep`): every grid point x seed is a job of the one fit rule, on the
# split sweep/<point> (train parts without their validation parts; common.smk names the points),
# so --cores or a cluster runs them side by side. One job then scores them on the validation parts,
# chooses, and scores the chosen point (and the reference) on the test parts.


rule sweep_table:
    input:
        sweep_inputs,
    output:
        table="results/tables/sweep.parquet",
        csv=report(
            "results/tables/sweep.csv",
            caption="../report/sweep_table.rst",
            category="Parameter sweep",
        ),
        chosen="results/sweep/chosen.yaml",
    log:
        "logs/sweep/table.log",
    group:
        "post"
    conda:
        "../../envs/analysis.yaml"
    params:
        runs=lambda wildcards: plan.sweep_runs(),
        sessions=plan.sweep_sessions,
        select_by=config["sweep"]["select_by"],
        neighbors=config["analysis"]["decoding_neighbors"],
        bins=config["analysis"]["consistency_bins"],
    script:
        "../scripts/sweep_table.py"


rule plot_sweep:
    input:
        table=rules.sweep_table.output.table,
    output:
        png=report(
            "results/figures/sweep.png",
            caption="../report/sweep.rst",
            category="Parameter sweep",
        ),
        pdf="results/figures/sweep.pdf",
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
        sweep_targets,
