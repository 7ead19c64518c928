"""Embedding tables: every fit's embedding of every row of a session, with the row's labels and the
part of the split it belongs to; what alignment, consistency, decoding and the figures read.

Columns: ``session``, ``time`` (the row), ``part`` ('all', or 'train' / 'validation' / 'test'),
``z0 … z{D-1}``, then the session's label columns as declared (continuous as float32, a discrete
one as int64: an integer column is a discrete label, as in CEBRA). An aligned table has ``kind``
and ``seed`` in front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

TABLE_COLUMNS = ("kind", "seed", "session", "time", "part")  # what an embedding table holds besides z and labels


def embedding_frame(session: str, embedding: np.ndarray, labels: pd.DataFrame, part="all") -> pd.DataFrame:
    """The embedding table of one session: session, time, part, z0 … z{D-1}, then the label columns.

    ``part`` says which part of a split each row belongs to: 'all' (whole-session fit), or
    'train' / 'validation' / 'test' (one value, or one per row) for the held-out fits.
    """
    embedding = np.asarray(embedding, dtype=np.float32)
    if len(embedding) != len(labels):
        raise ValueError(f"session {session!r}: {len(embedding)} embedding rows but {len(labels)} labels")
    frame = pd.DataFrame({"session": session, "time": np.arange(len(embedding), dtype=np.int64), "part": part})
    for d in range(embedding.shape[1]):
        frame[f"z{d}"] = embedding[:, d]
    for column in labels.columns:
        frame[column] = labels[column].to_numpy()
    return frame


def embedding_columns(frame: pd.DataFrame) -> list[str]:
    """The z0 … z{D-1} columns of an embedding table, in order."""
    cols = [c for c in frame.columns if c.startswith("z") and c[1:].isdigit()]
    return sorted(cols, key=lambda c: int(c[1:]))


def label_columns(frame: pd.DataFrame) -> list[str]:
    """The label columns of an embedding table, in order."""
    z = set(embedding_columns(frame))
    return [c for c in frame.columns if c not in TABLE_COLUMNS and c not in z]


def is_discrete(values: np.ndarray | pd.Series) -> bool:
    """Whether a label column is the discrete one (integer-valued dtype, as CEBRA tells them apart)."""
    return np.issubdtype(np.asarray(values).dtype, np.integer)


def label_values(frame: pd.DataFrame, columns: str | Sequence[str]) -> np.ndarray:
    """One label column (T,) or several (T, k) of a table."""
    return frame[columns].to_numpy() if isinstance(columns, str) else frame[list(columns)].to_numpy()


def alignment_labels(frame: pd.DataFrame) -> np.ndarray:
    """(T, d) labels that the Procrustes alignment matches rows on: every label column (CEBRA's demo
    aligns on its full label), a discrete class scaled far apart so rows only match within a class."""
    columns = label_columns(frame)
    continuous = [c for c in columns if not is_discrete(frame[c])]
    values = frame[continuous].to_numpy(np.float64) if continuous else np.zeros((len(frame), 0))
    discrete = [c for c in columns if is_discrete(frame[c])]
    if not discrete:
        return frame[continuous].to_numpy()  # as stored (float32): the rounding of CEBRA's distance
    spread = 1.0 + (float(np.abs(values).max()) if values.size else 0.0)
    classes = frame[discrete].to_numpy(np.float64) * 1e3 * spread
    return np.concatenate([values, classes], axis=1)


def split_sessions(frame: pd.DataFrame, names: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """An embedding table's rows per session, each in time order (in `names`' order, else the table's)."""
    names = list(dict.fromkeys(frame["session"])) if names is None else list(names)
    missing = [n for n in names if not (frame["session"] == n).any()]
    if missing:
        raise ValueError(f"the embedding table has no rows for sessions {missing}")
    return {name: frame[frame["session"] == name].sort_values("time") for name in names}
