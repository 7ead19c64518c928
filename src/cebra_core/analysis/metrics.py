"""Consistency of embeddings across animals or runs (CEBRA 0.6.1 ``consistency_score`` semantics).

Between datasets, each embedding is first reduced to one unit vector per label bin (99 bins over
the global label range), so embeddings of different lengths become paired rows; the score of an
ordered pair (a, b) is the R² of a linear regression (with intercept) predicting b from a,
averaged over b's dimensions. Between runs, the embeddings of one session are compared row by row.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from cebra_core.analysis.binning import EmptyBinError, class_means, grid_cell_names, grid_edges, grid_means, shared_bins

BINS = 100  # label bin edges of the consistency score (CEBRA's default; the workflow's analysis.consistency_bins)

__all__ = ["EmptyBinError", "bin_embedding", "consistency_score", "label_consistency", "linear_r2"]


def linear_r2(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """R² of a least-squares fit y ≈ x W + b, scored on the same data, averaged over y's columns.

    Equals sklearn's ``LinearRegression().fit(x, y).score(x, y)`` (uniform average over outputs;
    a constant output column scores 1 if predicted exactly, else 0), without depending on sklearn.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    x_mean, y_mean = x.mean(0), y.mean(0)
    coef, *_ = np.linalg.lstsq(x - x_mean, y - y_mean, rcond=None)
    residual = y - y_mean - (x - x_mean) @ coef
    ss_res = (residual**2).sum(0)
    ss_tot = ((y - y_mean) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
    return float(r2.mean())


def bin_embedding(
    embedding: np.ndarray,
    label: np.ndarray,
    lo: float,
    hi: float,
    n_bins: int = BINS,
    name: object = 0,
) -> np.ndarray:
    """Mean embedding per label bin, unit-normalised: (n_bins - 1, D), CEBRA's ``align_embeddings``.

    Edges are ``linspace(lo, hi, n_bins)``; bin k (1..n_bins-1) averages the rows whose
    ``np.digitize`` value is k, else those within ±1, else ±2 bins; still empty is an error.
    """
    digit = np.digitize(label, np.linspace(lo, hi, n_bins))
    counts = np.bincount(digit, minlength=n_bins + 1).astype(np.float64)
    sums = np.stack(
        [np.bincount(digit, weights=embedding[:, d], minlength=n_bins + 1) for d in range(embedding.shape[1])],
        axis=1,
    )
    csum_n = np.concatenate([[0.0], np.cumsum(counts)])
    csum_s = np.concatenate([np.zeros((1, sums.shape[1])), np.cumsum(sums, axis=0)])
    out = np.empty((n_bins - 1, embedding.shape[1]))
    for k in range(1, n_bins):
        for width in (0, 1, 2):
            a, b = max(k - width, 0), min(k + width, n_bins) + 1
            n = csum_n[b] - csum_n[a]
            if n > 0:
                out[k - 1] = (csum_s[b] - csum_s[a]) / n
                break
        else:
            edges = np.linspace(lo, hi, n_bins)
            win_lo, win_hi = edges[max(k - 3, 0)], edges[min(k + 2, n_bins - 1)]
            problem = (
                f"label bin {k} of {n_bins - 1} ([{edges[k - 1]:.4g}, {edges[k]:.4g})) is empty even after the "
                f"±2-bin fallback: no labels in [{win_lo:.4g}, {win_hi:.4g}); its labels span "
                f"[{label.min():.4g}, {label.max():.4g}] of the common range [{lo:.4g}, {hi:.4g}]"
            )
            raise EmptyBinError(f"dataset {name!r}: {problem}; use fewer bins or leave this dataset out", problem)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    if np.any(norms == 0):
        k = int(np.flatnonzero(norms[:, 0] == 0)[0]) + 1
        raise ValueError(f"dataset {name!r}: the mean embedding of label bin {k} is zero; cannot normalise it")
    return out / norms


def _drop_nan_rows(embedding: np.ndarray, label: np.ndarray, name: object) -> tuple[np.ndarray, np.ndarray]:
    """Drop rows whose embedding has a NaN (as CEBRA does), with a warning that says how many."""
    bad = np.isnan(embedding).any(axis=1)
    if bad.any():
        warnings.warn(
            f"dataset {name!r}: dropped {int(bad.sum())} of {len(embedding)} embedding rows containing NaN",
            RuntimeWarning, stacklevel=3)
        embedding = embedding[~bad]
        label = label[~bad]
    return embedding, label


def _pairwise_scores(embeddings: Sequence[np.ndarray], ids: Sequence) -> tuple[list[float], list[tuple]]:
    """R² for every ordered pair (n, m), n != m, n outer and m inner, as CEBRA loops."""
    scores, pairs = [], []
    for n, x in enumerate(embeddings):
        for m, y in enumerate(embeddings):
            if n != m:
                scores.append(linear_r2(x, y))
                pairs.append((ids[n], ids[m]))
    return scores, pairs


def _average_by_pair(scores: Sequence[float], pairs: Sequence[tuple]) -> np.ndarray:
    """Average scores over identical (a, b) pairs, in first-seen order (CEBRA ``_average_scores``)."""
    groups: dict[tuple, list[float]] = {}
    for score, pair in zip(scores, pairs):
        groups.setdefault(tuple(pair), []).append(score)
    return np.array([sum(v) / len(v) for v in groups.values()])


def consistency_score(
    embeddings: Sequence[npt.ArrayLike],
    labels: Sequence[npt.ArrayLike] | None = None,
    dataset_ids: Sequence | None = None,
    between: Literal["datasets", "runs"] = "datasets",
    num_discretization_bins: int = BINS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consistency (R², a fraction) between embeddings: returns ``(scores, pairs, ids)``.

    ``between="datasets"``: one 1-D label array per embedding (e.g. position); embeddings are
    binned on the common label range and compared per bin. Pairs are ordered (a, b) =
    "predict b from a", in nested-loop order, only between different ids; scores of repeated
    id pairs are averaged (the pairs array is not de-duplicated, as in CEBRA). ``ids`` is
    ``dataset_ids`` (default 0..n-1) in the caller's order.
    ``between="runs"``: several embeddings of the same session (same number of rows), compared
    row by row with no labels; pairs and ids are run indices 0..n-1.
    NaN embedding rows are dropped with a warning (in "runs", jointly across runs).
    """
    if between not in ("datasets", "runs"):
        raise ValueError(f"between must be 'datasets' or 'runs', got {between!r}")
    if len(embeddings) < 2:
        raise ValueError(f"need at least two embeddings to compare, got {len(embeddings)}")
    embs = [np.asarray(e) for e in embeddings]
    for i, e in enumerate(embs):
        if e.ndim != 2:
            raise ValueError(f"embedding {i} must be 2-D (samples, dims), got shape {e.shape}")

    if between == "runs":
        if labels is not None:
            raise ValueError("between='runs' compares runs of one session row by row: give no labels")
        if dataset_ids is not None:
            raise ValueError("between='runs' takes no dataset_ids: all embeddings come from one session")
        lengths = {len(e) for e in embs}
        if len(lengths) != 1:
            raise ValueError(
                f"between='runs' needs embeddings of equal length (same session), got lengths "
                f"{[len(e) for e in embs]}; use between='datasets' with labels for different sessions")
        bad = np.zeros(len(embs[0]), dtype=bool)
        for e in embs:
            bad |= np.isnan(e).any(axis=1)
        if bad.any():
            warnings.warn(f"dropped {int(bad.sum())} of {len(bad)} time points where some run's embedding is NaN",
                          RuntimeWarning, stacklevel=2)
            embs = [e[~bad] for e in embs]
        run_ids = np.arange(len(embs))
        scores, pairs = _pairwise_scores(embs, list(run_ids))
        return _average_by_pair(scores, pairs).squeeze(), np.array(pairs).squeeze(), run_ids

    # between == "datasets"
    if labels is None:
        raise ValueError("between='datasets' needs labels: one 1-D label array per embedding")
    if len(labels) != len(embs):
        raise ValueError(f"got {len(embs)} embeddings but {len(labels)} label arrays; need one per embedding")
    ids = list(range(len(embs))) if dataset_ids is None else list(dataset_ids)
    if len(ids) != len(embs):
        raise ValueError(f"got {len(embs)} embeddings but {len(ids)} dataset_ids")
    if len(set(ids)) < 2:
        raise ValueError(f"need at least two different datasets to compare, got dataset_ids {ids}")
    if num_discretization_bins < 2:
        raise ValueError(f"num_discretization_bins must be at least 2, got {num_discretization_bins}")

    labs = []
    for i, (e, lab) in enumerate(zip(embs, labels)):
        lab = np.asarray(lab)
        if lab.ndim != 1:
            raise ValueError(
                f"dataset {ids[i]!r} (index {i}): labels must be 1-D, got shape {lab.shape}; "
                "pass a single column, e.g. the position labels[:, 0]")
        if len(lab) != len(e):
            raise ValueError(
                f"dataset {ids[i]!r} (index {i}): embedding has {len(e)} rows but labels have {len(lab)}")
        if not np.issubdtype(lab.dtype, np.number) or np.issubdtype(lab.dtype, np.complexfloating):
            raise ValueError(f"dataset {ids[i]!r} (index {i}): labels must be real numbers, got dtype {lab.dtype}")
        if not np.all(np.isfinite(lab)):
            raise ValueError(f"dataset {ids[i]!r} (index {i}): labels contain NaN or inf")
        labs.append(lab)

    # Common bin edges from all labels of all datasets (before dropping NaN rows, as CEBRA).
    lo = min(float(lab.min()) for lab in labs)
    hi = max(float(lab.max()) for lab in labs)
    binned = []
    for i, (e, lab) in enumerate(zip(embs, labs)):
        e, lab = _drop_nan_rows(e, lab, ids[i])
        if len(e) == 0:
            raise ValueError(f"dataset {ids[i]!r} (index {i}): no rows left after dropping NaN rows")
        binned.append(bin_embedding(e.astype(np.float64), lab, lo, hi, num_discretization_bins, name=ids[i]))

    scores, pairs = _pairwise_scores(binned, ids)
    keep = [p[0] != p[1] for p in pairs]
    pairs_arr = np.array(pairs)[keep]
    scores_arr = _average_by_pair(np.array(scores)[keep], pairs_arr.tolist())
    return scores_arr.squeeze(), pairs_arr.squeeze(), np.array(ids)


def label_consistency(
    embeddings: Sequence[npt.ArrayLike],
    labels: Sequence[npt.ArrayLike],
    dataset_ids: Sequence,
    kind: Literal["continuous", "discrete"] = "continuous",
    num_discretization_bins: int = BINS,
    columns: Sequence[str] = ("x", "y"),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`consistency_score` between datasets on any declared label: ``labels[i]`` is one continuous
    column (T,) (CEBRA's bins, exactly `consistency_score`), two continuous columns (T, 2) (a grid,
    `cebra_core.analysis.binning`; ``columns`` name them in errors), or a discrete column (T,) (one
    bin per class; with no more classes than the embedding's dimension + 1 the linear fit is exact and
    every score 1, which warns). Returns ``(scores, pairs, ids)`` as `consistency_score` does."""
    first = np.asarray(labels[0])
    if kind == "continuous" and first.ndim == 1:
        return consistency_score(embeddings, labels, dataset_ids, num_discretization_bins=num_discretization_bins)
    ids = list(dataset_ids)
    if len(embeddings) != len(labels) or len(ids) != len(embeddings):
        raise ValueError(f"got {len(embeddings)} embeddings, {len(labels)} label arrays and {len(ids)} dataset_ids")
    pairs = [_drop_nan_rows(np.asarray(e, dtype=np.float64), np.asarray(l), ids[i])
             for i, (e, l) in enumerate(zip(embeddings, labels))]
    if kind == "discrete":
        classes = np.unique(np.concatenate([l for _, l in pairs]))
        binned = [class_means(e, l, classes) for e, l in pairs]
        names = [f"class {c}" for c in classes]
        dimension = pairs[0][0].shape[1]
        if len(classes) <= dimension + 1:
            warnings.warn(f"consistency over {len(classes)} classes of a {dimension}-D embedding: an affine map "
                          f"fits {dimension + 1} or fewer points exactly, so every score is 1 whatever the "
                          "embeddings; use an output_dimension below the number of classes minus 1, or a "
                          "continuous consistency label", stacklevel=2)
    elif first.ndim == 2 and first.shape[1] == 2:
        everything = np.concatenate([l for _, l in pairs]).astype(np.float64)
        lo, hi = everything.min(axis=0), everything.max(axis=0)
        edges = grid_edges(num_discretization_bins)
        binned = [grid_means(e, l.astype(np.float64), lo, hi, edges) for e, l in pairs]
        names = grid_cell_names(lo, hi, edges, tuple(columns))
    else:
        raise ValueError(f"labels of shape {first.shape}: give one column, two continuous columns or one discrete column")
    scores, pair_ids = _pairwise_scores(shared_bins(binned, ids, names), ids)
    keep = [p[0] != p[1] for p in pair_ids]
    pairs_arr = np.array(pair_ids)[keep]
    scores_arr = _average_by_pair(np.array(scores)[keep], pairs_arr.tolist())
    return scores_arr.squeeze(), pairs_arr.squeeze(), np.array(ids)
