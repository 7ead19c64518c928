"""A session checked for use, and the error types for input that cannot be used.

A session is ``neural`` (T, N) and ``labels``: the declared label columns (`LabelSpec`: continuous
ones and at most one discrete one; by default the rat track [position in m, right-running flag,
left-running flag]) as a table, one row per time bin. Its neural data are of a signal kind:
``counts`` (spike counts, the default) or ``continuous`` (any real-valued signal: z-scored rates,
calcium traces), as the config's ``signals`` map declares per session. Every reader
(`cebra_core.sessions.data`, `cebra_core.sessions.nwb`) validates here, once, at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cebra_core.sessions.labels import LabelSpec

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


def label_frame(labels, spec: LabelSpec, *, session: str = "?", source: str | os.PathLike = "?") -> pd.DataFrame:
    """The declared label columns of ``labels`` as a table: a DataFrame (or a mapping of 1-D
    arrays) by name, or, for the rat track only, a (T, 3) array [position, right, left] as the
    published files hold it. A declared column that is missing is named."""
    if isinstance(labels, np.ndarray) or not hasattr(labels, "keys"):
        array = np.asarray(labels)
        if array.ndim == 2 and array.shape[1] == len(spec.columns) and not spec.discrete:
            return pd.DataFrame(array, columns=list(spec.columns))
        raise session_error(
            source, session,
            f"labels of shape {array.shape} are not the declared label columns {list(spec.columns)}: give one "
            "1-D array per column, named as in the config's labels key",
        )
    missing = [c for c in spec.columns if c not in labels.keys()]
    if missing:
        found = [str(k) for k in labels.keys()]
        raise session_error(source, session, f"label column(s) {missing} (the labels key) are missing; found {found}")
    columns = {}
    for name in spec.columns:
        column = np.asarray(labels[name])
        if column.ndim != 1:
            raise session_error(source, session, f"label column {name!r} must be 1-D (one value per time bin), got shape {column.shape}")
        columns[name] = column
    lengths = {name: len(c) for name, c in columns.items()}
    if len(set(lengths.values())) > 1:
        raise session_error(source, session, f"the label columns differ in length: {lengths}")
    return pd.DataFrame(columns)


def label_problems(labels: pd.DataFrame, spec: LabelSpec) -> list[str]:
    """Why the declared label columns cannot be used: a continuous column not real, not finite or
    constant; a discrete column not integer-valued, negative or with one class only; for the rat
    track, flags that are not one-hot."""
    problems = []
    for name in spec.columns:
        column = labels[name].to_numpy()
        kind = spec.kind(name)
        if not (np.issubdtype(column.dtype, np.number) or column.dtype == bool) or np.issubdtype(column.dtype, np.complexfloating):
            problems.append(f"{kind} label column {name!r} must be real numbers, got dtype {column.dtype}")
            continue
        bad = ~np.isfinite(column.astype(np.float64))
        if bad.any():
            problems.append(f"{kind} label column {name!r} holds {int(bad.sum())} NaN/inf values (first at time bin "
                            f"{int(np.argmax(bad))})")
            continue
        flag = spec.is_rat_track and name != "position"  # a running-direction flag may hold one value
        if kind == "continuous" and len(column) and column.min() == column.max() and not flag:
            problems.append(f"continuous label column {name!r} holds one value ({float(column[0]):g}) in every time "
                            "bin: a constant label can neither guide the fit nor be decoded")
        if kind == "discrete":
            fraction = column.astype(np.float64) % 1 != 0
            if fraction.any():
                problems.append(f"discrete label column {name!r} must hold integer classes, but time bin "
                                f"{int(np.argmax(fraction))} holds {column[np.argmax(fraction)]:g}")
            elif (column < 0).any():
                problems.append(f"discrete label column {name!r} must hold classes 0, 1, 2, …; it holds "
                                f"{int(column.min())} (a negative class)")
            elif len(np.unique(column)) < 2:
                problems.append(f"discrete label column {name!r} holds one class only ({int(column[0])}): a "
                                "contrast needs at least two")
    if spec.is_rat_track and not problems:
        problems += _rat_flag_problems(labels)
    return problems


def _rat_flag_problems(labels: pd.DataFrame) -> list[str]:
    flags = labels[["right", "left"]].to_numpy()
    if not np.isin(flags, (0, 1)).all():
        return ["the right/left flag columns must contain only 0 and 1"]
    # One-hot: every time bin is either right-running or left-running (the direction of the
    # last run through a pause), never both, never neither; see docs/your-data.md.
    not_one_hot = flags.sum(axis=1) != 1
    if not_one_hot.any():
        both = int((flags.sum(axis=1) == 2).sum())
        row = int(np.argmax(not_one_hot))
        return [f"the right/left flags must be one-hot (right + left = 1 in every time bin), but "
                f"{int(not_one_hot.sum()) - both} bins have neither and {both} have both (first at time bin {row})"]
    return []


def typed_labels(labels: pd.DataFrame, spec: LabelSpec) -> pd.DataFrame:
    """The declared columns in order: continuous as float32, discrete as int64 (what tables store)."""
    return pd.DataFrame({name: labels[name].to_numpy().astype(np.int64 if spec.kind(name) == "discrete" else np.float32)
                         for name in spec.columns})


def validate_session(
    neural, labels, *, spec: LabelSpec = LabelSpec(), session: str = "?", source: str | os.PathLike = "?",
    signal: str = DEFAULT_SIGNAL,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Check the neural data (shape, real and finite, its signal kind: `signal_problem`) and the
    declared label columns (`label_problems`); return (neural float32 (T, N), labels: a DataFrame of
    the declared columns, continuous float32 and discrete int64)."""
    neural = np.asarray(neural)
    if neural.ndim != 2:
        raise session_error(source, session, f"neural data must be 2-D (time, neurons), got shape {neural.shape}")
    labels = label_frame(labels, spec, session=session, source=source)
    if len(neural) != len(labels):
        raise session_error(
            source, session,
            f"neural data has {len(neural)} time bins but labels have {len(labels)}",
        )
    if len(neural) == 0:  # long enough for the model and the analysis: cebra_core.steps.checks
        raise session_error(source, session, "has no time bins")
    if neural.shape[1] < 1:
        raise session_error(source, session, "has no neurons")
    if not np.issubdtype(neural.dtype, np.number) or np.issubdtype(neural.dtype, np.complexfloating):
        raise session_error(source, session, f"neural data must be real numbers, got dtype {neural.dtype}")
    bad = ~np.isfinite(neural)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise session_error(source, session, f"neural data contain {int(bad.sum())} NaN/inf values (first at time bin {row})")
    problem = signal_problem(neural, signal, session)
    if problem:
        raise session_error(source, session, problem)
    problems = label_problems(labels, spec)
    if problems:
        raise session_error(source, session, "; ".join(problems))
    return neural.astype(np.float32), typed_labels(labels, spec)
