"""Parameter sweeps: score every grid point's fits on the validation parts, choose a point on
them (never on the training loss), and score only the chosen point (and the reference, the
configuration it is compared with) on the test parts.

CEBRA's ``cebra.grid_search.GridSearch`` picks the model with the lowest final training InfoNCE
loss. The loss depends on the temperature and the output dimension by itself (a lower temperature
or a wider embedding lowers it without making the embedding decode better), so it cannot compare
such points. Here each encoder is fitted on the train part of each session (``Split`` with a
validation part), the kNN decoder of a named label column on the train rows and scored on the
validation rows by a named metric (`sweep.decode`), and the test rows are scored only once the
choice is made, with a decoder fitted on the train and
validation rows (the choice no longer needs them held out; the encoder stays the chosen one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cebra_core.analysis.decoding import LOWER_IS_BETTER
from cebra_core.analysis.evaluation import decoding_table, restricted_consistency
from cebra_core.analysis.protocols import DEFAULT_SCORE

__all__ = ["SELECT_BY", "SweepRun", "choose", "chosen_config", "heldout_scores", "part_view", "sweep_table"]

SELECT_BY = ("validation_decoding", "validation_consistency")  # what a sweep may choose by
SCORES = ["decoding", "chance", "consistency", "coverage"]  # heldout_scores' keys, prefixed validation_/test_


@dataclass
class SweepRun:
    """One grid point x seed: its grid parameters, its embedding tables ({session: rows with a
    ``part`` column train / validation / test}), final training loss and fit time."""

    point: str
    seed: int
    parameters: Mapping[str, object]
    frames: Mapping[str, pd.DataFrame]
    final_loss: float
    fit_seconds: float
    candidate: bool = True  # a grid point (the reference alone is not one)
    reference: bool = False  # the configuration the chosen point is compared with


def part_view(frame: pd.DataFrame, train: Sequence[str], test: str) -> pd.DataFrame:
    """The rows of the parts ``train`` (relabelled ``train``) and ``test`` (relabelled ``test``),
    every other row dropped: cebra_core.analysis.evaluation then scores ``test`` with decoders fitted on
    ``train`` and never sees the dropped rows (the test part, while choosing)."""
    rows = frame[frame["part"].isin([*train, test])].copy()
    rows["part"] = np.where(rows["part"] == test, "test", "train")
    return rows


def heldout_scores(frames: Mapping[str, pd.DataFrame], *, train: Sequence[str], test: str, n_neighbors: int,
                   bins: int, decode: tuple[str, str] = (DEFAULT_SCORE["column"], DEFAULT_SCORE["metric"]),
                   label: Sequence[str] = ("position",)) -> dict[str, float]:
    """Scores of the ``test`` part: within-session kNN decoding of the label column ``decode[0]``
    (decoder on the ``train`` parts), its metric ``decode[1]`` and its chance level averaged over
    sessions, the lowest coverage of ``label``, and the consistency on ``label`` of each session's
    ``test`` rows with the other sessions, averaged (NaN for one)."""
    column, metric = decode
    views = {name: part_view(frame, train, test) for name, frame in frames.items()}
    decoding = pd.concat([decoding_table({name: view}, shared_space=True, n_neighbors=n_neighbors, top_k=1,
                                         min_coverage=0.0, coverage_label=label) for name, view in views.items()])
    chosen = decoding[(decoding["column"] == column) & (decoding["metric"] == metric)]
    if chosen.empty:
        raise ValueError(f"sweep.decode: the label column {column!r} has no metric {metric!r} "
                         f"(it has {sorted(set(decoding.loc[decoding['column'] == column, 'metric']))})")
    consistency = [np.mean(list(restricted_consistency(name, views, bins=bins, label=label).values()))
                   for name in views] if len(views) > 1 else [np.nan]
    return {"decoding": float(chosen["value"].mean()), "chance": float(chosen["chance"].mean()),
            "consistency": float(np.mean(consistency)), "coverage": float(decoding["test_coverage"].min())}


def higher_is_better(measure: str, metric: str) -> bool:
    """Whether a larger value of a `SELECT_BY` measure is better (decoding: by its metric)."""
    return measure == "validation_consistency" or not LOWER_IS_BETTER[metric]


def choose(table: pd.DataFrame, select_by: Sequence[str], metric: str = DEFAULT_SCORE["metric"]) -> str:
    """The candidate point with the best mean over seeds of the ``select_by`` measures (the best
    mean rank over them when several; ties go to the better first measure, then the earlier point);
    ``metric`` says which way the decoding measure is better."""
    unknown = [m for m in select_by if m not in SELECT_BY]
    if unknown or not select_by:
        raise ValueError(f"select_by must name one or more of {list(SELECT_BY)}, got {list(select_by)}")
    candidates = table[table["candidate"]]
    if candidates.empty:
        raise ValueError("the sweep table has no candidate points")
    means = candidates.groupby("point", sort=False)[list(select_by)].mean()
    missing = means.columns[means.isna().any()].tolist()
    if missing:
        raise ValueError(f"cannot choose by {missing}: some points have no value (consistency needs 2 or more sessions)")
    ranks = pd.DataFrame({m: means[m].rank(ascending=not higher_is_better(m, metric), method="min") for m in select_by})
    first = select_by[0]
    order = pd.DataFrame({"rank": ranks.mean(axis=1),
                          "first": -means[first] if higher_is_better(first, metric) else means[first],
                          "position": np.arange(len(means))}, index=means.index)
    return str(order.sort_values(["rank", "first", "position"]).index[0])


def sweep_table(runs: Sequence[SweepRun], *, select_by: Sequence[str], n_neighbors: int, bins: int,
                decode: tuple[str, str] = (DEFAULT_SCORE["column"], DEFAULT_SCORE["metric"]),
                label: Sequence[str] = ("position",)) -> pd.DataFrame:
    """The tidy sweep table, one row per grid point x seed: point, the grid's parameters, seed,
    candidate, reference, chosen, final_loss, validation_* scores, test_* scores (the chosen and the
    reference points only, NaN elsewhere), fit_seconds. The choice reads only validation columns."""
    if not runs:
        raise ValueError("the sweep has no runs (an empty grid?)")
    keys = list(runs[0].parameters)
    rows = []
    for run in runs:
        scores = heldout_scores(run.frames, train=["train"], test="validation", n_neighbors=n_neighbors, bins=bins,
                                decode=decode, label=label)
        rows.append({"point": run.point, **run.parameters, "seed": run.seed, "candidate": run.candidate,
                     "reference": run.reference, "final_loss": run.final_loss,
                     **{f"validation_{k}": v for k, v in scores.items()}, "fit_seconds": run.fit_seconds})
    table = pd.DataFrame(rows)
    table["chosen"] = table["point"] == choose(table, select_by, decode[1])
    tests = [f"test_{k}" for k in SCORES]
    table[tests] = np.nan
    for i, run in enumerate(runs):
        if table.loc[i, "chosen"] or run.reference:  # the test parts are read only now, after the choice
            scores = heldout_scores(run.frames, train=["train", "validation"], test="test", n_neighbors=n_neighbors,
                                    bins=bins, decode=decode, label=label)
            table.loc[i, tests] = [scores[k] for k in SCORES]
    return table[["point", *keys, "seed", "candidate", "reference", "chosen", "final_loss",
                  *(f"validation_{k}" for k in SCORES), *tests, "fit_seconds"]]


def chosen_config(table: pd.DataFrame, keys: Sequence[str]) -> dict:
    """The chosen point's grid parameters as a config fragment ``{"cebra": {key: value}}``."""
    row = table[table["chosen"]].iloc[0]
    return {"cebra": {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in keys}}
