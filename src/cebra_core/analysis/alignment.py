"""Orthogonal Procrustes alignment of one embedding onto another (CEBRA 0.6.1 semantics).

CEBRA matches every row of ``data`` to the ``top_k`` reference rows whose labels are nearest,
then solves the orthogonal Procrustes problem on those matched pairs (no centring, no scaling).
CEBRA builds the full n_data x n_ref distance matrix for the match; here a k-d tree finds the
few candidates per row that CEBRA's rounded distance formula could rank first, and that formula
ranks them, so memory stays O(n_data · candidates) and the chosen neighbours (hence the
rotation) are CEBRA's up to exact ties of its rounded distances.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

__all__ = ["OrthogonalProcrustesAlignment", "align_to_reference", "nearest_label_indices"]

# Candidate rows per query in the first k-d tree pass, and the most (row x candidate) entries
# held at once; rows whose candidates may not cover CEBRA's picks are re-queried with more.
TOP_K = 5  # label neighbours per sample (CEBRA's default; the workflow's analysis.alignment_top_k)
_FIRST_CANDIDATES = 8
_MAX_ENTRIES = 1 << 18


def _as_2d(array: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``array`` as a 2-D numpy array (1-D becomes one column), as CEBRA does."""
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {array.shape}")
    return array


def _cebra_sqdist(label: np.ndarray, ref_label: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """CEBRA's squared distance |a|^2 + |b|^2 - 2 a.b between label rows and candidate ref rows.

    Evaluated in the labels' own dtype like CEBRA's einsum, so near-ties round the same way.
    """
    norm_i = (label**2).sum(1)
    norm_j = (ref_label**2).sum(1)
    dot = np.einsum("nd,nkd->nk", label, ref_label[idx])
    return norm_i[:, None] + norm_j[idx] - 2 * dot


def _rounding_slack(label: np.ndarray, ref_label: np.ndarray) -> np.ndarray:
    """Per-row bound on |CEBRA's rounded distance - exact distance|, doubled (both sides).

    CEBRA evaluates |a|^2 + |b|^2 - 2 a.b in the labels' dtype; with the demo's float32 labels
    that rounds neighbour distances to a few ulps of |a|^2, far coarser than the gaps between
    nearby positions, so its 5 picks can be the 20th-nearest in exact terms.
    """
    dtype = np.result_type(label.dtype, ref_label.dtype)
    eps = np.finfo(np.float64).eps
    if np.issubdtype(dtype, np.floating):
        eps = max(eps, float(np.finfo(dtype).eps))
    d = label.shape[1]
    scale = (label.astype(np.float64) ** 2).sum(1) + float((ref_label.astype(np.float64) ** 2).sum(1).max())
    return 2 * (4 * d + 8) * eps * scale


def nearest_label_indices(label: npt.ArrayLike, ref_label: npt.ArrayLike, top_k: int) -> np.ndarray:
    """Indices (n_data, top_k) of the reference rows nearest to each label row, nearest first.

    The same picks as CEBRA's ``argsort`` over its full distance matrix (same rounded distances),
    except for the order among rows whose rounded distances tie exactly: CEBRA's quicksort picks
    among those arbitrarily; here the truly nearest, then the lower index, wins.
    A k-d tree gives the exact nearest rows; every row that CEBRA's rounding could move into
    the top k is added as a candidate and ranked with CEBRA's formula. Memory stays
    O(n_data · candidates) instead of O(n_data · n_ref).
    """
    label = _as_2d(label, "label")
    ref_label = _as_2d(ref_label, "ref_label")
    n_ref = len(ref_label)
    if not 1 <= top_k <= n_ref:
        raise ValueError(f"top_k must be between 1 and the {n_ref} reference rows, got {top_k}")
    label64 = label.astype(np.float64)
    tree = cKDTree(ref_label.astype(np.float64))
    slack = _rounding_slack(label, ref_label)
    out = np.empty((len(label), top_k), dtype=np.intp)
    pending = np.arange(len(label))
    n_cand = min(n_ref, top_k + _FIRST_CANDIDATES)
    while len(pending):
        unresolved = []
        step = max(1, _MAX_ENTRIES // n_cand)
        for start in range(0, len(pending), step):
            rows = pending[start:start + step]
            exact, cand = tree.query(label64[rows], k=n_cand)
            exact = np.asarray(exact).reshape(len(rows), n_cand) ** 2
            cand = np.asarray(cand, dtype=np.intp).reshape(len(rows), n_cand)
            # Covered when the farthest candidate is beyond the k-th exact distance + slack.
            ok = (n_cand == n_ref) | (exact[:, -1] > exact[:, top_k - 1] + slack[rows])
            unresolved.append(rows[~ok])
            rows, exact, cand = rows[ok], exact[ok], cand[ok]
            dist = _cebra_sqdist(label[rows], ref_label, cand)
            order = np.lexsort((cand, exact, dist), axis=-1)[:, :top_k]
            out[rows] = np.take_along_axis(cand, order, axis=1)
        pending = np.concatenate(unresolved)
        n_cand = min(n_ref, 4 * n_cand)
    return out


class OrthogonalProcrustesAlignment:
    """Align ``data`` onto ``ref_data`` by label-nearest-neighbour matching + orthogonal Procrustes.

    Same defaults and semantics as ``cebra.data.helper.OrthogonalProcrustesAlignment`` in
    CEBRA 0.6.1; the fitted D x D orthogonal matrix is ``rotation_`` and
    ``transform(data) = data @ rotation_``.
    """

    def __init__(self, top_k: int = TOP_K, subsample: int | None = None):
        self.top_k = top_k
        self.subsample = subsample
        self.rotation_: np.ndarray | None = None

    def fit(
        self,
        ref_data: npt.ArrayLike,
        data: npt.ArrayLike,
        ref_label: npt.ArrayLike | None = None,
        label: npt.ArrayLike | None = None,
    ) -> OrthogonalProcrustesAlignment:
        """Find the orthogonal R minimising |X R - Y|_F over the label-matched row pairs."""
        ref_data = _as_2d(ref_data, "ref_data")
        data = _as_2d(data, "data")
        if ref_label is None and label is None:
            if len(ref_data) != len(data):
                raise ValueError(
                    "missing labels: ref_data has "
                    f"{len(ref_data)} rows and data has {len(data)}; without labels they can only "
                    "be aligned row by row, so give ref_label and label")
            # Same number of rows and no labels: rows are already matched in time.
            ref_label = label = np.arange(len(data))[:, None]
        elif ref_label is None or label is None:
            raise ValueError(
                "missing labels: give both ref_label and label, or neither "
                f"(got ref_label={'None' if ref_label is None else 'set'}, "
                f"label={'None' if label is None else 'set'})")
        ref_label = _as_2d(ref_label, "ref_label")
        label = _as_2d(label, "label")

        if len(ref_data) < self.top_k:
            raise ValueError(f"ref_data needs at least top_k={self.top_k} rows, got {len(ref_data)}")
        if len(ref_data) != len(ref_label):
            raise ValueError(f"ref_data has {len(ref_data)} rows but ref_label has {len(ref_label)}")
        if len(data) != len(label):
            raise ValueError(f"data has {len(data)} rows but label has {len(label)}")
        if ref_label.shape[1] != label.shape[1]:
            raise ValueError(
                f"ref_label has {ref_label.shape[1]} columns but label has {label.shape[1]}")
        if data.shape[1] != ref_data.shape[1]:
            raise ValueError(
                f"data has {data.shape[1]} features but ref_data has {ref_data.shape[1]}; "
                "they must match to be aligned")
        for name, arr in (("ref_data", ref_data), ("data", data), ("ref_label", ref_label), ("label", label)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or inf ({int((~np.isfinite(arr)).any(1).sum())} rows)")

        target_idx = nearest_label_indices(label, ref_label, self.top_k)  # (n, k)
        k = self.top_k
        ref64 = ref_data.astype(np.float64, copy=False)
        data64 = data.astype(np.float64, copy=False)

        n_pairs = len(data) * k
        if self.subsample is not None and self.subsample > n_pairs:
            warnings.warn(
                f"subsample={self.subsample} is larger than the {n_pairs} matched pairs; "
                "ignoring it and using all pairs (as CEBRA does)", stacklevel=2)
        if self.subsample is not None and self.subsample <= n_pairs:
            if self.subsample < 1000:
                warnings.warn(
                    "subsample < 1000 is experimental in CEBRA; subsample=None uses all pairs",
                    stacklevel=2)
            # Same draw as CEBRA (global numpy RNG, with replacement) over the n*k pair rows.
            idc = np.random.choice(n_pairs, self.subsample)
            x_rows = data64[idc // k]
            y_rows = ref64[target_idx.reshape(-1)[idc]]
            cross = x_rows.T @ y_rows
        else:
            # X^T Y over all pairs without building the repeated (n*k, D) arrays:
            # sum_i data_i^T (sum_j ref_{idx[i, j]}).
            matched_sum = np.zeros_like(data64)
            for j in range(k):
                matched_sum += ref64[target_idx[:, j]]
            cross = data64.T @ matched_sum

        # scipy.linalg.orthogonal_procrustes: SVD of X^T Y = U S V^T, R = U V^T.
        u, _, vt = np.linalg.svd(cross)
        self.rotation_ = u @ vt
        return self

    def transform(self, data: npt.ArrayLike) -> np.ndarray:
        """Return ``data @ rotation_`` (float32 input stays float32)."""
        if self.rotation_ is None:
            raise ValueError("OrthogonalProcrustesAlignment is not fitted: call fit() first")
        data = _as_2d(data, "data")
        if data.shape[1] != self.rotation_.shape[0]:
            raise ValueError(
                f"data has {data.shape[1]} features but the alignment was fitted on "
                f"{self.rotation_.shape[0]}")
        out_dtype = np.result_type(data.dtype, np.float32)
        return (data @ self.rotation_).astype(out_dtype, copy=False)

    def fit_transform(
        self,
        ref_data: npt.ArrayLike,
        data: npt.ArrayLike,
        ref_label: npt.ArrayLike | None = None,
        label: npt.ArrayLike | None = None,
    ) -> np.ndarray:
        """``fit`` then ``transform(data)``: ``data`` rotated onto ``ref_data``."""
        return self.fit(ref_data, data, ref_label, label).transform(data)


def align_to_reference(
    embeddings: Mapping[str, npt.ArrayLike],
    labels: Mapping[str, npt.ArrayLike],
    reference: str | None = None,
    top_k: int = TOP_K,
) -> dict[str, np.ndarray]:
    """Rotate every embedding onto ``embeddings[reference]`` (default: the first), as the demo does.

    The reference itself is returned unchanged; labels are the full (T, 3) label arrays.
    """
    names = list(embeddings)
    if not names:
        raise ValueError("no embeddings given")
    reference = names[0] if reference is None else reference
    if reference not in embeddings:
        raise ValueError(f"reference {reference!r} is not among the embeddings {names}")
    missing = [n for n in names if n not in labels]
    if missing:
        raise ValueError(f"no labels given for {missing}")
    ref = np.asarray(embeddings[reference])
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == reference:
            out[name] = ref
        else:
            out[name] = OrthogonalProcrustesAlignment(top_k=top_k).fit_transform(
                ref, embeddings[name], labels[reference], labels[name])
    return out
