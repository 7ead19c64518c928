"""k-nearest-neighbour decoding of position from embeddings, within and across animals.

What users of the embeddings do next: fit a kNN regressor (cosine metric, uniform weights, like
``cebra.KNNDecoder`` / sklearn ``KNeighborsRegressor``) on the first part of a session and
predict the held-out rest (time-contiguous split, so neighbouring time bins do not leak into the
test set); or fit on one rat and predict another, which is meaningful when the embeddings share
one space (the multi-session model, or single-session embeddings after Procrustes alignment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.spatial import cKDTree

N_NEIGHBORS = 36  # k of the kNN decoder (the workflow's analysis.decoding_neighbors default)
# The k the CEBRA paper's decoder chose from on the validation trials (evaluation.decoding_k_grid):
# the k of every CEBRA-Behavior run behind Table S2 / Fig. 2d is one of these (cebra-figures,
# data/results_v1/cebra-b.csv, column knn). CEBRA 0.6.1's SingleRatDataset.decode tries
# (1, 4, 16, 36, 64, 100) instead.
K_GRID = (1, 4, 9, 16, 25)

__all__ = ["K_GRID", "DecodingResult", "ValidatedDecoding", "cross_decode", "cross_decode_table", "knn_decode",
           "knn_predict", "pooled_decode", "validated_decode"]


@dataclass
class DecodingResult:
    """Scores and predictions of one decoding run (positions in the labels' unit, errors in cm)."""

    r2: float
    median_error_cm: float
    prediction: np.ndarray
    truth: np.ndarray
    n_train: int
    n_test: int


def _check_pair(embedding: npt.ArrayLike, position: npt.ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (embedding (T, D), position (T,)) pair; drop NaN rows is the caller's job."""
    emb = np.asarray(embedding, dtype=np.float64)
    pos = np.asarray(position, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"{name}: embedding must be 2-D (samples, dims), got shape {emb.shape}")
    if pos.ndim == 2 and pos.shape[1] == 1:
        pos = pos[:, 0]
    if pos.ndim != 1:
        raise ValueError(f"{name}: position must be 1-D, got shape {pos.shape}; pass labels[:, 0]")
    if len(emb) != len(pos):
        raise ValueError(f"{name}: embedding has {len(emb)} rows but position has {len(pos)}")
    if not (np.all(np.isfinite(emb)) and np.all(np.isfinite(pos))):
        raise ValueError(f"{name}: embedding or position contains NaN or inf")
    return emb, pos


def _r2(truth: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination (sklearn ``r2_score`` for one output)."""
    ss_res = float(((truth - pred) ** 2).sum())
    ss_tot = float(((truth - truth.mean()) ** 2).sum())
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """Cosine neighbours = Euclidean neighbours of unit vectors (|a-b|^2 = 2 - 2 cos)."""
    if metric == "cosine":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norm == 0):
            raise ValueError("cosine metric: the embedding has an all-zero row")
        return x / norm
    if metric == "euclidean":
        return x
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


def knn_predict(
    train_embedding: npt.ArrayLike,
    train_target: npt.ArrayLike,
    test_embedding: npt.ArrayLike,
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
) -> np.ndarray:
    """Predict each test row as the mean target of its ``n_neighbors`` nearest training rows."""
    train = _prepare(np.asarray(train_embedding, dtype=np.float64), metric)
    test = _prepare(np.asarray(test_embedding, dtype=np.float64), metric)
    target = np.asarray(train_target, dtype=np.float64)
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be at least 1, got {n_neighbors}")
    if n_neighbors > len(train):
        raise ValueError(f"n_neighbors={n_neighbors} exceeds the {len(train)} training samples")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train embedding has {train.shape[1]} dims but test has {test.shape[1]}")
    _, idx = cKDTree(train).query(test, k=n_neighbors)
    idx = np.asarray(idx).reshape(len(test), n_neighbors)
    return target[idx].mean(axis=1)


def _score(truth: np.ndarray, pred: np.ndarray, n_train: int, cm_per_unit: float) -> DecodingResult:
    return DecodingResult(
        r2=_r2(truth, pred),
        median_error_cm=float(np.median(np.abs(pred - truth)) * cm_per_unit),
        prediction=pred,
        truth=truth,
        n_train=n_train,
        n_test=len(truth),
    )


def knn_decode(
    embedding: npt.ArrayLike,
    position: npt.ArrayLike,
    train_fraction: float = 0.8,
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
    cm_per_unit: float = 100.0,
) -> DecodingResult:
    """Decode position within one session: train on the first ``train_fraction`` of time, test on the rest.

    Returns R² and the median absolute error in cm (position in metres: ``cm_per_unit=100``).
    """
    emb, pos = _check_pair(embedding, position, "knn_decode")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    split = int(len(emb) * train_fraction)
    if split < n_neighbors or split == len(emb):
        raise ValueError(
            f"A {train_fraction:.0%} split of {len(emb)} samples leaves {split} training and "
            f"{len(emb) - split} test samples; need at least n_neighbors={n_neighbors} and 1")
    pred = knn_predict(emb[:split], pos[:split], emb[split:], n_neighbors, metric)
    return _score(pos[split:], pred, split, cm_per_unit)


def cross_decode(
    train_embedding: npt.ArrayLike,
    train_position: npt.ArrayLike,
    test_embedding: npt.ArrayLike,
    test_position: npt.ArrayLike,
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
    cm_per_unit: float = 100.0,
) -> DecodingResult:
    """Cross-animal decoding: fit on one rat's whole embedding, predict another rat's position.

    Only meaningful when both embeddings live in one space (multi-session model, or aligned).
    """
    tr_emb, tr_pos = _check_pair(train_embedding, train_position, "train")
    te_emb, te_pos = _check_pair(test_embedding, test_position, "test")
    pred = knn_predict(tr_emb, tr_pos, te_emb, n_neighbors, metric)
    return _score(te_pos, pred, len(tr_emb), cm_per_unit)


@dataclass
class ValidatedDecoding:
    """A decoder whose k was chosen on validation rows: the chosen k, the validation median
    error (cm) of every k tried, and the test scores at the chosen k."""

    k: int
    validation_error_cm: dict[int, float]
    test: DecodingResult


def validated_decode(
    train_embedding: npt.ArrayLike,
    train_position: npt.ArrayLike,
    validation_embedding: npt.ArrayLike,
    validation_position: npt.ArrayLike,
    test_embedding: npt.ArrayLike,
    test_position: npt.ArrayLike,
    k_grid: Sequence[int] = K_GRID,
    metric: str = "cosine",
    cm_per_unit: float = 100.0,
) -> ValidatedDecoding:
    """kNN decoder fitted on the train rows; k chosen from ``k_grid`` by the median error on the
    validation rows (ties: the smaller k; a k above the number of train rows is skipped), then
    scored on the test rows (the CEBRA paper's protocol)."""
    tr_emb, tr_pos = _check_pair(train_embedding, train_position, "train")
    va_emb, va_pos = _check_pair(validation_embedding, validation_position, "validation")
    te_emb, te_pos = _check_pair(test_embedding, test_position, "test")
    grid = sorted({int(k) for k in k_grid})
    if not grid or grid[0] < 1 or grid[0] > len(tr_emb):
        raise ValueError(f"k_grid {list(k_grid)} has no k between 1 and the {len(tr_emb)} training samples")
    grid = [k for k in grid if k <= len(tr_emb)]
    def score(k: int, embedding: np.ndarray, truth: np.ndarray) -> DecodingResult:
        return _score(truth, knn_predict(tr_emb, tr_pos, embedding, k, metric), len(tr_emb), cm_per_unit)

    errors = {k: score(k, va_emb, va_pos).median_error_cm for k in grid}
    k = min(grid, key=lambda n: errors[n])
    return ValidatedDecoding(k, errors, score(k, te_emb, te_pos))


def pooled_decode(
    train_embeddings: Sequence[npt.ArrayLike],
    train_positions: Sequence[npt.ArrayLike],
    test_embedding: npt.ArrayLike,
    test_position: npt.ArrayLike,
    train_fraction: float = 0.8,
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
    cm_per_unit: float = 100.0,
) -> DecodingResult:
    """Decoder fitted on several rats' whole embeddings (pooled), tested on another rat's last part.

    The test samples are those ``knn_decode(test_embedding, test_position, train_fraction)`` tests
    on (the last ``1 - train_fraction`` of time; 0 tests on the whole session), so a decoder from
    other animals and the rat's own decoder are scored on the same samples.
    """
    if len(train_embeddings) != len(train_positions) or not train_embeddings:
        raise ValueError(
            f"got {len(train_embeddings)} training embeddings and {len(train_positions)} positions; "
            "need one position per embedding, at least one")
    pairs = [_check_pair(e, p, f"train {i}") for i, (e, p) in enumerate(zip(train_embeddings, train_positions))]
    emb, pos = _check_pair(test_embedding, test_position, "test")
    if not 0 <= train_fraction < 1:
        raise ValueError(f"train_fraction must be in [0, 1), got {train_fraction}")
    split = int(len(emb) * train_fraction)
    return cross_decode(np.concatenate([e for e, _ in pairs]), np.concatenate([p for _, p in pairs]),
                        emb[split:], pos[split:], n_neighbors=n_neighbors, metric=metric, cm_per_unit=cm_per_unit)


def cross_decode_table(
    embeddings: Mapping[str, npt.ArrayLike],
    positions: Mapping[str, npt.ArrayLike],
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
    cm_per_unit: float = 100.0,
) -> pd.DataFrame:
    """All train→test rat pairs as a pandas DataFrame (train, test, r2, median_error_cm, n_train, n_test).

    The diagonal (train == test) is the within-session time-split decoding of :func:`knn_decode`.
    """
    names = list(embeddings)
    missing = [n for n in names if n not in positions]
    if missing:
        raise ValueError(f"no positions given for {missing}")
    rows = []
    for a in names:
        for b in names:
            if a == b:
                res = knn_decode(embeddings[a], positions[a], n_neighbors=n_neighbors, metric=metric,
                                 cm_per_unit=cm_per_unit)
            else:
                res = cross_decode(embeddings[a], positions[a], embeddings[b], positions[b],
                                   n_neighbors=n_neighbors, metric=metric, cm_per_unit=cm_per_unit)
            rows.append({"train": a, "test": b, "r2": res.r2, "median_error_cm": res.median_error_cm,
                         "n_train": res.n_train, "n_test": res.n_test})
    return pd.DataFrame(rows)
