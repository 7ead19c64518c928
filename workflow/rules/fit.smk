# Fits: one rule for every model. {fit} is single/<session>, multi (all sessions) or
# multi_without/<session> (the leave-one-out fit, new_session.smk); {split} is all (whole sessions),
# a held-out fold (trained on the train parts only) or sweep/<point> (a sweep's grid point, trained
# on the train parts without their validation parts: sweep.smk); {seed} one of the seeds.
# A running fit keeps a checkpoint beside its model and resumes from it (cebra_core.steps.fits).


rule fit:
    input:
        unpack(fit_sessions),
        checks=ancient(paths.CHECKS),  # every session checked first (data.smk)
    output:
        model=paths.FIT_MODEL,
        loss=paths.FIT_LOSS,
        embedding=paths.FIT_EMBEDDING,
    log:
        "logs/fits/{split}/seed{seed}/{fit}.log",
    benchmark:
        paths.FIT_BENCHMARK
    priority: lambda wildcards: plan.fit_priority(wildcards.fit)
    conda:
        "../../envs/fit.yaml"
    threads: config["fit_threads"]
    resources:
        **gpu_resources(),
    params:
        sessions=lambda wildcards: plan.fit_sessions(wildcards.fit),
        kind=lambda wildcards: plan.fit_kind(wildcards.fit),
        cebra=lambda wildcards: plan.fit_cebra(wildcards.split),
        split=lambda wildcards: plan.split_params(wildcards.split),
        device=lookup(dpath="device", within=config),
        labels=lookup(dpath="labels", within=config),
    script:
        "../scripts/fit.py"
