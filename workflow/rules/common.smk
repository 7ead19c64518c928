# Config validation, wildcard constraints and the small input functions; no science here.

import os
import re
import types

import yaml

from snakemake.utils import validate


def _check_md5s():
    """An MD5 that is not 32 hex digits gets its own message (the schema's would be a bare 'not valid under any of the given schemas')."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    found = []
    for session, entry in (data.get("local") or {}).items():
        if isinstance(entry, dict) and "md5" in entry:
            found.append((f"data.local.{session}.md5", entry["md5"]))
    for session, entry in ((data.get("download") or {}).get("checksums") or {}).items():
        for key in ("gz_md5", "jl_md5"):
            if isinstance(entry, dict) and key in entry:
                found.append((f"data.download.checksums.{session}.{key}", entry[key]))
    with open(os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")) as handle:
        pattern = yaml.safe_load(handle)["$defs"]["md5"]["pattern"]
    for key, value in found:
        if not (isinstance(value, str) and re.search(pattern, value)):
            raise ValueError(
                f"config: {key}: {value!r} is not an MD5 checksum: it must be 32 hexadecimal characters "
                "(0-9, a-f), as `md5sum FILE` prints them"
            )


_check_md5s()
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
    """{path, md5} of a local session; paths may use ~ and environment variables (an unset one is an error)."""
    entry = config["data"]["local"][session]
    entry = {"path": entry} if isinstance(entry, str) else dict(entry)
    path = os.path.expanduser(os.path.expandvars(entry["path"]))
    unset = re.search(r"\$\{?(\w+)\}?", path)
    if unset:
        raise ValueError(
            f"config: data.local.{session}: the path {entry['path']!r} uses the environment variable "
            f"{unset[1]}, which is not set; set it (export {unset[1]}=/path/to/the/folder) or write the path in full"
        )
    entry["path"] = path
    return entry


if SOURCE == "local":  # at parse time: an unset variable is named here, not as a WildcardError later
    for _session in SESSIONS:
        if _session in config["data"].get("local", {}):
            local_entry(_session)


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
        "results/data/checks.tsv",
        "results/figures/embeddings.png",
        "results/figures/consistency.png",
        "results/figures/loss.png",
        "results/tables/consistency.parquet",
        "results/tables/decoding.parquet",
        "results/tables/decoding.csv",
    ]
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
        scale = config["data"]["simulate"]["scale"]
        return {s: f"simulated, data.simulate.scale={scale}" for s in SESSIONS}
    return {s: session_file(types.SimpleNamespace(session=s)) for s in SESSIONS}

