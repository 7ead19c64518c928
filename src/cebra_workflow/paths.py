"""Every file the workflow writes under ``results/``, written here once: the rules take their
``output:`` from these names, the plan builds its targets and the inputs of later rules from them,
and the docs' output table is checked against them. ``{wildcards}`` are Snakemake's.

Logs (``logs/…``) and benchmarks (``results/benchmarks/…``) belong to one rule each and are named
in that rule, except the fit's benchmark, which the sweep reads (the fit time of a grid point).
"""

# Data: the verified download, one session table per session, the sessions checked before any fit.
RAW_SESSION = "results/data/raw/{session}.jl"
SESSION_TABLE = "results/data/sessions/{session}.parquet"
CHECKS = "results/data/checks.tsv"

# Fits: {split} all (whole sessions), fold<k> (train parts) or sweep/<point>; {fit} single/<session>,
# multi, multi_without/<session> or multi/<a>+<b>; a running fit's checkpoint lies beside its model.
FIT_FOLDER = "results/fits/{split}/seed{seed}/{fit}"
FIT_MODEL = FIT_FOLDER + "/model.pt"
FIT_LOSS = FIT_FOLDER + "/loss.parquet"
FIT_EMBEDDING = FIT_FOLDER + "/embedding.parquet"
FIT_BENCHMARK = "results/benchmarks/fit/{split}/seed{seed}/{fit}.tsv"

# Analysis tables (parquet for the next step, CSV for reading).
ALIGNED = "results/alignment/seed{seed}/{kind}.parquet"
CONSISTENCY = "results/tables/consistency.parquet"
CONSISTENCY_CSV = "results/tables/consistency.csv"
DECODING = "results/tables/decoding.parquet"
DECODING_CSV = "results/tables/decoding.csv"
STATISTICS = "results/tables/statistics.parquet"
STATISTICS_CSV = "results/tables/statistics.csv"

# A new session: the held-out session adapted into the leave-one-out fit of the others.
ADAPTED_FOLDER = "results/new_session/{fold}/seed{seed}/{session}"
ADAPTED_MODEL = ADAPTED_FOLDER + "/model.pt"
ADAPTED_EMBEDDING = ADAPTED_FOLDER + "/embedding.parquet"
UNTRAINED_EMBEDDING = ADAPTED_FOLDER + "/untrained.parquet"
NEW_SESSION = "results/tables/new_session_{session}.parquet"
NEW_SESSION_CSV = "results/tables/new_session_{session}.csv"

# Online use: the held-out session adapted into a causal fit from its first seconds, then streamed.
ONLINE = "results/tables/online_{session}.parquet"
ONLINE_CSV = "results/tables/online_{session}.csv"

# Parameter sweeps.
SWEEP = "results/tables/sweep.parquet"
SWEEP_CSV = "results/tables/sweep.csv"
SWEEP_CHOSEN = "results/sweep/chosen.yaml"

# Figures: each a PNG (in the report) and a PDF beside it; the 3-D pages are HTML.
FIGURES = "results/figures"
EMBEDDINGS_3D = FIGURES + "/embeddings_3d/{session}.html"


def figure(name: str, suffix: str = "png") -> str:
    """A figure's file: results/figures/<name>.<suffix> (png for the report, pdf beside it)."""
    return f"{FIGURES}/{name}.{suffix}"


class _KeepWildcards(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(path: str, **values: object) -> str:
    """``path`` with the named wildcards filled in and every other wildcard left as it is:
    ``fill(FIT_MODEL, split="all")`` is ``results/fits/all/seed{seed}/{fit}/model.pt``."""
    return path.format_map(_KeepWildcards({key: str(value) for key, value in values.items()}))
