"""A new animal online: adapt a trained multi-session model on the first bins of a new session, then
embed the rest bin by bin as it would arrive (a `Stream` of a causal model), timing each bin; the
offline reference embeds the same rest in one batch. Used by `snakemake online`
(`cebra_core.steps.fits.online`) and `benchmarks/bench_online.py`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from cebra_core.engine.estimator import CEBRA


def adapt_first(model: CEBRA, neural: np.ndarray, labels: Sequence[np.ndarray], bins: int,
                iterations: int | None, **options) -> tuple[int, float]:
    """Adapt the new session's first ``bins`` bins (and their ``labels``, one array per label kind)
    into ``model``, in place (``options``: `CEBRA.adapt`'s); returns (its session_id, seconds it took)."""
    started = time.perf_counter()
    session_id = model.adapt(neural[:bins], *(y[:bins] for y in labels), max_iterations=iterations, **options)
    return session_id, time.perf_counter() - started


def stream_rest(model: CEBRA, session_id: int, neural: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Embed the bins after the first ``bins`` one at a time through a stream (the first ``bins``
    fill its window first): (embeddings (T - bins, D), seconds each bin took)."""
    stream = model.stream(session_id)
    stream.push(neural[:bins])
    rest = neural[bins:]
    embedding = np.empty((len(rest), model.output_dimension), np.float32)
    latency = np.empty(len(rest))
    for i, row in enumerate(rest):
        started = time.perf_counter()
        embedding[i] = stream.push(row)[0]
        latency[i] = time.perf_counter() - started
    return embedding, latency


def batch_rest(model: CEBRA, session_id: int, neural: np.ndarray, bins: int) -> np.ndarray:
    """The offline reference: the whole recording embedded in one batch, the rows after ``bins``."""
    return model.transform(neural, session_id=session_id)[bins:]


def trained_embedding(model: CEBRA, sessions: Sequence[np.ndarray]) -> np.ndarray:
    """The trained sessions' embeddings through their own encoders, concatenated (a decoder's training set)."""
    return np.concatenate([model.transform(x, session_id=i) for i, x in enumerate(sessions)])


def latency_summary(latency: np.ndarray) -> dict[str, float]:
    """Median and 99th percentile of the seconds per bin, in milliseconds."""
    return {"latency_median_ms": 1e3 * float(np.median(latency)),
            "latency_p99_ms": 1e3 * float(np.percentile(latency, 99))}
