# Config validation (the schema fills every default), wildcard constraints, the lists of fits,
# seeds and splits, and the small input functions; no science here.

import copy
import hashlib
import itertools
import json
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
validate(config, schema="../schemas/config.schema.yaml", set_default=True)

SESSIONS = list(config["sessions"])
SEEDS = [str(seed) for seed in config["seeds"]]
FIRST_SEED = SEEDS[0]
SOURCE = lookup(dpath="data/source", within=config)
KINDS = ["single", "multi"]
# Splits: "all" (whole sessions: the notebook's fits and figures) and one per held-out fold.
FOLDS = [f"fold{k}" for k in range(lookup(dpath="evaluation/folds", within=config))]
SPLITS = ["all", *FOLDS]


def _cap_cores_at_the_cpus():
    """Run locally, never more threads at once than the CPUs this process may use (its affinity:
    a laptop's cores, or a cluster job's allocation). `--cores 4` on 2 CPUs would otherwise run two
    2-thread fits side by side, whose OpenMP threads spin against each other (4-7x slower)."""
    cpus = len(os.sched_getaffinity(0))
    cores = workflow.global_resources["_cores"].value
    if workflow.local_exec and isinstance(cores, int) and cores > cpus:
        logger.info(f"--cores {cores} is more than the {cpus} CPUs this machine gives the workflow: using {cpus}")
        workflow.register_resource("_cores", cpus)  # Snakemake's own total of threads at once


_cap_cores_at_the_cpus()



def _check_sessions():
    """Fail early, before any job runs, when the sessions do not fit the data source."""
    try:
        from cebra_core.download import PUBLISHED
        from cebra_core.simulate import RAT_SHAPES
    except ImportError:  # snakemake without cebra_core beside it (--use-conda): the jobs check
        return

    known = {"published": PUBLISHED, "simulate": RAT_SHAPES, "local": config["data"]["local"]}[SOURCE]
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
    held = lookup(dpath="new_session/held_out", within=config)
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
TRAINED = [s for s in SESSIONS if s != HELD_OUT]  # the sessions of the leave-one-out fit


# Fits: "single/<session>", "multi" (all sessions), "multi_without/<held-out session>", and for a
# sweep over some of the sessions "multi/<session>+<session>...".
def fit_sessions(fit):
    """The sessions a fit trains on, in order (a multi-session model's session ids follow it)."""
    if fit == "multi":
        return SESSIONS
    kind, rest = fit.split("/", 1)
    return {"single": [rest], "multi": rest.split("+"), "multi_without": TRAINED}[kind]


def kind_fits(kind, sessions=SESSIONS):
    """The fits of one kind over some sessions: one per session (single) or one for all (multi)."""
    if kind == "single":
        return [f"single/{s}" for s in sessions]
    return ["multi" if list(sessions) == SESSIONS else "multi/" + "+".join(sessions)]


FITS = [*kind_fits("single"), *kind_fits("multi"), *(f"multi_without/{s}" for s in [HELD_OUT] if s)]


def fit_priority(wildcards):
    """Longest first: the more sessions a fit trains on, the longer it runs, so it starts first; on a
    few cores no multi-session fit is then left running alone while the other cores idle."""
    return len(fit_sessions(wildcards.fit))


# Sweeps (snakemake sweep; workflow/rules/sweep.smk). A grid point is the config's cebra parameters
# with one value per grid key merged in; its fits are the {split} "sweep/<point>", where <point>
# hashes the point's full parameters and the nested split. Grid entries, or two sweeps, that give
# the same parameters therefore share one file and one job. The config's own cebra parameters
# (the reference) are always fitted too, so the chosen point is compared with them on the test part.
# The grid is expanded here, not in cebra_core: under --use-conda Snakemake's own process has no
# cebra_core (nor numpy) to import; the scoring and the choice are cebra_core.sweep's, in the jobs.
SWEEP = config["sweep"]
SWEEP_SPLIT = {"fold": 0, "folds": config["evaluation"]["folds"],
               "test_fraction": config["evaluation"]["test_fraction"],
               "validation_fraction": SWEEP["validation_fraction"]}


def _sweep_point_parameters(grid):
    """The full cebra parameters of every grid point, each checked against the schema's cebra keys."""
    base = config["cebra"]
    points = []
    for values in itertools.product(*grid.values()):
        changes = dict(zip(grid, values))
        # 1 and 1.0 are one temperature: cast to the default's type so they hash alike
        changes = {k: float(v) if isinstance(base.get(k), float) and isinstance(v, int) and not isinstance(v, bool)
                   else v for k, v in changes.items()}
        try:
            validate({**copy.deepcopy(config), "cebra": {**base, **changes}}, schema="../schemas/config.schema.yaml")
        except Exception as error:
            raise ValueError(f"config: sweep: grid: the point {changes} is not a valid cebra configuration: {error}")
        points.append((changes, {**base, **changes}))
    return points


def point_id(cebra):
    """A short, stable name for a fit's parameters and the sweep's split (a folder name)."""
    text = json.dumps({"cebra": cebra, "split": SWEEP_SPLIT}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _sweep():
    """{point id: {parameters (the grid's keys), cebra (all), candidate, reference}}, grid order,
    the reference (the config's cebra) last when the grid does not hold it; the sessions, fits, seeds."""
    sessions = SWEEP["sessions"] or SESSIONS
    unknown = [s for s in sessions if s not in SESSIONS]
    if unknown:
        raise ValueError(f"config: sweep: sessions {unknown} are not among the config's sessions {SESSIONS}")
    if SWEEP["kind"] == "multi" and len(sessions) < 2:
        raise ValueError("config: sweep: kind multi needs at least 2 sessions (or use kind: single)")
    if "validation_consistency" in SWEEP["select_by"] and len(sessions) < 2:
        raise ValueError("config: sweep: select_by validation_consistency compares sessions: give at least 2")
    points = {}
    if SWEEP["grid"]:
        for changes, cebra in [*_sweep_point_parameters(SWEEP["grid"]), (None, config["cebra"])]:
            cebra = dict(sorted(cebra.items()))  # the fit's params, one order whatever the config files' order
            entry = points.setdefault(point_id(cebra), {"parameters": changes, "cebra": cebra, "candidate": False,
                                                        "reference": False})
            entry["candidate"] |= changes is not None
            entry["reference"] |= changes is None
        for entry in points.values():  # the reference's values of the grid keys, for the table
            entry["parameters"] = {k: entry["cebra"][k] for k in SWEEP["grid"]}
    seeds = [str(s) for s in (SWEEP["seeds"] or config["seeds"])]
    return points, sessions, kind_fits(SWEEP["kind"], sessions), seeds


SWEEP_POINTS, SWEEP_SESSIONS, SWEEP_FITS, SWEEP_SEEDS = _sweep()


wildcard_constraints:
    session="|".join(re.escape(s) for s in SESSIONS),
    kind="|".join(KINDS),
    seed="|".join(dict.fromkeys(SEEDS + SWEEP_SEEDS)),
    split="|".join(re.escape(s) for s in SPLITS + [f"sweep/{p}" for p in SWEEP_POINTS]),
    fold="|".join(FOLDS),
    fit="|".join(re.escape(f) for f in dict.fromkeys(FITS + SWEEP_FITS)),


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
        return config["data"]["download"]["checksums"].get(wildcards.session, {}).get("jl_md5")
    return local_entry(wildcards.session).get("md5")


def session_table(session):
    return f"results/data/sessions/{session}.parquet"


def session_nwb(wildcards):
    """Reading options of a local session's .nwb file (data: nwb: plus its own keys), else None."""
    if SOURCE != "local":
        return None
    entry = local_entry(wildcards.session)
    options = {k: v for k, v in entry.items() if k not in ("path", "md5") and v is not None}
    if not entry["path"].lower().endswith(".nwb") and not options:
        return None
    return {**config["data"]["nwb"], **options}


def fit_inputs(wildcards):
    """The session tables of a fit, in its session order."""
    return [session_table(s) for s in fit_sessions(wildcards.fit)]


def fit_file(name, split="{split}", seed="{seed}", fit="{fit}"):
    """A fit's output file (model.pt, loss.parquet, embedding.parquet)."""
    return f"results/fits/{split}/seed{seed}/{fit}/{name}"


def split_params(split):
    """cebra_core.splits.Split's arguments for a split name: fold index (None: whole sessions), folds,
    test_fraction; a sweep's split also validation_fraction."""
    if split.startswith("sweep/"):
        return SWEEP_SPLIT
    evaluation = config["evaluation"]
    fold = None if split == "all" else FOLDS.index(split)
    return {"fold": fold, "folds": evaluation["folds"], "test_fraction": evaluation["test_fraction"]}


def fit_cebra(wildcards):
    """A fit's cebra parameters: the config's, or its sweep point's."""
    if wildcards.split.startswith("sweep/"):
        return SWEEP_POINTS[wildcards.split.removeprefix("sweep/")]["cebra"]
    return config["cebra"]


def kind_embeddings(wildcards):
    """The whole-session embedding table(s) of one kind of fit and one seed, in session order."""
    return [fit_file("embedding.parquet", "all", wildcards.seed, fit) for fit in kind_fits(wildcards.kind)]


def gpu_resources():
    """resources: gpu=1 for the fits only when the config asks for GPU."""
    return {"gpu": 1} if config["gpu"] else {}


def final_targets():
    targets = [
        "results/data/checks.tsv",
        "results/figures/embeddings.png",
        "results/figures/consistency.png",
        "results/figures/loss.png",
        "results/figures/summary.png",
        "results/tables/consistency.csv",
        "results/tables/decoding.csv",
        "results/tables/statistics.csv",
    ]
    targets += expand("results/figures/embeddings_3d/{session}.html", session=SESSIONS)
    if HELD_OUT is not None:
        targets += [
            f"results/tables/new_session_{HELD_OUT}.csv",
            f"results/figures/new_session_{HELD_OUT}.png",
        ]
    return targets


def heldout_groups(kinds=KINDS):
    """Every held-out fit's embedding tables, grouped: [{seed, fold, kind, paths}], and the flat
    list of their paths (a rule's input) in the same order."""
    groups = []
    for seed in SEEDS:
        for fold in FOLDS:
            for kind in kinds:
                groups.append({"seed": int(seed), "fold": fold, "kind": kind,
                               "paths": [fit_file("embedding.parquet", fold, seed, fit) for fit in kind_fits(kind)]})
    return groups


def all_seeds(pattern, **wildcards):
    return expand(pattern, seed=SEEDS, **wildcards)


def session_needs():
    """What the fits and analyses need of every session (cebra_core.checks.SessionNeeds), from the config."""
    return {
        "batch_size": config["cebra"]["batch_size"],
        "time_offsets": config["cebra"]["time_offsets"],
        "consistency_bins": config["analysis"]["consistency_bins"],
        "decoding_neighbors": config["analysis"]["decoding_neighbors"],
        "alignment_top_k": config["analysis"]["alignment_top_k"],
        "train_fraction": 1 - _largest_test_fraction(),
    }


def session_sources():
    """Where each session came from, as the checks' messages name it."""
    if SOURCE == "simulate":
        scale = config["data"]["simulate"]["scale"]
        return {s: f"simulated, data.simulate.scale={scale}" for s in SESSIONS}
    return {s: session_file(types.SimpleNamespace(session=s)) for s in SESSIONS}


def _largest_test_fraction():
    """The largest part of a session any held-out fold tests on (its decoder trains on the rest)."""
    evaluation = config["evaluation"]
    return evaluation["test_fraction"] if evaluation["folds"] == 1 else 1 / evaluation["folds"]


def sweep_runs(wildcards=None):
    """Every grid point x seed of the sweep: {point, seed, parameters, candidate, reference, and the
    paths of its fits' embeddings, losses and benchmarks}; an error when the config has no sweep."""
    if not SWEEP_POINTS:
        raise ValueError("snakemake sweep: the config has no sweep: grid (see config/sweep.example.yaml)")
    runs = []
    for point, entry in SWEEP_POINTS.items():
        for seed in SWEEP_SEEDS:
            split = f"sweep/{point}"
            runs.append({"point": point, "seed": int(seed), "parameters": entry["parameters"],
                         "candidate": entry["candidate"], "reference": entry["reference"],
                         "embeddings": [fit_file("embedding.parquet", split, seed, f) for f in SWEEP_FITS],
                         "losses": [fit_file("loss.parquet", split, seed, f) for f in SWEEP_FITS],
                         "benchmarks": [f"results/benchmarks/fit/{split}/seed{seed}/{f}.tsv" for f in SWEEP_FITS]})
    return runs


def sweep_inputs(wildcards):
    return [path for run in sweep_runs() for name in ("embeddings", "losses", "benchmarks") for path in run[name]]


def sweep_targets(wildcards):
    """The sweep's outputs (snakemake sweep); an error when the config has no sweep."""
    sweep_runs()
    return ["results/tables/sweep.csv", "results/figures/sweep.png", "results/sweep/chosen.yaml"]
