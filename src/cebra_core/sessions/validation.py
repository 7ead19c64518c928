"""A session's arrays checked for use, and the one error type for a session that cannot be used.

A session is ``neural`` (T, N) and ``labels`` (T, 3) = [position in m, right-running flag,
left-running flag]. Its neural data are of a signal kind: ``counts`` (spike counts, the default) or
``continuous`` (any real-valued signal: z-scored rates, calcium traces), as the config's
``signals`` map declares per session. Every reader (`cebra_core.sessions.data`, `cebra_core.sessions.nwb`) validates
here; this module imports no other part of cebra_core.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

LABEL_COLUMNS = ("position", "right", "left")
SIGNAL_KINDS = ("counts", "continuous")  # what a session's neural data are (config key `signals`)
DEFAULT_SIGNAL = "counts"


class InputError(ValueError):
    """Input that cannot be used (a session, a download, a device, a setting); the message says what,
    where and what to do, so the workflow logs it without a traceback."""


class SessionError(InputError):
    """A session file that cannot be used; the message names the file, the session and the problem."""


def session_error(path, session, problem: str) -> SessionError:
    """The error for one session: ``session 'NAME' (FILE): problem``."""
    return SessionError(f"session {session!r} ({path}): {problem}")


def signal_of(signals: Mapping[str, str] | None, session: str) -> str:
    """The signal kind of one session in the config's ``signals`` map ({session: kind}; a session it
    does not name is ``counts``); a kind not in `SIGNAL_KINDS` is an `InputError` naming the key."""
    kind = (signals or {}).get(session, DEFAULT_SIGNAL)
    if kind not in SIGNAL_KINDS:
        raise InputError(f"signals.{session}: {kind!r} is not a signal kind; use one of {', '.join(SIGNAL_KINDS)}")
    return kind


def session_signals(signals: Mapping[str, str] | None, sessions: Sequence[str]) -> dict[str, str]:
    """The signal kind of every session (`signal_of`); a name in ``signals`` that is not one of
    ``sessions`` is an `InputError` naming the config key."""
    unknown = [name for name in (signals or {}) if name not in sessions]
    if unknown:
        raise InputError(
            f"signals: {', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not in sessions "
            f"({', '.join(sessions)}); the signals map names sessions"
        )
    return {name: signal_of(signals, name) for name in sessions}


def signal_problem(neural: np.ndarray, signal: str, session: str = "?") -> str | None:
    """Why finite, real neural data are not a signal of this kind, or None.

    counts: no negative value, not all zero. continuous: not one constant value (any sign).
    """
    if signal not in SIGNAL_KINDS:
        raise ValueError(f"session {session!r}: signal {signal!r} is not a signal kind; use one of {', '.join(SIGNAL_KINDS)}")
    if signal == "continuous":
        if neural.min() == neural.max():
            return (
                f"the neural data hold one value ({float(neural.flat[0]):g}) in every time bin and channel: "
                "a constant signal has nothing to learn from"
            )
        return None
    negative = neural < 0
    if negative.any():
        row = int(np.argwhere(negative)[0][0])
        return (
            f"neural data are spike counts and must not be negative: {int(negative.sum())} negative values "
            f"(first at time bin {row}); if they are a real-valued signal (z-scored rates, calcium traces), "
            f"declare it in the config: signals: {{{session if session != '?' else '<session>'}: continuous}}"
        )
    if not neural.any():
        return "every spike count is zero (an all-silent session): there is nothing to learn from"
    return None


def validate_session(
    neural, labels, *, session: str = "?", source: str | os.PathLike = "?", signal: str = DEFAULT_SIGNAL
) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, finiteness, the signal kind (`signal_problem`) and flags; return (neural,
    labels) as float32 arrays."""
    neural = np.asarray(neural)
    labels = np.asarray(labels)
    if neural.ndim != 2:
        raise session_error(source, session, f"neural data must be 2-D (time, neurons), got shape {neural.shape}")
    if labels.ndim != 2 or labels.shape[1] != len(LABEL_COLUMNS):
        raise session_error(
            source, session,
            f"labels must have shape (time, 3) = [position, right, left], got {labels.shape}",
        )
    if len(neural) != len(labels):
        raise session_error(
            source, session,
            f"neural data has {len(neural)} time bins but labels have {len(labels)}",
        )
    if len(neural) == 0:  # long enough for the model and the analysis: cebra_core.steps.checks
        raise session_error(source, session, "has no time bins")
    if neural.shape[1] < 1:
        raise session_error(source, session, "has no neurons")
    for name, array in (("neural data", neural), ("labels", labels)):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise session_error(source, session, f"{name} must be real numbers, got dtype {array.dtype}")
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise session_error(
                source, session,
                f"{name} contain {int(bad.sum())} NaN/inf values (first at time bin {row})",
            )
    problem = signal_problem(neural, signal, session)
    if problem:
        raise session_error(source, session, problem)
    flags = labels[:, 1:]
    if not np.isin(flags, (0, 1)).all():
        raise session_error(source, session, "the right/left flag columns must contain only 0 and 1")
    # One-hot: every time bin is either right-running or left-running (the direction of the
    # last run through a pause), never both, never neither; see docs/your-data.md.
    not_one_hot = flags.sum(axis=1) != 1
    if not_one_hot.any():
        both = int((flags.sum(axis=1) == 2).sum())
        row = int(np.argmax(not_one_hot))
        raise session_error(
            source, session,
            f"the right/left flags must be one-hot (right + left = 1 in every time bin), but "
            f"{int(not_one_hot.sum()) - both} bins have neither and {both} have both (first at time bin {row})",
        )
    return neural.astype(np.float32), labels.astype(np.float32)
