"""Embeddings reduced to one mean vector per bin of a label, so that sessions of different lengths
become paired rows (the consistency score's first step), for any label the workflow declares:

- one continuous column: CEBRA's bins (`cebra_core.analysis.metrics.bin_embedding`);
- two continuous columns (an open field's x, y): a grid, ``edges`` bin edges per axis over the
  common range; an empty cell takes the rows of its neighbours within 1, then 2 cells (as CEBRA's
  1-D bins take the next bins), cells no session reaches are outside the arena and left out;
- a discrete column: one bin per class.
Every vector is divided by its norm, as CEBRA normalises its bin means.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FALLBACK = (0, 1, 2)  # neighbourhood radii an empty bin borrows from, in order


class EmptyBinError(ValueError):
    """A label bin with no samples near it; ``problem`` says which, without the dataset's name."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


def grid_edges(bins: int) -> int:
    """Edges per axis of the 2-D grid for the configured ``bins`` (edges of a 1-D label): about as
    many cells as a 1-D label has bins (100 edges -> 10 x 10 edges, 81 cells)."""
    return max(3, round(math.sqrt(bins)))


def _normalise(means: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return means / np.linalg.norm(means, axis=1, keepdims=True)


def grid_means(embedding: np.ndarray, label: np.ndarray, lo: np.ndarray, hi: np.ndarray, edges: int) -> np.ndarray:
    """((edges-1)^2, D) unit mean vectors over a grid of (T, 2) labels on [lo, hi] per axis, the
    row-major cells (`grid_cell_names`); a cell empty within 2 cells is NaN."""
    cells = edges - 1
    index = [np.clip(np.digitize(label[:, a], np.linspace(lo[a], hi[a], edges)), 1, cells) - 1 for a in (0, 1)]
    flat = index[0] * cells + index[1]
    counts = np.bincount(flat, minlength=cells * cells).reshape(cells, cells)
    sums = np.stack([np.bincount(flat, weights=embedding[:, d], minlength=cells * cells).reshape(cells, cells)
                     for d in range(embedding.shape[1])], axis=-1)
    # summed-area tables: the sum over any square of cells in O(1)
    area_n = np.pad(counts, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    area_s = np.pad(sums, ((1, 0), (1, 0), (0, 0))).cumsum(0).cumsum(1)
    out = np.full((cells * cells, embedding.shape[1]), np.nan)
    for i in range(cells):
        for j in range(cells):
            for radius in FALLBACK:
                a0, a1 = max(i - radius, 0), min(i + radius + 1, cells)
                b0, b1 = max(j - radius, 0), min(j + radius + 1, cells)
                n = area_n[a1, b1] - area_n[a0, b1] - area_n[a1, b0] + area_n[a0, b0]
                if n > 0:
                    s = area_s[a1, b1] - area_s[a0, b1] - area_s[a1, b0] + area_s[a0, b0]
                    out[i * cells + j] = s / n
                    break
    return _normalise(out)


def grid_cell_names(lo: np.ndarray, hi: np.ndarray, edges: int, columns: tuple[str, str]) -> list[str]:
    """'grid cell <x range>, <y range>' of every cell of `grid_means`, row-major."""
    a, b = (np.linspace(lo[i], hi[i], edges) for i in (0, 1))
    return [f"grid cell {columns[0]} {a[i]:.3g}-{a[i + 1]:.3g}, {columns[1]} {b[j]:.3g}-{b[j + 1]:.3g}"
            for i in range(edges - 1) for j in range(edges - 1)]


def class_means(embedding: np.ndarray, label: np.ndarray, classes: npt.ArrayLike) -> np.ndarray:
    """(K, D) unit mean vectors of the rows of each class in ``classes``; a class with no row is NaN."""
    classes = np.asarray(classes)
    out = np.full((len(classes), embedding.shape[1]), np.nan)
    for k, c in enumerate(classes):
        rows = label == c
        if rows.any():
            out[k] = embedding[rows].mean(axis=0)
    return _normalise(out)


def shared_bins(binned: list[np.ndarray], names: list, bin_names: list[str]) -> list[np.ndarray]:
    """The bins every session fills: a bin no session fills is left out (outside the arena); a bin
    some sessions fill and others do not is an `EmptyBinError` naming the bin and the sessions."""
    empty = np.stack([np.isnan(b).any(axis=1) for b in binned])  # (sessions, bins)
    partial = np.flatnonzero(empty.any(axis=0) & ~empty.all(axis=0))
    if len(partial):
        k = int(partial[0])
        missing = [names[s] for s in np.flatnonzero(empty[:, k])]
        present = [names[s] for s in np.flatnonzero(~empty[:, k])]
        more = f" ({len(partial)} such bins)" if len(partial) > 1 else ""
        problem = f"{bin_names[k]} has no samples in {missing} but has in {present}{more}"
        raise EmptyBinError(f"{problem}: its sessions cannot be compared there", problem)
    keep = ~empty.any(axis=0)
    if not keep.any():
        raise EmptyBinError("no bin has samples in every session", "no bin has samples in every session")
    return [b[keep] for b in binned]
