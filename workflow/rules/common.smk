# Config validation, wildcard constraints and the small input functions; no science here.

import os
import re

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

SESSIONS = list(config["sessions"])
SOURCE = config["data"]["source"]
KINDS = ["single", "multi"]


wildcard_constraints:
    session="|".join(re.escape(s) for s in SESSIONS),
    kind="|".join(KINDS),


def _check_sessions():
    """Fail early, before any job runs, when the sessions do not fit the data source."""
    try:
        from cebra_core.download import PUBLISHED
        from cebra_core.simulate import RAT_SHAPES
    except ImportError:  # snakemake without cebra_core beside it (--use-conda): the jobs check
        return

    known = {"published": PUBLISHED, "simulate": RAT_SHAPES, "local": config["data"].get("local", {})}[SOURCE]
    unknown = [s for s in SESSIONS if s not in known]
    if unknown:
        hint = {
            "published": "the published rats are " + ", ".join(PUBLISHED),
            "simulate": "the simulator knows " + ", ".join(RAT_SHAPES),
            "local": "give each one a file under data: local: {session: path}",
        }[SOURCE]
        raise ValueError(f"config: sessions {unknown} are not available with data: source: {SOURCE} ({hint})")


_check_sessions()


def _held_out_session():
    """The session left out of a multi-session fit and adapted into it (new_session.held_out), or None."""
    held = config.get("new_session", {}).get("held_out", "last")
    if held is None or held is False:
        return None
    if held == "last":
        return SESSIONS[-1]
    if held not in SESSIONS:
        raise ValueError(
            f"config: new_session: held_out: {held!r} is not one of the sessions {SESSIONS} "
            "(name one of them, write last for the last one, or null for no new-session target)"
        )
    return held


HELD_OUT = _held_out_session()


def local_entry(session):
    """{path, md5} of a local session; paths may use ~ and environment variables."""
    entry = config["data"]["local"][session]
    entry = {"path": entry} if isinstance(entry, str) else dict(entry)
    entry["path"] = os.path.expanduser(os.path.expandvars(entry["path"]))
    return entry


def session_file(wildcards):
    """The raw file a session table is made from: the verified download or the user's file."""
    if SOURCE == "published":
        return f"results/data/raw/{wildcards.session}.jl"
    return local_entry(wildcards.session)["path"]


def session_md5(wildcards):
    if SOURCE == "published":
        return config["data"].get("download", {}).get("checksums", {}).get(wildcards.session, {}).get("jl_md5")
    return local_entry(wildcards.session).get("md5")


def session_tables(wildcards=None):
    return expand("results/data/sessions/{session}.parquet", session=SESSIONS)


def embeddings(wildcards):
    """The embedding table(s) of one kind of fit, in session order."""
    if wildcards.kind == "single":
        return expand("results/fits/single/{session}/embedding.parquet", session=SESSIONS)
    return ["results/fits/multi/embedding.parquet"]


def trained_sessions(wildcards):
    """All sessions but the held-out one ({session}), in order: the leave-one-out multi-session fit."""
    return [s for s in SESSIONS if s != wildcards.session]


def trained_session_tables(wildcards):
    return expand("results/data/sessions/{session}.parquet", session=trained_sessions(wildcards))


def cebra_params():
    """Keyword arguments for cebra_core.CEBRA, straight from the config."""
    return dict(config["cebra"])


def gpu_resources():
    """resources: gpu=1 for the fits only when the config asks for GPU."""
    return {"gpu": 1} if config["gpu"] else {}


def final_targets():
    targets = [
        "results/figures/embeddings.png",
        "results/figures/consistency.png",
        "results/figures/loss.png",
        "results/tables/consistency.parquet",
        "results/tables/decoding.parquet",
        "results/tables/decoding.csv",
    ]
    targets += expand("results/figures/embeddings_3d/{session}.html", session=SESSIONS)
    if HELD_OUT is not None:
        targets += expand(
            [
                "results/tables/new_session_{session}.parquet",
                "results/tables/new_session_{session}.csv",
                "results/figures/new_session_{session}.png",
            ],
            session=HELD_OUT,
        )
    return targets
