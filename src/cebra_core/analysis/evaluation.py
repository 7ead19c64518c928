"""Held-out scores: position decoding and a new session's scores, from embedding tables whose rows
say which part of the split (``train`` / ``test``) they belong to.

Every number here is computed on test rows, from encoders fitted on the train rows only, with
decoders fitted on train rows only; so no score comes from a model that saw the labels it is
scored against. Cross-animal decoding between single-session fits first rotates the test rat onto
the training rat with a Procrustes alignment fitted on both rats' train rows. With a k grid (the
trial protocol) the decoder's k is chosen on the test rat's validation rows, and the test rows
score the chosen k only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cebra_core.analysis.alignment import OrthogonalProcrustesAlignment
from cebra_core.analysis.tables import embedding_columns, frame_labels
from cebra_core.analysis.decoding import cross_decode, validated_decode
from cebra_core.analysis.metrics import consistency_score
from cebra_core.analysis.splits import label_coverage

__all__ = ["decoding_table", "new_session_table", "restricted_consistency", "runs_consistency"]

DECODING_COLUMNS = ["train", "test", "r2", "median_error_cm", "n_train", "n_test", "test_coverage", "flagged", "k"]


def _rows(frame: pd.DataFrame, part: str) -> pd.DataFrame:
    rows = frame[frame["part"] == part]
    if rows.empty:
        session = frame["session"].iloc[0] if len(frame) else "?"
        raise ValueError(f"session {session!r}: the embedding table has no {part!r} rows (is it from a held-out fit?)")
    return rows


def _z(frame: pd.DataFrame) -> np.ndarray:
    return frame[embedding_columns(frame)].to_numpy(np.float64)


def _position(frame: pd.DataFrame) -> np.ndarray:
    return frame["position"].to_numpy(np.float64)


def _unchanged(z: np.ndarray) -> np.ndarray:
    return z


def decoding_table(
    frames: Mapping[str, pd.DataFrame], *, shared_space: bool, n_neighbors: int, top_k: int, min_coverage: float,
    k_grid: Sequence[int] | None = None,
) -> pd.DataFrame:
    """kNN decoding for every (train rat, test rat): decoder on the train rat's train rows, scored
    on the test rat's test rows (train == test: within the rat).

    ``shared_space``: the embeddings share one space (multi-session fit); otherwise (single-session
    fits) the test rat is first rotated onto the train rat, fitted on both rats' train rows.
    ``k_grid`` (the trial protocol): k is chosen from it on the test rat's validation rows instead
    of ``n_neighbors``; column ``k`` is the k used.
    """
    rows = []
    for a, frame_a in frames.items():
        train_a = _rows(frame_a, "train")
        for b, frame_b in frames.items():
            train_b, test_b = _rows(frame_b, "train"), _rows(frame_b, "test")
            rotate = _unchanged
            if a != b and not shared_space:
                rotate = OrthogonalProcrustesAlignment(top_k=top_k).fit(
                    _z(train_a), _z(train_b), frame_labels(train_a), frame_labels(train_b)).transform
            z_test = rotate(_z(test_b))
            if k_grid is None:
                k = n_neighbors
                result = cross_decode(_z(train_a), _position(train_a), z_test, _position(test_b), n_neighbors=k)
            else:
                validation_b = _rows(frame_b, "validation")
                chosen = validated_decode(_z(train_a), _position(train_a), rotate(_z(validation_b)),
                                          _position(validation_b), z_test, _position(test_b), k_grid=k_grid)
                k, result = chosen.k, chosen.test
            coverage = label_coverage(_position(test_b), _position(frame_b))
            rows.append((a, b, result.r2, result.median_error_cm, result.n_train, result.n_test,
                         coverage, coverage < min_coverage, k))
    return pd.DataFrame(rows, columns=DECODING_COLUMNS)


def restricted_consistency(target: str, frames: Mapping[str, pd.DataFrame], *, bins: int) -> dict[str, float]:
    """Consistency of ``target``'s test rows with every other session, both directions averaged.

    The other sessions' rows (all of them) are restricted to the position range the target's test
    rows cover, and the bins to that range (same bin width as ``bins`` bins over all sessions), so
    a test part that covers part of the track is compared only where it has data.
    """
    test = _rows(frames[target], "test")
    lo, hi = float(_position(test).min()), float(_position(test).max())
    everything = np.concatenate([_position(f) for f in frames.values()])
    width = (everything.max() - everything.min()) or 1.0
    n_bins = max(3, int(round((bins - 1) * (hi - lo) / width)) + 1)  # bins edges: bins - 1 bins
    names = [target, *(n for n in frames if n != target)]
    parts = [test] + [f[(f["position"] >= lo) & (f["position"] <= hi)] for n, f in frames.items() if n != target]
    scores, pairs, _ = consistency_score(
        [_z(p) for p in parts], labels=[_position(p) for p in parts], dataset_ids=names, num_discretization_bins=n_bins)
    out: dict[str, list[float]] = {}
    for (a, b), score in zip(pairs, scores):
        if target in (a, b):
            other = b if a == target else a
            out.setdefault(str(other), []).append(float(score))
    return {other: float(np.mean(v)) for other, v in out.items()}


def new_session_table(
    kinds: Mapping[str, Mapping[str, pd.DataFrame]], held_out: str, *, bins: int, n_neighbors: int, min_coverage: float
) -> pd.DataFrame:
    """Scores of the held-out session per kind of embedding: consistency with each trained rat
    (and its mean) on its test rows, and position decoding of its test rows.

    ``kinds`` maps a kind ('random', 'single', 'multi', 'adapted', …) to {session: embedding table
    of a held-out fit}. The 'single' kind decodes with the rat's own decoder (its train rows);
    every other kind with one decoder pooled over the trained rats' train rows, since they share a
    space. Columns: kind, measure, source, target, value, test_coverage, flagged.
    """
    rows = []
    for kind, frames in kinds.items():
        trained = [n for n in frames if n != held_out]
        test = _rows(frames[held_out], "test")
        coverage = label_coverage(_position(test), _position(frames[held_out]))
        consistency = restricted_consistency(held_out, frames, bins=bins)
        rows += [(kind, "consistency", other, held_out, score) for other, score in consistency.items()]
        rows.append((kind, "consistency_mean", "+".join(trained), held_out, float(np.mean(list(consistency.values())))))
        sources = [held_out] if kind == "single" else trained
        train = pd.concat([_rows(frames[n], "train") for n in sources])
        result = cross_decode(_z(train), _position(train), _z(test), _position(test), n_neighbors=n_neighbors)
        source = "+".join(sources)
        rows += [(kind, "r2", source, held_out, result.r2), (kind, "median_error_cm", source, held_out, result.median_error_cm)]
    table = pd.DataFrame(rows, columns=["kind", "measure", "source", "target", "value"])
    table["test_coverage"] = coverage
    table["flagged"] = coverage < min_coverage
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
