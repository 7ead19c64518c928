"""k-nearest-neighbour decoding of labels from embeddings, within and across animals.

What users of the embeddings do next: fit a kNN decoder (cosine metric, uniform weights, like
``cebra.KNNDecoder`` / sklearn's ``KNeighborsRegressor`` and ``KNeighborsClassifier``) on the first
part of a session and predict the held-out rest (time-contiguous split, so neighbouring time bins
do not leak into the test set); or fit on one animal and predict another, which is meaningful when
the embeddings share one space (the multi-session model, or single-session embeddings after
Procrustes alignment). A continuous label is regressed (median absolute error, in the label's own
units, and R²), a discrete one classified (accuracy and balanced accuracy); `decode` gives beside
every score its chance level: the same decoder fitted on the training labels shuffled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.spatial import cKDTree

from cebra_core.analysis.protocols import METRICS

N_NEIGHBORS = 36  # k of the kNN decoder (the workflow's analysis.decoding_neighbors default)
# The k the CEBRA paper's decoder chose from on the validation trials (evaluation.decoding_k_grid):
# the k of every CEBRA-Behavior run behind Table S2 / Fig. 2d is one of these (cebra-figures,
# data/results_v1/cebra-b.csv, column knn). CEBRA 0.6.1's SingleRatDataset.decode tries
# (1, 4, 16, 36, 64, 100) instead.
K_GRID = (1, 4, 9, 16, 25)

__all__ = ["K_GRID", "METRICS", "DecodingResult", "ValidatedDecoding", "cross_decode", "cross_decode_table", "decode",
           "knn_classify", "knn_decode", "knn_predict", "pooled_decode", "validated_decode"]

LOWER_IS_BETTER = {"median_abs_error": True, "r2": False, "accuracy": False, "balanced_accuracy": False}
CHANCE_SEED = 0  # the shuffle of the training labels behind every chance level


@dataclass
class DecodingResult:
    """Scores and predictions of one regression (a continuous label; errors in the label's own unit)."""

    r2: float
    median_error: float
    prediction: np.ndarray
    truth: np.ndarray
    n_train: int
    n_test: int


def _check_pair(embedding: npt.ArrayLike, label: npt.ArrayLike, name: str, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (embedding (T, D), label (T,)) pair; dropping NaN rows is the caller's job."""
    emb = np.asarray(embedding, dtype=np.float64)
    lab = np.asarray(label)
    if emb.ndim != 2:
        raise ValueError(f"{name}: embedding must be 2-D (samples, dims), got shape {emb.shape}")
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1:
        raise ValueError(f"{name}: the label must be 1-D (one column), got shape {lab.shape}; pass labels[:, 0]")
    if len(emb) != len(lab):
        raise ValueError(f"{name}: embedding has {len(emb)} rows but the label has {len(lab)}")
    lab = lab.astype(dtype)
    if not (np.all(np.isfinite(emb)) and np.all(np.isfinite(lab))):
        raise ValueError(f"{name}: embedding or label contains NaN or inf")
    return emb, lab


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


def knn_indices(train_embedding: npt.ArrayLike, test_embedding: npt.ArrayLike, n_neighbors: int = N_NEIGHBORS,
                metric: str = "cosine") -> np.ndarray:
    """(n_test, n_neighbors) indices of each test row's nearest training rows."""
    train = _prepare(np.asarray(train_embedding, dtype=np.float64), metric)
    test = _prepare(np.asarray(test_embedding, dtype=np.float64), metric)
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be at least 1, got {n_neighbors}")
    if n_neighbors > len(train):
        raise ValueError(f"n_neighbors={n_neighbors} exceeds the {len(train)} training samples")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train embedding has {train.shape[1]} dims but test has {test.shape[1]}")
    _, idx = cKDTree(train).query(test, k=n_neighbors)
    return np.asarray(idx).reshape(len(test), n_neighbors)


def knn_predict(
    train_embedding: npt.ArrayLike,
    train_target: npt.ArrayLike,
    test_embedding: npt.ArrayLike,
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
) -> np.ndarray:
    """Predict each test row as the mean target of its ``n_neighbors`` nearest training rows."""
    target = np.asarray(train_target, dtype=np.float64)
    return target[knn_indices(train_embedding, test_embedding, n_neighbors, metric)].mean(axis=1)


def _vote(classes: np.ndarray) -> np.ndarray:
    """The most frequent class of each row of (n, k) neighbour classes; ties go to the smallest class
    (sklearn's KNeighborsClassifier with uniform weights)."""
    values = np.unique(classes)
    counts = np.stack([(classes == v).sum(axis=1) for v in values], axis=1)
    return values[np.argmax(counts, axis=1)]


def knn_classify(train_embedding: npt.ArrayLike, train_classes: npt.ArrayLike, test_embedding: npt.ArrayLike,
                 n_neighbors: int = N_NEIGHBORS, metric: str = "cosine") -> np.ndarray:
    """Predict each test row's class as the majority class of its ``n_neighbors`` nearest training rows."""
    classes = np.asarray(train_classes)
    return _vote(classes[knn_indices(train_embedding, test_embedding, n_neighbors, metric)])


def scores(truth: np.ndarray, prediction: np.ndarray, kind: str) -> dict[str, float]:
    """The scores of `METRICS` for one prediction: median absolute error (label units) and R²
    (continuous), accuracy and balanced accuracy (discrete: the mean recall over the true classes)."""
    if kind == "continuous":
        return {"median_abs_error": float(np.median(np.abs(prediction - truth))), "r2": _r2(truth, prediction)}
    correct = prediction == truth
    recall = [float(correct[truth == c].mean()) for c in np.unique(truth)]
    return {"accuracy": float(correct.mean()), "balanced_accuracy": float(np.mean(recall))}


def decode(train_embedding: npt.ArrayLike, train_label: npt.ArrayLike, test_embedding: npt.ArrayLike,
           test_label: npt.ArrayLike, kind: str, n_neighbors: int = N_NEIGHBORS, metric: str = "cosine",
           ) -> dict[str, tuple[float, float]]:  # fmt: skip
    """kNN decoding of one label column on the test rows: {metric: (score, chance)}, the chance the
    same decoder's score when fitted on the training labels shuffled (seed `CHANCE_SEED`)."""
    if kind not in METRICS:
        raise ValueError(f"kind must be one of {list(METRICS)}, got {kind!r}")
    dtype = np.int64 if kind == "discrete" else np.float64
    train_z, train_y = _check_pair(train_embedding, train_label, "train", dtype)
    test_z, test_y = _check_pair(test_embedding, test_label, "test", dtype)
    neighbours = knn_indices(train_z, test_z, n_neighbors, metric)
    shuffled = train_y[np.random.default_rng(CHANCE_SEED).permutation(len(train_y))]

    def predict(values: np.ndarray) -> np.ndarray:
        return _vote(values[neighbours]) if kind == "discrete" else values[neighbours].mean(axis=1)

    real, chance = scores(test_y, predict(train_y), kind), scores(test_y, predict(shuffled), kind)
    return {name: (real[name], chance[name]) for name in METRICS[kind]}


def _score(truth: np.ndarray, pred: np.ndarray, n_train: int) -> DecodingResult:
    values = scores(truth, pred, "continuous")
    return DecodingResult(r2=values["r2"], median_error=values["median_abs_error"], prediction=pred, truth=truth,
                          n_train=n_train, n_test=len(truth))


def knn_decode(
    embedding: npt.ArrayLike,
    label: npt.ArrayLike,
    train_fraction: float = 0.8,
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
) -> DecodingResult:
    """Decode a continuous label within one session: train on the first ``train_fraction`` of time,
    test on the rest. Returns R² and the median absolute error in the label's unit."""
    emb, lab = _check_pair(embedding, label, "knn_decode")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    split = int(len(emb) * train_fraction)
    if split < n_neighbors or split == len(emb):
        raise ValueError(
            f"A {train_fraction:.0%} split of {len(emb)} samples leaves {split} training and "
            f"{len(emb) - split} test samples; need at least n_neighbors={n_neighbors} and 1")
    pred = knn_predict(emb[:split], lab[:split], emb[split:], n_neighbors, metric)
    return _score(lab[split:], pred, split)


def cross_decode(
    train_embedding: npt.ArrayLike,
    train_label: npt.ArrayLike,
    test_embedding: npt.ArrayLike,
    test_label: npt.ArrayLike,
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
) -> DecodingResult:
    """Cross-animal decoding: fit on one animal's whole embedding, predict another's continuous label.

    Only meaningful when both embeddings live in one space (multi-session model, or aligned).
    """
    tr_emb, tr_lab = _check_pair(train_embedding, train_label, "train")
    te_emb, te_lab = _check_pair(test_embedding, test_label, "test")
    pred = knn_predict(tr_emb, tr_lab, te_emb, n_neighbors, metric)
    return _score(te_lab, pred, len(tr_emb))


@dataclass
class ValidatedDecoding:
    """A decoder whose k was chosen on validation rows: the chosen k, the validation score (the
    kind's primary metric) of every k tried, and the test scores {metric: (score, chance)} at that k."""

    k: int
    validation: dict[int, float]
    test: dict[str, tuple[float, float]]


def validated_decode(
    train_embedding: npt.ArrayLike,
    train_label: npt.ArrayLike,
    validation_embedding: npt.ArrayLike,
    validation_label: npt.ArrayLike,
    test_embedding: npt.ArrayLike,
    test_label: npt.ArrayLike,
    kind: str = "continuous",
    k_grid: Sequence[int] = K_GRID,
    metric: str = "cosine",
) -> ValidatedDecoding:
    """kNN decoder fitted on the train rows; k chosen from ``k_grid`` by the kind's primary metric on
    the validation rows (ties: the smaller k; a k above the number of train rows is skipped), then
    scored on the test rows (the CEBRA paper's protocol)."""
    n_train = len(np.asarray(train_label))
    grid = sorted({int(k) for k in k_grid})
    if not grid or grid[0] < 1 or grid[0] > n_train:
        raise ValueError(f"k_grid {list(k_grid)} has no k between 1 and the {n_train} training samples")
    grid = [k for k in grid if k <= n_train]
    primary = METRICS[kind][0]
    sign = 1 if LOWER_IS_BETTER[primary] else -1
    validation = {k: decode(train_embedding, train_label, validation_embedding, validation_label, kind, k, metric)[primary][0]
                  for k in grid}
    k = min(grid, key=lambda n: sign * validation[n])
    return ValidatedDecoding(k, validation, decode(train_embedding, train_label, test_embedding, test_label, kind, k, metric))


def pooled_decode(
    train_embeddings: Sequence[npt.ArrayLike],
    train_labels: Sequence[npt.ArrayLike],
    test_embedding: npt.ArrayLike,
    test_label: npt.ArrayLike,
    train_fraction: float = 0.8,
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
) -> DecodingResult:
    """Decoder fitted on several animals' whole embeddings (pooled), tested on another's last part.

    The test samples are those ``knn_decode(test_embedding, test_label, train_fraction)`` tests
    on (the last ``1 - train_fraction`` of time; 0 tests on the whole session), so a decoder from
    other animals and the animal's own decoder are scored on the same samples.
    """
    if len(train_embeddings) != len(train_labels) or not train_embeddings:
        raise ValueError(
            f"got {len(train_embeddings)} training embeddings and {len(train_labels)} labels; "
            "need one label per embedding, at least one")
    pairs = [_check_pair(e, p, f"train {i}") for i, (e, p) in enumerate(zip(train_embeddings, train_labels))]
    emb, lab = _check_pair(test_embedding, test_label, "test")
    if not 0 <= train_fraction < 1:
        raise ValueError(f"train_fraction must be in [0, 1), got {train_fraction}")
    split = int(len(emb) * train_fraction)
    return cross_decode(np.concatenate([e for e, _ in pairs]), np.concatenate([p for _, p in pairs]),
                        emb[split:], lab[split:], n_neighbors=n_neighbors, metric=metric)


def cross_decode_table(
    embeddings: Mapping[str, npt.ArrayLike],
    labels: Mapping[str, npt.ArrayLike],
    n_neighbors: int = N_NEIGHBORS,
    metric: str = "cosine",
) -> pd.DataFrame:
    """All train→test animal pairs as a pandas DataFrame (train, test, r2, median_error, n_train, n_test).

    The diagonal (train == test) is the within-session time-split decoding of :func:`knn_decode`.
    """
    names = list(embeddings)
    missing = [n for n in names if n not in labels]
    if missing:
        raise ValueError(f"no labels given for {missing}")
    rows = []
    for a in names:
        for b in names:
            if a == b:
                res = knn_decode(embeddings[a], labels[a], n_neighbors=n_neighbors, metric=metric)
            else:
                res = cross_decode(embeddings[a], labels[a], embeddings[b], labels[b], n_neighbors=n_neighbors,
                                   metric=metric)
            rows.append({"train": a, "test": b, "r2": res.r2, "median_error": res.median_error,
                         "n_train": res.n_train, "n_test": res.n_test})
    return pd.DataFrame(rows)
