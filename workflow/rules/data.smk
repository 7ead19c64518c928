# Data: one parquet session table per session, from the published rats (downloaded and
# verified), from the simulator (sample data), or from the user's own files; then every session
# checked against what the fits and analyses need.

import types


if SOURCE == "published":

    rule download_session:
        output:
            "results/data/raw/{session}.jl",
        log:
            "logs/data/download_{session}.log",
        params:
            download=config["data"].get("download", {}),
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
            simulate=config["data"].get("simulate", {}),
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
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/import_session.py"


def session_needs():
    """What the fits and analyses need of every session (cebra_core.checks.SessionNeeds), from the config."""
    return {
        "batch_size": config["cebra"]["batch_size"],
        "time_offsets": config["cebra"]["time_offsets"],
        "consistency_bins": config["analysis"]["consistency_bins"],
        "decoding_neighbors": config["analysis"]["decoding_neighbors"],
        "alignment_top_k": config["analysis"]["alignment_top_k"],
        "train_fraction": 1 - config.get("evaluation", {}).get("test_fraction", 0.2),
    }


def session_sources():
    """Where each session came from, as the checks' messages name it."""
    if SOURCE == "simulate":
        scale = config["data"].get("simulate", {}).get("scale", 1.0)
        return {s: f"simulated, data.simulate.scale={scale}" for s in SESSIONS}
    return {s: session_file(types.SimpleNamespace(session=s)) for s in SESSIONS}


# Every session against what the fits and analyses need, before any fit (the fits take this
# file as an ancient() input: a changed analysis key reruns the check, never a fit).
rule check_sessions:
    input:
        session_tables,
    output:
        "results/data/checks.tsv",
    log:
        "logs/data/check_sessions.log",
    params:
        sessions=SESSIONS,
        needs=session_needs(),
        sources=session_sources(),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/check_sessions.py"
