"""Embedding tables: every fit's embedding of every row of a session, with the row's labels and the
part of the split it belongs to; what alignment, consistency, decoding and the figures read."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


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
