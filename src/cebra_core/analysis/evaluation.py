"""Held-out scores: decoding every label column and a new session's scores, from embedding tables
whose rows say which part of the split (``train`` / ``test``) they belong to.

Every number here is computed on test rows, from encoders fitted on the train rows only, with
decoders fitted on train rows only; so no score comes from a model that saw the labels it is
scored against. Beside every decoding score stands its chance level: the same decoder fitted on
the training labels shuffled. Cross-animal decoding between single-session fits first rotates the
test animal onto the training animal with a Procrustes alignment fitted on both animals' train
rows. With a k grid (the trial protocol) the decoder's k is chosen on the test animal's validation
rows, and the test rows score the chosen k only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cebra_core.analysis.alignment import OrthogonalProcrustesAlignment
from cebra_core.analysis.decoding import decode, validated_decode
from cebra_core.analysis.metrics import consistency_score, label_consistency
from cebra_core.analysis.splits import label_coverage
from cebra_core.analysis.tables import alignment_labels, embedding_columns, is_discrete, label_columns, label_values

__all__ = ["decoding_table", "new_session_table", "restricted_consistency", "runs_consistency"]

DECODING_COLUMNS = ["train", "test", "column", "metric", "value", "chance", "n_train", "n_test", "test_coverage",
                    "flagged", "k"]


def _rows(frame: pd.DataFrame, part: str) -> pd.DataFrame:
    rows = frame[frame["part"] == part]
    if rows.empty:
        session = frame["session"].iloc[0] if len(frame) else "?"
        raise ValueError(f"session {session!r}: the embedding table has no {part!r} rows (is it from a held-out fit?)")
    return rows


def _z(frame: pd.DataFrame) -> np.ndarray:
    return frame[embedding_columns(frame)].to_numpy(np.float64)


def _kind(frame: pd.DataFrame, column: str) -> str:
    return "discrete" if is_discrete(frame[column]) else "continuous"


def _unchanged(z: np.ndarray) -> np.ndarray:
    return z


def coverage(test: pd.DataFrame, session: pd.DataFrame, label: Sequence[str]) -> float:
    """How much of the session's label range its test rows cover (1.0: all of it): the fraction of
    the session's bins (1-D), grid cells (2-D) or classes (discrete) that the test rows visit."""
    if len(label) == 1 and is_discrete(session[label[0]]):
        visited = np.unique(session[label[0]])
        return float(np.isin(visited, np.unique(test[label[0]])).mean())
    if len(label) == 1:
        return label_coverage(test[label[0]].to_numpy(), session[label[0]].to_numpy())
    return label_coverage(label_values(test, label), label_values(session, label))


def decoding_table(
    frames: Mapping[str, pd.DataFrame], *, shared_space: bool, n_neighbors: int, top_k: int, min_coverage: float,
    coverage_label: Sequence[str] = ("position",), k_grid: Sequence[int] | None = None,
) -> pd.DataFrame:
    """kNN decoding of every label column for every (train animal, test animal): decoder on the train
    animal's train rows, scored on the test animal's test rows (train == test: within the animal);
    one row per pair, column and metric (`cebra_core.analysis.decoding.METRICS`), with its chance.

    ``shared_space``: the embeddings share one space (multi-session fit); otherwise (single-session
    fits) the test animal is first rotated onto the train animal, fitted on both animals' train rows.
    ``k_grid`` (the trial protocol): k is chosen from it on the test animal's validation rows
    instead of ``n_neighbors``; column ``k`` is the k used. ``coverage_label``: the label whose
    range a test part should cover (flagged below ``min_coverage``).
    """
    rows = []
    for a, frame_a in frames.items():
        train_a = _rows(frame_a, "train")
        for b, frame_b in frames.items():
            train_b, test_b = _rows(frame_b, "train"), _rows(frame_b, "test")
            rotate = _unchanged
            if a != b and not shared_space:
                rotate = OrthogonalProcrustesAlignment(top_k=top_k).fit(
                    _z(train_a), _z(train_b), alignment_labels(train_a), alignment_labels(train_b)).transform
            z_test = rotate(_z(test_b))
            covered = coverage(test_b, frame_b, coverage_label)
            for column in label_columns(frame_a):
                kind = _kind(frame_a, column)
                if k_grid is None:
                    k, result = n_neighbors, decode(_z(train_a), train_a[column], z_test, test_b[column], kind, n_neighbors)
                else:
                    validation_b = _rows(frame_b, "validation")
                    chosen = validated_decode(_z(train_a), train_a[column], rotate(_z(validation_b)),
                                              validation_b[column], z_test, test_b[column], kind, k_grid=k_grid)
                    k, result = chosen.k, chosen.test
                rows += [(a, b, column, metric, value, chance, len(train_a), len(test_b), covered,
                          covered < min_coverage, k) for metric, (value, chance) in result.items()]
    return pd.DataFrame(rows, columns=DECODING_COLUMNS)


def restricted_consistency(target: str, frames: Mapping[str, pd.DataFrame], *, bins: int,
                           label: Sequence[str] = ("position",)) -> dict[str, float]:
    """Consistency of ``target``'s test rows with every other session on ``label``, both directions
    averaged.

    A continuous 1-D label: the other sessions' rows (all of them) are restricted to the range the
    target's test rows cover, and the bins to that range (same bin width as ``bins`` bins over all
    sessions), so a test part that covers part of the track is compared only where it has data. A
    2-D or discrete label: the target's test rows against the other sessions' rows, on the grid or
    the classes.
    """
    test = _rows(frames[target], "test")
    names = [target, *(n for n in frames if n != target)]
    label = list(label)
    if len(label) == 1 and not is_discrete(test[label[0]]):
        column = label[0]
        lo, hi = float(test[column].min()), float(test[column].max())
        everything = np.concatenate([f[column].to_numpy(np.float64) for f in frames.values()])
        width = (everything.max() - everything.min()) or 1.0
        n_bins = max(3, int(round((bins - 1) * (hi - lo) / width)) + 1)  # bins edges: bins - 1 bins
        parts = [test] + [f[(f[column] >= lo) & (f[column] <= hi)] for n, f in frames.items() if n != target]
    else:
        n_bins, parts = bins, [test] + [f for n, f in frames.items() if n != target]
    kind = "discrete" if len(label) == 1 and is_discrete(test[label[0]]) else "continuous"
    values = [label_values(p, label[0] if len(label) == 1 else label).astype(np.float64 if kind == "continuous" else np.int64)
              for p in parts]
    scores, pairs, _ = label_consistency([_z(p) for p in parts], values, names, kind, n_bins, columns=label)
    out: dict[str, list[float]] = {}
    for (a, b), score in zip(pairs, np.atleast_1d(scores)):
        if target in (a, b):
            other = b if a == target else a
            out.setdefault(str(other), []).append(float(score))
    return {other: float(np.mean(v)) for other, v in out.items()}


def new_session_table(
    kinds: Mapping[str, Mapping[str, pd.DataFrame]], held_out: str, *, bins: int, n_neighbors: int,
    min_coverage: float, label: Sequence[str] = ("position",),
) -> pd.DataFrame:
    """Scores of the held-out session per kind of embedding: consistency with each trained animal
    (and its mean) on its test rows, on ``label``, and the decoding of every label column of its
    test rows (with chance).

    ``kinds`` maps a kind ('random', 'single', 'multi', 'adapted', …) to {session: embedding table
    of a held-out fit}. The 'single' kind decodes with the animal's own decoder (its train rows);
    every other kind with one decoder pooled over the trained animals' train rows, since they share
    a space. Columns: kind, measure, column, source, target, value, chance, test_coverage, flagged.
    """
    rows, covered = [], []
    for kind, frames in kinds.items():
        trained = [n for n in frames if n != held_out]
        test = _rows(frames[held_out], "test")
        start = len(rows)
        consistency = restricted_consistency(held_out, frames, bins=bins, label=label)
        rows += [(kind, "consistency", "+".join(label), other, held_out, score, np.nan)
                 for other, score in consistency.items()]
        rows.append((kind, "consistency_mean", "+".join(label), "+".join(trained), held_out,
                     float(np.mean(list(consistency.values()))), np.nan))
        sources = [held_out] if kind == "single" else trained
        train = pd.concat([_rows(frames[n], "train") for n in sources])
        for column in label_columns(test):
            result = decode(_z(train), train[column], _z(test), test[column], _kind(test, column), n_neighbors)
            rows += [(kind, metric, column, "+".join(sources), held_out, value, chance)
                     for metric, (value, chance) in result.items()]
        covered += [coverage(test, frames[held_out], label)] * (len(rows) - start)
    table = pd.DataFrame(rows, columns=["kind", "measure", "column", "source", "target", "value", "chance"])
    table["test_coverage"] = np.array(covered, dtype=np.float64)
    table["flagged"] = table["test_coverage"] < min_coverage
    return table


def runs_consistency(tables: Mapping[str, Sequence[pd.DataFrame]], names: Sequence[str]) -> pd.DataFrame | None:
    """Consistency between runs (seeds) of each session, CEBRA's ``between="runs"``, per kind.

    ``tables`` maps a kind to its whole-session embedding tables, one or more per seed (a
    single-session kind has one table per session and seed). Returns rows (kind, session, score,
    n_runs), or None with fewer than two runs.
    """
    rows = []
    for kind, frames in tables.items():
        for name in names:
            runs = [f[f["session"] == name] for f in frames if (f["session"] == name).any()]
            if len(runs) < 2:
                return None
            scores, _, _ = consistency_score([_z(r) for r in runs], between="runs")
            rows.append((kind, name, float(np.mean(scores)), len(runs)))
    return pd.DataFrame(rows, columns=["kind", "session", "score", "n_runs"])

