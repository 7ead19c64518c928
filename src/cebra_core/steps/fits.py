"""The fit steps (the fit environment: torch, numpy, pandas, pyarrow): one CEBRA fit of one or more
sessions on the rows a split lets it see, and a held-out session adapted into a trained
multi-session model. Each writes its model, its embedding table and (a fit) its loss history.

A running fit keeps its checkpoint beside its model (`checkpoint_path`) and resumes from it when
the job is started again with the same inputs; the checkpoint is removed once every output is
written. It is not an output of the rule, so Snakemake leaves it in place when a job fails.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cebra_core.analysis.splits import fit_rows, make_split, session_parts, transform_runs
from cebra_core.analysis.decoding import decode
from cebra_core.analysis.replay import adapt_first, batch_rest, latency_summary, stream_rest, trained_embedding
from cebra_core.analysis.tables import embedding_frame
from cebra_core.engine.estimator import CEBRA, resolve_device
from cebra_core.sessions.data import read_session
from cebra_core.sessions.files import write_table
from cebra_core.sessions.labels import LabelSpec

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def checkpoint_path(model: str | os.PathLike) -> Path:
    """Where the fit that writes ``model`` keeps its checkpoint while it runs: beside it."""
    return Path(model).with_name(CHECKPOINT_NAME)


def training_labels(labels: pd.DataFrame, spec: LabelSpec) -> list[np.ndarray]:
    """The label arrays `CEBRA.fit` takes for the declared columns: the continuous ones as one float32
    (T, c) array, the discrete one as an int64 (T,) array (as CEBRA tells them apart)."""
    arrays = []
    if spec.continuous:
        arrays.append(labels[list(spec.continuous)].to_numpy(np.float32))
    if spec.discrete:
        arrays.append(labels[spec.discrete[0]].to_numpy(np.int64))
    return arrays


def fit(tables: Mapping[str, str | os.PathLike], *, model: str | os.PathLike, embedding: str | os.PathLike,
        loss: str | os.PathLike, kind: str, cebra: Mapping, split: Mapping, seed: int, device: str,
        labels: Mapping | None = None, threads: int = 1, name: str = "", split_name: str = "") -> None:
    """Fit CEBRA on the session tables ``{session: path}`` (their order is the model's session ids),
    one session (``kind`` single) or all of them (multi), on the declared ``labels`` (the config's
    {continuous, discrete}; None: the rat track), on the rows the split lets it see (all, or the train
    parts, in time order as CEBRA concatenates them); write the model, every row's
    embedding (each run of one part embedded on its own) and the loss history (labelled with the
    fit's ``name``, ``seed`` and ``split_name``)."""
    device = resolve_device(device)  # a device torch does not see fails here, before any data are read
    torch.set_num_threads(threads)
    sessions = {session: read_session(path, session) for session, path in tables.items()}
    cut = make_split(**split)
    parts = {session: session_parts(cut, y) for session, (_, y) in sessions.items()}
    spec = LabelSpec.from_config(labels)
    train = [(x[fit_rows(parts[s])], training_labels(y[fit_rows(parts[s])], spec)) for s, (x, y) in sessions.items()]
    params = {**cebra, "seed": int(seed)}
    estimator = CEBRA(**params, device=device, verbose=True, checkpoint_path=checkpoint_path(model))
    log.info("fitting %s (seed %s, split %s) on %s: train rows %s; parameters %s", name, seed, split_name,
             list(sessions), [len(x) for x, _ in train], params)
    started = time.perf_counter()
    if kind == "multi":
        estimator.fit([x for x, _ in train], *([y[i] for _, y in train] for i in range(len(train[0][1]))))
    else:
        estimator.fit(train[0][0], *train[0][1])
    seconds = time.perf_counter() - started
    log.info("fit done on %s in %.1f s (%.1f it/s)", estimator.device_, seconds, params["max_iterations"] / seconds)
    estimator.save(model)
    frames = []
    for i, (session, (x, y)) in enumerate(sessions.items()):
        z = transform_runs(lambda rows: estimator.transform(rows, session_id=i if kind == "multi" else None), x,
                           parts[session])
        frames.append(embedding_frame(session, z, y, part=parts[session]))
    write_table(pd.concat(frames, ignore_index=True), embedding)
    write_table(loss_table(estimator.log_, name, int(seed), split_name), loss)
    log.info("final loss %.4f", estimator.loss_history_[-1])
    checkpoint_path(model).unlink(missing_ok=True)


def loss_table(history: Mapping[str, Sequence[float]], fit_name: str, seed: int, split_name: str) -> pd.DataFrame:
    """The loss history (pos, neg, total, temperature per iteration) as a table: fit, seed, split,
    iteration, then each logged column."""
    iterations = len(next(iter(history.values())))
    table = pd.DataFrame({"fit": fit_name, "seed": seed, "split": split_name,
                          "iteration": np.arange(1, iterations + 1)})
    for column, values in history.items():
        table[column] = np.asarray(values, dtype=np.float64)
    return table


def adapt(tables: Mapping[str, str | os.PathLike], *, trained_model: str | os.PathLike, held_out: str,
          trained: Sequence[str], model: str | os.PathLike, embedding: str | os.PathLike,
          untrained: str | os.PathLike, split: Mapping, iterations: int | None, device: str,
          labels: Mapping | None = None, threads: int = 1) -> None:
    """Adapt ``held_out`` into ``trained_model`` (a multi-session fit of ``trained``, in that order) on
    its train part only; write the adapted model, every session's embedding in that space (rows
    marked by part) and the held-out session's embedding through its untrained encoder (the
    baseline: a fresh random first layer before any training)."""
    torch.set_num_threads(threads)
    sessions = {session: read_session(path, session) for session, path in tables.items()}
    cut = make_split(**split)
    estimator = CEBRA.load(trained_model, device=device)
    if estimator.num_sessions_ != len(trained):
        raise ValueError(f"{trained_model} has {estimator.num_sessions_} sessions, expected {len(trained)} ({trained})")
    X, y = sessions[held_out]
    parts = session_parts(cut, y)
    train = fit_rows(parts)
    baseline = estimator.untrained_encoder(X.shape[1])
    log.info("adapting %s (train part %d of %d rows) into the space of %s", held_out, train.sum(), len(X), trained)
    started = time.perf_counter()
    estimator.checkpoint_path = checkpoint_path(model)  # a retried job resumes its adaptation
    new_id = estimator.adapt(X[train], *training_labels(y[train], LabelSpec.from_config(labels)),
                             max_iterations=iterations)
    log.info("adapt done on %s in %.1f s", estimator.device_, time.perf_counter() - started)
    estimator.save(model)
    ids = {**{session: i for i, session in enumerate(trained)}, held_out: new_id}
    frames = []
    for session, (x, labels) in sessions.items():
        session_part = session_parts(cut, labels)
        z = transform_runs(lambda rows: estimator.transform(rows, session_id=ids[session]), x, session_part)
        frames.append(embedding_frame(session, z, labels, part=session_part))
    write_table(pd.concat(frames, ignore_index=True), embedding)
    write_table(embedding_frame(held_out, transform_runs(baseline, X, parts), y, part=parts), untrained)
    checkpoint_path(model).unlink(missing_ok=True)


def online(tables: Mapping[str, str | os.PathLike], *, model: str | os.PathLike, offline: str | os.PathLike,
           table: str | os.PathLike, csv: str | os.PathLike, held_out: str, trained: Sequence[str],
           seconds: Sequence[float], bin_seconds: float, iterations: int | None, device: str,
           score: Mapping[str, str], neighbors: int, labels: Mapping | None = None, threads: int = 1) -> None:
    """A new animal online: for each length in ``seconds``, adapt ``held_out`` into the causal
    multi-session ``model`` (of ``trained``, whole sessions) on its first seconds, then stream the rest
    bin by bin and decode ``score``'s column with a kNN decoder fitted on the trained animals'
    embeddings. Rows: seconds, bins, adapt_seconds, latency per bin (median and 99th percentile, ms,
    ``threads`` CPU threads), the streamed part's score and chance, and the offline score: the same
    rows after the same adaptation into ``offline`` (the centred, non-causal leave-one-out fit of the
    trained animals), embedded in one batch. No score comes from a model that saw the scored labels:
    both models saw only the held-out animal's first seconds."""
    torch.set_num_threads(threads)
    spec = LabelSpec.from_config(labels)
    sessions = {session: read_session(path, session) for session, path in tables.items()}
    column, metric = score["column"], score["metric"]
    kind = spec.kind(column)
    X, y = sessions[held_out]
    rows = []
    train_y = np.concatenate([sessions[s][1][column].to_numpy() for s in trained])
    truth_all = y[column].to_numpy()
    for length in seconds:
        bins = int(round(length / bin_seconds))
        if bins >= len(X) - neighbors:
            log.warning("%s: %g s (%d bins) leaves nothing to stream of its %d bins; skipped", held_out, length, bins, len(X))
            continue
        labels_first = training_labels(y[:bins], spec)
        causal = CEBRA.load(model, device=device)
        new_id, adapt_seconds = adapt_first(causal, X, labels_first, bins, iterations)
        streamed, latency = stream_rest(causal, new_id, X, bins)
        truth = truth_all[bins:]
        train_z = trained_embedding(causal, [sessions[s][0] for s in trained])
        value, chance = decode(train_z, train_y, streamed, truth, kind, neighbors)[metric]
        centred = CEBRA.load(offline, device=device)
        centred_id, _ = adapt_first(centred, X, labels_first, bins, iterations)
        offline_value, _ = decode(trained_embedding(centred, [sessions[s][0] for s in trained]), train_y,
                                  batch_rest(centred, centred_id, X, bins), truth, kind, neighbors)[metric]
        rows.append({"session": held_out, "seconds": float(length), "bins": bins, "adapt_seconds": adapt_seconds,
                     "adapt_iterations": causal.max_iterations if iterations is None else iterations,
                     **latency_summary(latency), "streamed_bins": len(latency),
                     "column": column, "metric": metric, "value": value, "chance": chance,
                     "offline_value": offline_value, "threads": threads})
        log.info("%s online after %g s: %s %s %.4g (chance %.4g, offline %.4g); adapt %.1f s; latency median %.3f "
                 "ms, p99 %.3f ms", held_out, length, column, metric, value, chance, offline_value, adapt_seconds,
                 rows[-1]["latency_median_ms"], rows[-1]["latency_p99_ms"])
    if not rows:
        raise ValueError(f"{held_out}: every length of online.seconds {list(seconds)} leaves nothing to stream")
    write_table(pd.DataFrame(rows), table, csv)
