# Data: one parquet session table per session, from the published rats (downloaded and
# verified), from the simulator (sample data), or from the user's own files.


if SOURCE == "published":

    rule download_session:
        output:
            "results/data/raw/{session}.jl",
        log:
            "logs/data/download_{session}.log",
        params:
            download=config["data"]["download"],
        localrule: True
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/download_session.py"


if SOURCE == "simulate":

    rule simulate_session:
        output:
            "results/data/sessions/{session}.parquet",
        log:
            "logs/data/simulate_{session}.log",
        params:
            simulate=config["data"]["simulate"],
        group:
            "data"
        conda:
            "../../envs/data.yaml"
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
        params:
            md5=session_md5,
            nwb=session_nwb,
        group:
            "data"
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/import_session.py"
