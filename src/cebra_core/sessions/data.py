"""Session files: load (.jl only after its MD5 is verified, .npz, .parquet, .nwb), validate, parquet I/O.

A session is ``neural`` (T, N) and its declared label columns (`LabelSpec`) as a table, one row per
time bin. The neural data are spike counts (signal kind ``counts``, the default) or any real-valued
signal (``continuous``: z-scored rates, calcium traces), as the config's ``signals`` map declares
per session. File layouts:

- ``.npz``: ``neural`` (T, N) and one 1-D array of length T per label column, named as declared;
  for the rat track also the published layout, ``spikes`` (T, N) and ``position`` (or ``labels``)
  (T, 3) = [position, right, left];
- ``.jl``: a published rat (a joblib pickle, opened only after its MD5 matched a known one);
- ``.parquet``: columns ``n0 … n{N-1}`` and the label columns by name;
- ``.nwb``: see `cebra_core.sessions.nwb`.

The workflow converts every session once into a parquet *session table* (columns ``n0 …
n{N-1}`` float32, then the label columns: continuous float32, discrete int64) that every later
step reads, so a pickle is opened at most once, and a session is validated once.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cebra_core.sessions.files import md5sum, write_table
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.rats import PUBLISHED
from cebra_core.sessions.validation import DEFAULT_SIGNAL, session_error, validate_session

NEURAL_KEYS = ("neural", "spikes")  # the neural data's array in a .npz / .jl
RAT_LABEL_KEYS = ("position", "labels")  # the rat track's (T, 3) labels [position, right, left], published name first
SUFFIXES = (".jl", ".npz", ".parquet", ".nwb")
NEURAL_COLUMN = re.compile(r"^n(\d+)$")


def _from_mapping(obj, path, session, signal: str, spec: LabelSpec) -> tuple[np.ndarray, pd.DataFrame]:
    """A session from a dict of arrays: the neural data under one of NEURAL_KEYS, the label columns
    by name (or, for the rat track, a (T, 3) ``position`` or ``labels`` array)."""
    if not isinstance(obj, Mapping):
        raise session_error(path, session, f"expected a dict of arrays ({' or '.join(NEURAL_KEYS)} and the label "
                                           f"columns), got {type(obj).__name__}")
    neural_key = next((k for k in NEURAL_KEYS if k in obj), None)
    if neural_key is None:
        raise session_error(path, session, f"missing the neural data ({' or '.join(NEURAL_KEYS)}); found {list(obj)}")
    labels = obj
    if spec.is_rat_track:
        stacked = [np.asarray(obj[k]) for k in RAT_LABEL_KEYS if k in obj and np.ndim(obj[k]) == 2]
        labels = stacked[0] if stacked else obj
    return validate_session(obj[neural_key], labels, spec=spec, session=session, source=path, signal=signal)


def _load_jl(path: Path, session: str, md5: str | None, signal: str, spec: LabelSpec) -> tuple[np.ndarray, pd.DataFrame]:
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
    return _from_mapping(contents, path, session, signal, spec)


def _reason(error: BaseException) -> str:
    """A library's exception as one short line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _load_npz(path: Path, session: str, signal: str, spec: LabelSpec) -> tuple[np.ndarray, pd.DataFrame]:
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
    return _from_mapping(contents, path, session, signal, spec)


def load_session(
    path: str | os.PathLike, session: str | None = None, md5: str | None = None, nwb: Mapping | None = None,
    signal: str = DEFAULT_SIGNAL, labels: LabelSpec = LabelSpec(),
) -> tuple[np.ndarray, pd.DataFrame]:
    """Load and validate one session from .jl (MD5-verified), .npz, a parquet session table or .nwb:
    (neural (T, N) float32, the declared ``labels`` columns as a DataFrame).

    ``nwb``: keyword options of `cebra_core.sessions.nwb.read_nwb` (bin width, position series, track axis, epochs).
    ``signal``: what the neural data are (`SIGNAL_KINDS`); an NWB session's must be what its neural
    source gives (spike units: counts; an ophys ROI series: continuous).
    """
    path = Path(path)
    session = session or path.stem
    if not path.is_file():
        raise session_error(path, session, "file not found")
    suffix = path.suffix.lower()
    if nwb and suffix != ".nwb":
        raise session_error(path, session, f"NWB options {sorted(nwb)} are given, but this is not a .nwb file")
    if suffix == ".jl":
        return _load_jl(path, session, md5, signal, labels)
    if md5 is not None and md5sum(path) != md5.lower():
        raise session_error(path, session, f"MD5 {md5sum(path)} does not match the configured md5 {md5}")
    if suffix == ".npz":
        return _load_npz(path, session, signal, labels)
    if suffix == ".parquet":
        return _load_parquet(path, session, signal, labels)
    if suffix == ".nwb":
        from cebra_core.sessions.nwb import read_nwb  # pynwb only where NWB files are read

        return read_nwb(path, session, labels=labels, signal=signal, **(nwb or {}))
    raise session_error(path, session, f"unknown file type {suffix!r}; use one of {', '.join(SUFFIXES)}")


def session_frame(neural: np.ndarray, labels: pd.DataFrame) -> pd.DataFrame:
    """The session table: n0 … n{N-1} (float32, the neural data of either signal kind), then the
    label columns as they are typed (continuous float32, discrete int64)."""
    columns = {f"n{i}": neural[:, i].astype(np.float32) for i in range(neural.shape[1])}
    frame = pd.DataFrame(columns)
    for name in labels.columns:
        frame[name] = labels[name].to_numpy()
    return frame


def write_session(path: str | os.PathLike, neural: np.ndarray, labels: pd.DataFrame) -> None:
    """Write a validated session (`load_session`, or a simulator's) as a session table, atomically."""
    write_table(session_frame(neural, labels), path)


def _split_table(frame: pd.DataFrame, path, session: str) -> tuple[np.ndarray, pd.DataFrame]:
    """(neural (T, N) from n0 … n{N-1} in order, every other column as the labels)."""
    neural_cols = sorted((c for c in frame.columns if NEURAL_COLUMN.match(str(c))), key=lambda c: int(c[1:]))
    if not neural_cols:
        raise session_error(path, session, "a session table needs the neural columns n0 … n{N-1}; found none "
                                           f"(columns: {list(frame.columns)[:10]})")
    return frame[neural_cols].to_numpy(), frame.drop(columns=neural_cols)


def _read_parquet(path: Path, session: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow's ArrowInvalid, OSError, ...: name the file and say so in one line
        raise session_error(path, session, f"cannot be read as a parquet table ({_reason(err)})") from None


def _load_parquet(path: Path, session: str, signal: str, spec: LabelSpec) -> tuple[np.ndarray, pd.DataFrame]:
    neural, labels = _split_table(_read_parquet(path, session), path, session)
    return validate_session(neural, labels, spec=spec, session=session, source=path, signal=signal)


def read_session(path: str | os.PathLike, session: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """A session table the workflow wrote (validated when it was imported): (neural (T, N) float32,
    its label columns). Nothing is checked again; a user's own parquet file goes through `load_session`."""
    path = Path(path)
    session = session or path.stem
    neural, labels = _split_table(_read_parquet(path, session), path, session)
    return neural.astype(np.float32, copy=False), labels.reset_index(drop=True)
