"""The CEBRA paper's decoding protocol for the rat hippocampus sessions: a 3-fold trial split.

CEBRA 0.6.1's ``SingleRatTrialSplitDataset`` (cebra/datasets/hippocampus.py, datasets
``rat-hippocampus-<rat>-3fold-trial-split-<split_no>``), which the paper (Schneider, Lee & Mathis
2023, Table S2) scores decoding on, cut the same way:

- Trials are round trips. A trial boundary sits at every second change of the running-direction
  flag (label column 1): with ``c`` the bins ``i`` where ``flag[i + 1] != flag[i]``, the edges
  are ``0, c[1], c[3], …, T``. The boundary is the last bin *before* the change (CEBRA's
  indexing, kept as is), so a trial starts one bin before its first run.
- The trials are cut into 3 outer blocks of consecutive trials (``np.array_split``). Inside
  each block, fold ``split_no`` of an unshuffled 3-fold split (sklearn ``KFold``) is held out;
  its first half (``np.array_split`` into 2) are test trials, its second half validation
  trials, the other folds train trials. So test trials come from the beginning, the middle and
  the end of the session, and split numbers 0, 1, 2 test different trials.

CEBRA fits on the *concatenation* of the train trials (in time order; what ``split='train'``
gives). ``TrialSplit.parts`` gives the same rows; ``fit_rows``/``transform_runs`` in
``cebra_core.analysis.splits`` say how windows are kept inside their part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cebra_core.analysis.protocols import TRIAL_SPLITS

OUTER_BLOCKS = 3  # outer blocks of consecutive trials
DIRECTION_COLUMN = 1  # label column of the running-direction flag (position, right, left)

__all__ = ["DIRECTION_COLUMN", "OUTER_BLOCKS", "TRIAL_SPLITS", "TrialSplit", "trial_edges", "trial_parts"]


def trial_edges(labels: npt.ArrayLike, direction_column: int = DIRECTION_COLUMN) -> np.ndarray:
    """Trial edges (n_trials + 1,) of a session, from its direction flag: trial i is rows
    ``edges[i]:edges[i + 1]`` (CEBRA's ``trial_change_idx``)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] <= direction_column:
        raise ValueError(f"the trial split needs labels (T, d) with the running-direction flag in column "
                         f"{direction_column}; got shape {labels.shape}")
    flag = labels[:, direction_column]
    changes = np.flatnonzero(flag[1:] != flag[:-1])
    return np.concatenate([[0], changes[1::2], [len(flag)]]).astype(int)


def trial_parts(
    n_trials: int, split_no: int, inner_folds: int = TRIAL_SPLITS, outer_blocks: int = OUTER_BLOCKS
) -> np.ndarray:
    """'train' / 'validation' / 'test' per trial for split number ``split_no``."""
    if not 0 <= split_no < inner_folds:
        raise ValueError(f"trial split number {split_no} does not exist; choose 0 to {inner_folds - 1}")
    if n_trials < outer_blocks * inner_folds:
        raise ValueError(f"evaluation.protocol trials: the trial split needs at least {outer_blocks * inner_folds} "
                         f"trials ({outer_blocks} blocks x {inner_folds} folds); the session has {n_trials}")
    parts = np.full(n_trials, "train", dtype=object)
    for block in np.array_split(np.arange(n_trials), outer_blocks):
        held = np.array_split(block, inner_folds)[split_no]  # KFold(shuffle=False): same fold sizes
        test, validation = np.array_split(held, 2)
        parts[test] = "test"
        parts[validation] = "validation"
    for part in ("train", "validation", "test"):
        if not (parts == part).any():
            raise ValueError(f"evaluation.protocol trials: split number {split_no} of the session's {n_trials} trials "
                             f"leaves an empty {part} part (each block's held-out fold needs at least 2 trials)")
    return parts


@dataclass(frozen=True)
class TrialSplit:
    """Split number ``split_no`` (0-2) of CEBRA's 3-fold trial split (module docstring).

    Its methods take a session's labels (T, d), since the trials come from the direction flag.
    """

    split_no: int
    inner_folds: int = TRIAL_SPLITS
    outer_blocks: int = OUTER_BLOCKS
    direction_column: int = DIRECTION_COLUMN

    def __post_init__(self):
        if not 0 <= self.split_no < self.inner_folds:
            raise ValueError(f"trial split number {self.split_no} does not exist; choose 0 to {self.inner_folds - 1}")

    def edges(self, labels: npt.ArrayLike) -> np.ndarray:
        """Trial edges of the session (see :func:`trial_edges`)."""
        return trial_edges(labels, self.direction_column)

    def trial_parts(self, labels: npt.ArrayLike) -> np.ndarray:
        """'train' / 'validation' / 'test' per trial."""
        return trial_parts(len(self.edges(labels)) - 1, self.split_no, self.inner_folds, self.outer_blocks)

    def parts(self, labels: npt.ArrayLike) -> np.ndarray:
        """(T,) array of 'train' / 'validation' / 'test' per row."""
        edges = self.edges(labels)
        return np.repeat(self.trial_parts(labels), np.diff(edges))

    def train_mask(self, labels: npt.ArrayLike) -> np.ndarray:
        """Boolean (T,): the rows an encoder is fit on (the train trials)."""
        return self.parts(labels) == "train"

    def validation_mask(self, labels: npt.ArrayLike) -> np.ndarray:
        """Boolean (T,): the rows the decoder's k is chosen on."""
        return self.parts(labels) == "validation"

    def test_mask(self, labels: npt.ArrayLike) -> np.ndarray:
        """Boolean (T,): the rows decoding is scored on."""
        return self.parts(labels) == "test"
