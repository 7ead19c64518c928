# Data: one parquet session table per session, from the published rats (downloaded and
# verified), from the simulator (sample data), or from the user's own files; then every session
# checked against what the fits and analyses need.


if SOURCE == "published":

    rule download_session:
        output:
            "results/data/raw/{session}.jl",
        log:
            "logs/data/download_{session}.log",
        benchmark:
            "results/benchmarks/download_session/{session}.tsv"
        localrule: True
        conda:
            "../../envs/data.yaml"
        params:
            download=config["data"]["download"],
        script:
            "../scripts/download_session.py"


if SOURCE == "simulate":

    rule simulate_session:
        output:
            "results/data/sessions/{session}.parquet",
        log:
            "logs/data/simulate_{session}.log",
        benchmark:
            "results/benchmarks/simulate_session/{session}.tsv"
        group:
            "data"
        conda:
            "../../envs/data.yaml"
        params:
            simulate=config["data"]["simulate"],
        script:
            "../scripts/simulate_session.py"

else:

    rule import_session:
        input:
            session_file,
        output:
            "results/data/sessions/{session}.parquet",
        log:
            "logs/data/import_{session}.log",
        benchmark:
            "results/benchmarks/import_session/{session}.tsv"
        group:
            "data"
        conda:
            "../../envs/data.yaml"
        params:
            md5=session_md5,
            nwb=session_nwb,
            signals=config["signals"],
        script:
            "../scripts/import_session.py"


# Every session against what the fits and analyses need, before any fit (the fits take this
# file as an ancient() input: a changed analysis key reruns the check, never a fit).
rule check_sessions:
    input:
        [session_table(s) for s in SESSIONS],
    output:
        "results/data/checks.tsv",
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
        signals=config["signals"],
    script:
        "../scripts/check_sessions.py"
