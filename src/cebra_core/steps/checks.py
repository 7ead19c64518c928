"""Are the sessions fit for every later step? Checked once, before any fit, so that nothing fails late.

`cebra_core.sessions.data.validate_session` checks that a session is well-formed data (shapes, numbers,
one-hot flags, and what its signal kind asks: counts or a continuous signal). This module checks it against what the configured fits and analyses
will ask of it: enough time bins for a batch, the model's receptive field, the time_delta offset
and the kNN decoder's training part; positions in metres that vary and fill the consistency
score's bins. Every problem of every session is reported at once, one line each, naming the
session, its file, the problem and the config key to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cebra_core.sessions.validation import SessionError, session_signals, signal_problem
from cebra_core.analysis.metrics import EmptyBinError, bin_embedding
from cebra_core.engine.offsets import RECEPTIVE_FIELD
from cebra_core.analysis.trials import TRIAL_SPLITS, TrialSplit

# A linear track longer than this is not a rat's: such positions are taken to be in centimetres
# (or another unit), which the decoding error (reported in cm = 100 x the position unit) gets wrong.
MAX_POSITION_SPAN_M = 10.0


@dataclass(frozen=True)
class SessionNeeds:
    """What later steps need of every session; each field's config key is in `CONFIG_KEYS`."""

    batch_size: int  # samples per session in one training batch
    time_offsets: int  # time_delta positives: label differences over this many bins
    consistency_bins: int  # bin edges over the common position range (consistency score)
    decoding_neighbors: int  # k of the kNN decoder
    train_fraction: float  # the decoder is fitted on this first part of a session (1 - test fraction)
    alignment_top_k: int  # label neighbours per sample for the Procrustes alignment
    protocol: str = "contiguous"  # evaluation.protocol: trials cuts each session into CEBRA's trial split
    receptive_field: int = RECEPTIVE_FIELD  # input samples behind one embedding row


CONFIG_KEYS = {
    "batch_size": "cebra.batch_size",
    "time_offsets": "cebra.time_offsets",
    "consistency_bins": "analysis.consistency_bins",
    "decoding_neighbors": "analysis.decoding_neighbors",
    "train_fraction": "evaluation.test_fraction",
    "alignment_top_k": "analysis.alignment_top_k",
}


def session_problems(neural: np.ndarray, labels: np.ndarray, needs: SessionNeeds) -> list[str]:
    """Everything about one session that a later step would fail on or get wrong (empty: fit for use)."""
    length = len(neural)
    problems = []
    if length < needs.receptive_field:
        problems.append(
            f"{length} time bins are fewer than the model's receptive field of {needs.receptive_field} bins"
        )
    if length <= needs.time_offsets:
        problems.append(
            f"{length} time bins leave no position differences over {CONFIG_KEYS['time_offsets']}="
            f"{needs.time_offsets} bins (needs more than {needs.time_offsets})"
        )
    if needs.batch_size > length:
        problems.append(
            f"{CONFIG_KEYS['batch_size']}={needs.batch_size} is more than the session's {length} time bins: "
            f"every batch would draw each bin several times (sampling is with replacement) and the fit "
            f"slows down for nothing; set {CONFIG_KEYS['batch_size']} to at most {length}"
        )
    split = int(length * needs.train_fraction)
    if split < needs.decoding_neighbors or split == length:
        test_fraction = round(1 - needs.train_fraction, 6)
        problems.append(
            f"the position decoder is fitted on the first {split} of its {length} time bins "
            f"({CONFIG_KEYS['train_fraction']}={test_fraction}) and tested on the other {length - split}: "
            f"it needs at least {CONFIG_KEYS['decoding_neighbors']}={needs.decoding_neighbors} to fit and 1 to "
            f"test; lower {CONFIG_KEYS['decoding_neighbors']} or use a longer session"
        )
    if length < needs.alignment_top_k:
        problems.append(
            f"{length} time bins are fewer than {CONFIG_KEYS['alignment_top_k']}={needs.alignment_top_k} "
            "label neighbours for the alignment"
        )
    if needs.protocol == "trials":
        for split_no in range(TRIAL_SPLITS):
            try:
                TrialSplit(split_no).parts(labels)
            except ValueError as err:  # names evaluation.protocol trials and what is missing
                problems.append(str(err))
                break
    position = labels[:, 0]
    low, high = float(position.min()), float(position.max())
    if low == high:
        problems.append(
            f"the position is the same ({low:g}) in every time bin: a constant position can neither "
            "guide the fit nor be decoded or binned"
        )
    elif high - low > MAX_POSITION_SPAN_M:
        problems.append(
            f"positions span {low:g} to {high:g}, more than {MAX_POSITION_SPAN_M:g} m: they look like "
            "centimetres (or another unit); give positions in metres (decoding errors are reported in cm)"
        )
    return problems


def bin_problem(position: np.ndarray, low: float, high: float, bins: int) -> str | None:
    """Why the consistency score cannot bin this position on [low, high] into `bins` edges, or None."""
    try:  # the consistency score's own binning, on a constant embedding
        bin_embedding(np.ones((len(position), 1)), position, low, high, bins)
    except EmptyBinError as error:
        return (
            f"the consistency score cannot bin its positions with {CONFIG_KEYS['consistency_bins']}={bins}: "
            f"{error.problem} over all sessions; lower {CONFIG_KEYS['consistency_bins']}, or leave the session out"
        )
    return None


def check_sessions(
    sessions: Mapping[str, tuple[np.ndarray, np.ndarray]],
    needs: SessionNeeds,
    sources: Mapping[str, str | os.PathLike] | None = None,
    signals: Mapping[str, str] | None = None,
) -> None:
    """Raise one `SessionError` listing every problem of every session (one line each), or return.

    ``sessions`` maps name -> (neural (T, N), labels (T, 3)) as `read_session` returns them;
    ``sources`` names each session's file in the messages; ``signals`` is the config's map of
    session -> signal kind (a session it leaves out: counts), checked first (`signal_problem`).
    The consistency bins are checked on the positions' common range over all sessions, as the
    consistency score bins them.
    """
    sources = sources or {}
    kinds = session_signals(signals, list(sessions))
    lines = []
    for name, (neural, labels) in sessions.items():
        signal = signal_problem(neural, kinds[name], name) if neural.size else None
        problems = [signal] * (signal is not None) + session_problems(neural, labels, needs)
        lines += [f"session {name!r} ({sources.get(name, '?')}): {p}" for p in problems]
    if not lines:  # positions vary and are in metres: bin them on the common range
        low = min(float(labels[:, 0].min()) for _, labels in sessions.values())
        high = max(float(labels[:, 0].max()) for _, labels in sessions.values())
        for name, (_, labels) in sessions.items():
            problem = bin_problem(labels[:, 0], low, high, needs.consistency_bins)
            if problem:
                lines.append(f"session {name!r} ({sources.get(name, '?')}): {problem}")
    if lines:
        raise SessionError("\n".join(lines))


def session_summary(
    sessions: Mapping[str, tuple[np.ndarray, np.ndarray]], signals: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per checked session: time bins, neurons, position range (m), fraction right-running,
    mean spikes per bin (counts; NaN for a continuous signal) and the signal kind."""
    kinds = session_signals(signals, list(sessions))
    return pd.DataFrame(
        [
            {
                "session": name,
                "time_bins": len(neural),
                "neurons": neural.shape[1],
                "position_min": float(labels[:, 0].min()),
                "position_max": float(labels[:, 0].max()),
                "right_fraction": float(labels[:, 1].mean()),
                "spikes_per_bin": float(neural.sum(axis=1).mean()) if kinds[name] == "counts" else float("nan"),
                "signal": kinds[name],
            }
            for name, (neural, labels) in sessions.items()
        ]
    )
