"""Session files: load (.jl only after its MD5 is verified, .npz, .parquet, .nwb), validate, parquet I/O.

A session is a pair of arrays: ``neural`` (T, N) and ``labels`` (T, 3) with the columns
[position in m, right-running flag, left-running flag], one row per 25 ms bin. The neural data
are spike counts (signal kind ``counts``, the default) or any real-valued signal (``continuous``:
z-scored rates, calcium traces), as the config's ``signals`` map declares per session.

The workflow converts every session once into a parquet *session table* (columns ``n0 …
n{N-1}``, ``position``, ``right``, ``left``, all float32) that every later step reads, so a
pickle is opened at most once, and only after its checksum matched a known one.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cebra_core.rats import PUBLISHED
from cebra_core.files import atomic_output, md5sum

LABEL_COLUMNS = ("position", "right", "left")
NEURAL_KEYS = ("spikes", "neural")
LABEL_KEYS = ("position", "labels")
SUFFIXES = (".jl", ".npz", ".parquet", ".nwb")
SIGNAL_KINDS = ("counts", "continuous")  # what a session's neural data are (config key `signals`)
DEFAULT_SIGNAL = "counts"


class SessionError(ValueError):
    """A session file that cannot be used; the message names the file, the session and the problem."""


def _fail(path, session, problem: str) -> SessionError:
    return SessionError(f"session {session!r} ({path}): {problem}")


def signal_of(signals: Mapping[str, str] | None, session: str) -> str:
    """The signal kind of one session in the config's ``signals`` map ({session: kind}; a session it
    does not name is ``counts``); a kind not in `SIGNAL_KINDS` is a ValueError naming the key."""
    kind = (signals or {}).get(session, DEFAULT_SIGNAL)
    if kind not in SIGNAL_KINDS:
        raise ValueError(f"signals.{session}: {kind!r} is not a signal kind; use one of {', '.join(SIGNAL_KINDS)}")
    return kind


def session_signals(signals: Mapping[str, str] | None, sessions: Sequence[str]) -> dict[str, str]:
    """The signal kind of every session (`signal_of`); a name in ``signals`` that is not one of
    ``sessions`` is a ValueError naming the config key."""
    unknown = [name for name in (signals or {}) if name not in sessions]
    if unknown:
        raise ValueError(
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
        raise _fail(source, session, f"neural data must be 2-D (time, neurons), got shape {neural.shape}")
    if labels.ndim != 2 or labels.shape[1] != len(LABEL_COLUMNS):
        raise _fail(
            source, session,
            f"labels must have shape (time, 3) = [position, right, left], got {labels.shape}",
        )
    if len(neural) != len(labels):
        raise _fail(
            source, session,
            f"neural data has {len(neural)} time bins but labels have {len(labels)}",
        )
    if len(neural) == 0:  # long enough for the model and the analysis: cebra_core.checks
        raise _fail(source, session, "has no time bins")
    if neural.shape[1] < 1:
        raise _fail(source, session, "has no neurons")
    for name, array in (("neural data", neural), ("labels", labels)):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise _fail(source, session, f"{name} must be real numbers, got dtype {array.dtype}")
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise _fail(
                source, session,
                f"{name} contain {int(bad.sum())} NaN/inf values (first at time bin {row})",
            )
    problem = signal_problem(neural, signal, session)
    if problem:
        raise _fail(source, session, problem)
    flags = labels[:, 1:]
    if not np.isin(flags, (0, 1)).all():
        raise _fail(source, session, "the right/left flag columns must contain only 0 and 1")
    # One-hot: every time bin is either right-running or left-running (the direction of the
    # last run through a pause), never both, never neither; see README, "Your own sessions".
    not_one_hot = flags.sum(axis=1) != 1
    if not_one_hot.any():
        both = int((flags.sum(axis=1) == 2).sum())
        row = int(np.argmax(not_one_hot))
        raise _fail(
            source, session,
            f"the right/left flags must be one-hot (right + left = 1 in every time bin), but "
            f"{int(not_one_hot.sum()) - both} bins have neither and {both} have both (first at time bin {row})",
        )
    return neural.astype(np.float32), labels.astype(np.float32)


def _from_mapping(obj, path, session, signal: str = DEFAULT_SIGNAL) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, Mapping):
        raise _fail(path, session, f"expected a dict with 'spikes' and 'position', got {type(obj).__name__}")
    keys = list(obj.keys())
    neural_key = next((k for k in NEURAL_KEYS if k in obj), None)
    label_key = next((k for k in LABEL_KEYS if k in obj), None)
    missing = [want for want, got in ((" or ".join(NEURAL_KEYS), neural_key), (" or ".join(LABEL_KEYS), label_key)) if got is None]
    if missing:
        raise _fail(path, session, f"missing key(s) {', '.join(missing)}; found {keys}")
    return validate_session(obj[neural_key], obj[label_key], session=session, source=path, signal=signal)


def _load_jl(path: Path, session: str, md5: str | None, signal: str) -> tuple[np.ndarray, np.ndarray]:
    # A .jl is a pickle: opening it runs code, so it is opened only if its MD5 is a known one.
    accepted = {md5.lower()} if md5 else {entry["jl_md5"] for entry in PUBLISHED.values()}
    actual = md5sum(path)
    if actual not in accepted:
        expected = f"the configured md5 {md5}" if md5 else "the MD5 of any published rat session"
        raise _fail(
            path, session,
            f"MD5 {actual} does not match {expected}; a .jl file is a pickle and is never "
            "opened unverified. Give its md5 in the config, or convert it to .npz/.parquet.",
        )
    import joblib  # only here, after verification

    try:
        contents = joblib.load(path)
    except Exception as err:  # its MD5 matched, but it is not a (complete) joblib pickle
        raise _fail(path, session, f"its MD5 matches, but it cannot be read as a joblib pickle ({_reason(err)})") from None
    return _from_mapping(contents, path, session, signal)


def _reason(error: BaseException) -> str:
    """A library's exception as one short line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _load_npz(path: Path, session: str, signal: str) -> tuple[np.ndarray, np.ndarray]:
    if path.stat().st_size == 0:
        raise _fail(path, session, "the file is empty (0 bytes); a .npz is a zip archive of arrays")
    if not zipfile.is_zipfile(path):
        raise _fail(path, session, "not a .npz archive (a .npz is a zip archive of arrays, as np.savez writes it)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except ValueError:  # object arrays need pickle: refused
        raise _fail(path, session, "holds object arrays, which only pickle can read; refused (save plain numeric arrays)") from None
    except Exception as err:  # a damaged archive
        raise _fail(path, session, f"cannot be read as a .npz archive ({_reason(err)})") from None
    return _from_mapping(contents, path, session, signal)


def load_session(
    path: str | os.PathLike, session: str | None = None, md5: str | None = None, nwb: Mapping | None = None,
    signal: str = DEFAULT_SIGNAL,
) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate one session from .jl (MD5-verified), .npz, a parquet session table or .nwb.

    ``nwb``: keyword options of `cebra_core.nwb.read_nwb` (bin width, position series, track axis, epochs).
    ``signal``: what the neural data are (`SIGNAL_KINDS`); an NWB session's spike units are binned
    to counts, so it is always ``counts``.
    """
    path = Path(path)
    session = session or path.stem
    if not path.is_file():
        raise _fail(path, session, "file not found")
    suffix = path.suffix.lower()
    if nwb and suffix != ".nwb":
        raise _fail(path, session, f"NWB options {sorted(nwb)} are given, but this is not a .nwb file")
    if suffix == ".nwb" and signal != "counts":
        raise _fail(
            path, session,
            f"signals.{session}: {signal!r} does not apply to an NWB session, whose spike units are binned to "
            "counts; leave it out of the signals map (counts)",
        )
    if suffix == ".jl":
        return _load_jl(path, session, md5, signal)
    if md5 is not None and md5sum(path) != md5.lower():
        raise _fail(path, session, f"MD5 {md5sum(path)} does not match the configured md5 {md5}")
    if suffix == ".npz":
        return _load_npz(path, session, signal)
    if suffix == ".parquet":
        return read_session(path, session=session, signal=signal)
    if suffix == ".nwb":
        from cebra_core.nwb import read_nwb  # pynwb only where NWB files are read

        return read_nwb(path, session, **(nwb or {}))
    raise _fail(path, session, f"unknown file type {suffix!r}; use one of {', '.join(SUFFIXES)}")


def session_frame(neural: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """The session table: n0 … n{N-1} (the neural data, of either signal kind), position, right, left (float32)."""
    columns = {f"n{i}": neural[:, i] for i in range(neural.shape[1])}
    columns.update({name: labels[:, j] for j, name in enumerate(LABEL_COLUMNS)})
    return pd.DataFrame(columns).astype(np.float32)


def write_session(
    path: str | os.PathLike, neural, labels, session: str = "?", signal: str = DEFAULT_SIGNAL
) -> None:
    """Validate (as a signal of kind `signal`) and write a session table to parquet, atomically."""
    neural, labels = validate_session(neural, labels, session=session, source=path, signal=signal)
    write_table(session_frame(neural, labels), path)


def read_session(
    path: str | os.PathLike, session: str | None = None, signal: str = DEFAULT_SIGNAL
) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate (as a signal of kind `signal`) a parquet session table: (neural (T, N)
    float32, labels (T, 3) float32)."""
    path = Path(path)
    session = session or path.stem
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow's ArrowInvalid, OSError, ...: name the file and say so in one line
        raise _fail(path, session, f"cannot be read as a parquet table ({_reason(err)})") from None
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    neural_cols = [c for c in frame.columns if c.startswith("n") and c[1:].isdigit()]
    if missing or not neural_cols:
        raise _fail(
            path, session,
            f"a session table needs columns n0…n{{N-1}} and {', '.join(LABEL_COLUMNS)}; "
            f"missing {missing or 'the neural columns n0, n1, …'}",
        )
    neural_cols.sort(key=lambda c: int(c[1:]))
    return validate_session(
        frame[neural_cols].to_numpy(), frame[list(LABEL_COLUMNS)].to_numpy(), session=session, source=path,
        signal=signal,
    )


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Only the (T, 3) labels [position, right, left] of a parquet session table, as float32."""
    return pd.read_parquet(path, columns=list(LABEL_COLUMNS)).to_numpy(np.float32)


def embedding_frame(session: str, embedding: np.ndarray, labels: np.ndarray, part="all") -> pd.DataFrame:
    """The embedding table: session, time, part, z0 … z{D-1}, position, direction ('right'/'left').

    ``part`` says which part of a split each row belongs to: 'all' (whole-session fit), or
    'train' / 'test' (one value, or one per row) for the held-out fits.
    """
    embedding = np.asarray(embedding, dtype=np.float32)
    labels = np.asarray(labels)
    if len(embedding) != len(labels):
        raise ValueError(f"session {session!r}: {len(embedding)} embedding rows but {len(labels)} labels")
    frame = pd.DataFrame({"session": session, "time": np.arange(len(embedding), dtype=np.int64), "part": part})
    for d in range(embedding.shape[1]):
        frame[f"z{d}"] = embedding[:, d]
    frame["position"] = labels[:, 0].astype(np.float32)
    frame["direction"] = np.where(labels[:, 1] > 0.5, "right", "left")
    return frame


def frame_labels(frame: pd.DataFrame) -> np.ndarray:
    """The (T, 3) labels [position, right, left] an embedding table carries, as float32."""
    right = (frame["direction"] == "right").to_numpy(np.float32)
    return np.stack([frame["position"].to_numpy(np.float32), right, 1 - right], axis=1)


def embedding_columns(frame: pd.DataFrame) -> list[str]:
    """The z0 … z{D-1} columns of an embedding table, in order."""
    cols = [c for c in frame.columns if c.startswith("z") and c[1:].isdigit()]
    return sorted(cols, key=lambda c: int(c[1:]))


def split_sessions(frame: pd.DataFrame, names: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """An embedding table's rows per session, each in time order (in `names`' order, else the table's)."""
    names = list(dict.fromkeys(frame["session"])) if names is None else list(names)
    missing = [n for n in names if not (frame["session"] == n).any()]
    if missing:
        raise ValueError(f"the embedding table has no rows for sessions {missing}")
    return {name: frame[frame["session"] == name].sort_values("time") for name in names}


def write_table(frame: pd.DataFrame, *paths: str | os.PathLike) -> None:
    """Write a DataFrame atomically (temporary file, then rename) to each path: parquet, or CSV
    (4 decimals, for reading by eye and in the report) where the suffix is .csv."""
    for path in paths:
        with atomic_output(path) as tmp:
            if Path(path).suffix == ".csv":
                frame.to_csv(tmp, index=False, float_format="%.4f")
            else:
                frame.to_parquet(tmp, index=False)
