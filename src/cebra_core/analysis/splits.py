"""Contiguous train/test splits of a session's time bins, for held-out evaluation.

A split is either the whole session (``fold=None``: the notebook's fits and figures) or fold k.
With one fold the test part is the last ``test_fraction`` of the session, as CEBRA's decoding demo
holds out its last 20 %; with k folds the session is cut into k contiguous blocks and block k is
the test part of fold k, so every sample is tested exactly once (the CEBRA paper uses 3 folds).
Splits are contiguous in time because neighbouring 25 ms bins are nearly identical: a shuffled
split would leak the test labels through their neighbours.

A parameter sweep nests a validation part inside the train part (``validation_fraction > 0``):
the last ``validation_fraction`` of the train rows, in time order (with one fold: the stretch just
before the test part). Encoders fit on the train rows, the sweep chooses on the validation rows and
reports the test rows of the chosen point only.

The CEBRA paper's own protocol cuts trials instead (``evaluation.protocol: trials``,
``cebra_core.analysis.trials.TrialSplit``); ``make_split`` builds either, and ``session_parts`` gives the
part of every row for both.

Windows never reach across a part boundary into another part: an encoder is fit on the rows of
``fit_rows(parts)`` only, concatenated in time order (CEBRA concatenates its train trials the same
way), so its training windows and positives come from train rows alone; a window at a join of two
train runs spans both (at most 9 windows per join with the 10-bin receptive field, as in CEBRA).
Embeddings are computed run by run (``transform_runs``): each contiguous run of one part on its
own, edge-padded at its ends, so no embedded row sees a row of another part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cebra_core.analysis.protocols import PROTOCOLS
from cebra_core.analysis.trials import TrialSplit

COVERAGE_BINS = 20  # track bins for the coverage of a test part (8 cm each on the 1.6 m track)

__all__ = ["PROTOCOLS", "Split", "contiguous_runs", "fit_rows", "label_coverage", "make_split", "session_parts",
           "transform_parts", "transform_runs"]



@dataclass(frozen=True)
class Split:
    """Fold ``fold`` of ``folds`` (see the module docstring); ``fold=None`` is the whole session.
    ``validation_fraction > 0`` holds the end of the train rows out as a validation part."""

    fold: int | None
    folds: int = 1
    test_fraction: float = 0.2
    validation_fraction: float = 0.0

    def __post_init__(self):
        if self.fold is not None and not 0 <= self.fold < self.folds:
            raise ValueError(f"fold {self.fold} does not exist with {self.folds} fold(s)")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.validation_fraction and self.fold is None:
            raise ValueError("a validation part needs a fold (the whole-session split has no train part to nest it in)")

    def test_mask(self, n: int) -> np.ndarray:
        """Boolean (n,): the test rows of a session of n time bins (none for ``all``)."""
        mask = np.zeros(n, dtype=bool)
        fold = self.fold
        if fold is None:
            return mask
        if self.folds == 1:
            start = n - int(round(n * self.test_fraction))
            mask[start:] = True
        else:
            edges = np.round(np.linspace(0, n, self.folds + 1)).astype(int)
            mask[edges[fold]:edges[fold + 1]] = True
        if mask.all() or not mask.any():
            raise ValueError(f"fold {fold} of {self.folds} leaves an empty train or test part of {n} time bins")
        return mask

    def validation_mask(self, n: int) -> np.ndarray:
        """Boolean (n,): the validation rows, the last ``validation_fraction`` of the non-test rows."""
        mask = np.zeros(n, dtype=bool)
        if not self.validation_fraction:
            return mask
        rest = np.flatnonzero(~self.test_mask(n))
        count = int(round(len(rest) * self.validation_fraction))
        if not 0 < count < len(rest):
            raise ValueError(f"validation_fraction {self.validation_fraction} leaves an empty train or validation "
                             f"part of the {len(rest)} non-test time bins")
        mask[rest[len(rest) - count:]] = True
        return mask

    def train_mask(self, n: int) -> np.ndarray:
        """Boolean (n,): the rows an encoder may be fit on (neither validation nor test)."""
        return ~(self.test_mask(n) | self.validation_mask(n))

    def parts(self, n: int) -> np.ndarray:
        """(n,) array of 'train' / 'validation' / 'test' per row ('all' everywhere for the whole-session split)."""
        if self.fold is None:
            return np.full(n, "all", dtype=object)
        parts = np.where(self.test_mask(n), "test", "train").astype(object)
        parts[self.validation_mask(n)] = "validation"
        return parts


def contiguous_runs(mask: npt.ArrayLike) -> list[slice]:
    """The maximal runs of True in a boolean array, as slices in time order."""
    mask = np.asarray(mask, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [slice(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def label_coverage(test_label: npt.ArrayLike, session_label: npt.ArrayLike, bins: int = COVERAGE_BINS) -> float:
    """Fraction of the label bins a session visits that its test part visits too (1.0 = all of them):
    ``bins`` bins over a 1-D label's range (8 cm each on the 1.6 m track), or a grid of about as many
    cells over a 2-D label (T, 2)."""
    session_label = np.asarray(session_label, dtype=np.float64)
    test_label = np.asarray(test_label, dtype=np.float64)
    if session_label.ndim == 1:
        session_label, test_label = session_label[:, None], test_label[:, None]
    per_axis = max(2, round(bins ** (1 / session_label.shape[1])))
    cells = []
    for label in (session_label, test_label):
        index = np.zeros(len(label), dtype=np.int64)
        for axis in range(session_label.shape[1]):
            lo, hi = float(session_label[:, axis].min()), float(session_label[:, axis].max())
            edges = np.linspace(lo, hi, per_axis + 1)[1:-1] if hi > lo else np.array([])
            index = index * per_axis + np.digitize(label[:, axis], edges)
        cells.append(np.unique(index))
    return float(np.isin(cells[0], cells[1]).mean())


def make_split(protocol: str = "contiguous", fold: int | None = None, **contiguous) -> Split | TrialSplit:
    """The split of fold ``fold`` under a protocol (``evaluation.protocol``): contiguous gives
    ``Split(fold, **contiguous)`` (folds, test_fraction, validation_fraction); trials gives
    ``TrialSplit(fold)`` (split number ``fold``, which has its own validation trials; the contiguous
    keys are not used). ``fold=None`` is the whole session under both."""
    if protocol == "contiguous":
        return Split(fold, **contiguous)
    if protocol == "trials":
        return Split(None) if fold is None else TrialSplit(fold)
    raise ValueError(f"evaluation.protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")


def session_parts(split: Split | TrialSplit, labels: np.ndarray) -> np.ndarray:
    """(T,) part of every row of a session with labels (T, d): 'train' / 'validation' / 'test', or
    'all' for the whole-session split."""
    if isinstance(split, TrialSplit):
        return split.parts(labels)
    return split.parts(len(labels))


def fit_rows(parts: np.ndarray) -> np.ndarray:
    """Boolean (T,): the rows an encoder may be fit on (neither validation nor test)."""
    return ~np.isin(parts, ("validation", "test"))


def transform_runs(transform: Callable[[np.ndarray], np.ndarray], neural: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Embed a session run by run: each contiguous run of one part through ``transform`` on its
    own, so no window reaches across a part boundary. Returns the embedding (T, D) in row order."""
    parts = np.asarray(parts)
    if len(parts) != len(neural):
        raise ValueError(f"{len(parts)} part names for {len(neural)} rows of neural data")
    runs = [run for part in np.unique(parts) for run in contiguous_runs(parts == part)]
    pieces = {run.start: transform(neural[run]) for run in runs}
    return np.concatenate([pieces[start] for start in sorted(pieces)])


def transform_parts(transform: Callable[[np.ndarray], np.ndarray], neural: np.ndarray, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """:func:`transform_runs` with the parts of a contiguous ``split``. Returns (embedding (T, D), parts (T,))."""
    parts = split.parts(len(neural))
    return transform_runs(transform, neural, parts), parts
