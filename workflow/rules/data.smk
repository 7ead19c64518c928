# Data: one parquet session table per session, from the published rats (downloaded and
# verified), from the simulator (sample data), or from the user's own files; then every session
# checked against what the fits and analyses need.


if plan.source == "published":

    rule download_session:
        output:
            paths.RAW_SESSION,
        log:
            "logs/data/download_{session}.log",
        benchmark:
            "results/benchmarks/download_session/{session}.tsv"
        localrule: True
        conda:
            "../../envs/data.yaml"
        params:
            download=lookup(dpath="data/download", within=config),
        script:
            "../scripts/download_session.py"


if plan.source == "simulate":

    rule simulate_session:
        output:
            paths.SESSION_TABLE,
        log:
            "logs/data/simulate_{session}.log",
        benchmark:
            "results/benchmarks/simulate_session/{session}.tsv"
        group:
            "data"
        conda:
            "../../envs/data.yaml"
        params:
            simulate=lookup(dpath="data/simulate", within=config),
            labels=lookup(dpath="labels", within=config),
        script:
            "../scripts/simulate_session.py"

else:

    rule import_session:
        input:
            raw=lambda wildcards: plan.session_file(wildcards.session),
        output:
            paths.SESSION_TABLE,
        log:
            "logs/data/import_{session}.log",
        benchmark:
            "results/benchmarks/import_session/{session}.tsv"
        group:
            "data"
        conda:
            "../../envs/data.yaml"
        params:
            md5=lambda wildcards: plan.session_md5(wildcards.session),
            nwb=lambda wildcards: plan.session_nwb(wildcards.session),
            signals=lookup(dpath="signals", within=config),
            labels=lookup(dpath="labels", within=config),
        script:
            "../scripts/import_session.py"


# Every session against what the fits and analyses need, before any fit (the fits take this
# file as an ancient() input: a changed analysis key reruns the check, never a fit).
rule check_sessions:
    input:
        **session_tables(SESSIONS),
    output:
        paths.CHECKS,
    log:
        "logs/data/check_sessions.log",
    benchmark:
        "results/benchmarks/check_sessions/check_sessions.tsv"
    group:
        "data"
    conda:
        "../../envs/data.yaml"
    params:
        sessions=SESSIONS,
        needs=plan.session_needs(),
        sources=plan.session_sources(),
        signals=lookup(dpath="signals", within=config),
    script:
        "../scripts/check_sessions.py"
