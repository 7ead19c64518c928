# Fits: one rule for every model. {fit} is single/<session>, multi (all sessions) or
# multi_without/<session> (the leave-one-out fit, new_session.smk); {split} is all (whole sessions),
# a held-out fold (trained on the train parts only) or sweep/<point> (a sweep's grid point, trained
# on the train parts without their validation parts: sweep.smk); {seed} one of the seeds.
# Each keeps a checkpoint under results/checkpoints/ (not an output) and resumes from it.


rule fit:
    input:
        sessions=fit_inputs,
        checks=ancient("results/data/checks.tsv"),  # every session checked first (data.smk)
    output:
        model=fit_file("model.pt"),
        loss=fit_file("loss.parquet"),
        embedding=fit_file("embedding.parquet"),
    log:
        "logs/fits/{split}/seed{seed}/{fit}.log",
    benchmark:
        "results/benchmarks/fit/{split}/seed{seed}/{fit}.tsv"
    priority: fit_priority
    conda:
        "../../envs/fit.yaml"
    threads: config["fit_threads"]
    resources:
        **gpu_resources(),
    params:
        sessions=lambda wildcards: plan.fit_sessions(wildcards.fit),
        cebra=lambda wildcards: plan.fit_cebra(wildcards.split),
        split=lambda wildcards: plan.split_params(wildcards.split),
        device=config["device"],
        signals=config["signals"],
        checkpoint="results/checkpoints/{split}/seed{seed}/{fit}.pt",
    script:
        "../scripts/fit.py"
