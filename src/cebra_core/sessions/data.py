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
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cebra_core.sessions.files import md5sum, write_table
from cebra_core.sessions.rats import PUBLISHED
from cebra_core.sessions.validation import DEFAULT_SIGNAL, LABEL_COLUMNS, session_error, validate_session

NEURAL_KEYS = ("spikes", "neural")
LABEL_KEYS = ("position", "labels")
SUFFIXES = (".jl", ".npz", ".parquet", ".nwb")


def _from_mapping(obj, path, session, signal: str = DEFAULT_SIGNAL) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, Mapping):
        raise session_error(path, session, f"expected a dict with 'spikes' and 'position', got {type(obj).__name__}")
    keys = list(obj.keys())
    neural_key = next((k for k in NEURAL_KEYS if k in obj), None)
    label_key = next((k for k in LABEL_KEYS if k in obj), None)
    missing = [want for want, got in ((" or ".join(NEURAL_KEYS), neural_key), (" or ".join(LABEL_KEYS), label_key)) if got is None]
    if missing:
        raise session_error(path, session, f"missing key(s) {', '.join(missing)}; found {keys}")
    return validate_session(obj[neural_key], obj[label_key], session=session, source=path, signal=signal)


def _load_jl(path: Path, session: str, md5: str | None, signal: str) -> tuple[np.ndarray, np.ndarray]:
    # A .jl is a pickle: opening it runs code, so it is opened only if its MD5 is a known one.
    accepted = {md5.lower()} if md5 else {entry["jl_md5"] for entry in PUBLISHED.values()}
    actual = md5sum(path)
    if actual not in accepted:
        expected = f"the configured md5 {md5}" if md5 else "the MD5 of any published rat session"
        raise session_error(
            path, session,
            f"MD5 {actual} does not match {expected}; a .jl file is a pickle and is never "
            "opened unverified. Give its md5 in the config, or convert it to .npz/.parquet.",
        )
    import joblib  # only here, after verification

    try:
        contents = joblib.load(path)
    except Exception as err:  # its MD5 matched, but it is not a (complete) joblib pickle
        raise session_error(path, session, f"its MD5 matches, but it cannot be read as a joblib pickle ({_reason(err)})") from None
    return _from_mapping(contents, path, session, signal)


def _reason(error: BaseException) -> str:
    """A library's exception as one short line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _load_npz(path: Path, session: str, signal: str) -> tuple[np.ndarray, np.ndarray]:
    if path.stat().st_size == 0:
        raise session_error(path, session, "the file is empty (0 bytes); a .npz is a zip archive of arrays")
    if not zipfile.is_zipfile(path):
        raise session_error(path, session, "not a .npz archive (a .npz is a zip archive of arrays, as np.savez writes it)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except ValueError:  # object arrays need pickle: refused
        raise session_error(path, session, "holds object arrays, which only pickle can read; refused (save plain numeric arrays)") from None
    except Exception as err:  # a damaged archive
        raise session_error(path, session, f"cannot be read as a .npz archive ({_reason(err)})") from None
    return _from_mapping(contents, path, session, signal)


def load_session(
    path: str | os.PathLike, session: str | None = None, md5: str | None = None, nwb: Mapping | None = None,
    signal: str = DEFAULT_SIGNAL,
) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate one session from .jl (MD5-verified), .npz, a parquet session table or .nwb.

    ``nwb``: keyword options of `cebra_core.sessions.nwb.read_nwb` (bin width, position series, track axis, epochs).
    ``signal``: what the neural data are (`SIGNAL_KINDS`); an NWB session's spike units are binned
    to counts, so it is always ``counts``.
    """
    path = Path(path)
    session = session or path.stem
    if not path.is_file():
        raise session_error(path, session, "file not found")
    suffix = path.suffix.lower()
    if nwb and suffix != ".nwb":
        raise session_error(path, session, f"NWB options {sorted(nwb)} are given, but this is not a .nwb file")
    if suffix == ".nwb" and signal != "counts":
        raise session_error(
            path, session,
            f"signals.{session}: {signal!r} does not apply to an NWB session, whose spike units are binned to "
            "counts; leave it out of the signals map (counts)",
        )
    if suffix == ".jl":
        return _load_jl(path, session, md5, signal)
    if md5 is not None and md5sum(path) != md5.lower():
        raise session_error(path, session, f"MD5 {md5sum(path)} does not match the configured md5 {md5}")
    if suffix == ".npz":
        return _load_npz(path, session, signal)
    if suffix == ".parquet":
        return _load_parquet(path, session, signal)
    if suffix == ".nwb":
        from cebra_core.sessions.nwb import read_nwb  # pynwb only where NWB files are read

        return read_nwb(path, session, **(nwb or {}))
    raise session_error(path, session, f"unknown file type {suffix!r}; use one of {', '.join(SUFFIXES)}")


def session_frame(neural: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """The session table: n0 … n{N-1} (the neural data, of either signal kind), position, right, left (float32)."""
    columns = {f"n{i}": neural[:, i] for i in range(neural.shape[1])}
    columns.update({name: labels[:, j] for j, name in enumerate(LABEL_COLUMNS)})
    return pd.DataFrame(columns).astype(np.float32)


def write_session(path: str | os.PathLike, neural: np.ndarray, labels: np.ndarray) -> None:
    """Write a validated session (`load_session`, or the simulator's) as a session table, atomically."""
    write_table(session_frame(neural, labels), path)


def _table_arrays(frame: pd.DataFrame, path, session: str) -> tuple[np.ndarray, np.ndarray]:
    """(neural (T, N), labels (T, 3)) of a session table's columns."""
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    neural_cols = [c for c in frame.columns if c.startswith("n") and c[1:].isdigit()]
    if missing or not neural_cols:
        raise session_error(
            path, session,
            f"a session table needs columns n0…n{{N-1}} and {', '.join(LABEL_COLUMNS)}; "
            f"missing {missing or 'the neural columns n0, n1, …'}",
        )
    neural_cols.sort(key=lambda c: int(c[1:]))
    return frame[neural_cols].to_numpy(), frame[list(LABEL_COLUMNS)].to_numpy()


def _read_parquet(path: Path, session: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow's ArrowInvalid, OSError, ...: name the file and say so in one line
        raise session_error(path, session, f"cannot be read as a parquet table ({_reason(err)})") from None


def _load_parquet(path: Path, session: str, signal: str) -> tuple[np.ndarray, np.ndarray]:
    neural, labels = _table_arrays(_read_parquet(path, session), path, session)
    return validate_session(neural, labels, session=session, source=path, signal=signal)


def read_session(path: str | os.PathLike, session: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A session table the workflow wrote (validated when it was imported): (neural (T, N) float32,
    labels (T, 3) float32). Nothing is checked again; a user's own parquet file goes through
    `load_session`."""
    path = Path(path)
    session = session or path.stem
    neural, labels = _table_arrays(_read_parquet(path, session), path, session)
    return neural.astype(np.float32, copy=False), labels.astype(np.float32, copy=False)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Only the (T, 3) labels [position, right, left] of a parquet session table, as float32."""
    return pd.read_parquet(path, columns=list(LABEL_COLUMNS)).to_numpy(np.float32)
