"""Adapt the held-out session into the other sessions' multi-session space (CEBRA.adapt), on its
train part only; save the model, every session's embedding in that space (rows marked train/test)
and the held-out session's embedding through its untrained encoder (the baseline)."""

import logging
import time

from common import start

start(snakemake)

import pandas as pd
import torch

from cebra_core import CEBRA
from cebra_core.data import embedding_frame, read_session, write_table
from cebra_core.splits import fit_rows, make_split, session_parts, transform_runs
from cebra_core.validation import signal_of

torch.set_num_threads(snakemake.threads)
names = list(snakemake.params.sessions)
held_out = snakemake.wildcards.session
trained = list(snakemake.params.trained)  # the order the leave-one-out fit trained them in
split = make_split(**snakemake.params.split)
data = {name: read_session(path, session=name, signal=signal_of(snakemake.params.signals, name))
        for name, path in zip(names, snakemake.input.sessions)}
model = CEBRA.load(snakemake.input.model, device=snakemake.params.device)
if model.num_sessions_ != len(trained):
    raise ValueError(f"{snakemake.input.model} has {model.num_sessions_} sessions, expected {len(trained)} ({trained})")

X, y = data[held_out]
train = fit_rows(session_parts(split, y))
untrained = model.untrained_encoder(X.shape[1])  # the baseline: a fresh random first layer, untrained
logging.info("adapting %s (train part %d of %d rows) into the space of %s", held_out, train.sum(), len(X), trained)
started = time.perf_counter()
new_id = model.adapt(X[train], y[train], max_iterations=snakemake.params.iterations)
logging.info("adapt done on %s in %.1f s", model.device_, time.perf_counter() - started)
model.save(snakemake.output.model)

ids = {**{name: i for i, name in enumerate(trained)}, held_out: new_id}
frames = []
for name, (x, labels) in data.items():
    parts = session_parts(split, labels)
    z = transform_runs(lambda rows: model.transform(rows, session_id=ids[name]), x, parts)
    frames.append(embedding_frame(name, z, labels, part=parts))
write_table(pd.concat(frames, ignore_index=True), snakemake.output.embedding)
parts = session_parts(split, y)
write_table(embedding_frame(held_out, transform_runs(untrained, X, parts), y, part=parts), snakemake.output.untrained)
