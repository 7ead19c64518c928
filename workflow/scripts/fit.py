"""Fit CEBRA on one session (single) or several (multi) for one seed, on whole sessions or on the
train parts of a held-out split (a sweep's split also holds out a validation part); save the model,
the loss history and every row's embedding."""

import logging
import sys
import time
from pathlib import Path

from common import start

start(snakemake)

import numpy as np
import pandas as pd
import torch

from cebra_core import CEBRA
from cebra_core.data import embedding_frame, read_session, write_table
from cebra_core.estimator import resolve_device
from cebra_core.splits import fit_rows, make_split, session_parts, transform_runs
from cebra_core.validation import signal_of

try:  # a device torch does not see fails here, before any data are read
    resolve_device(snakemake.params.device)
except ValueError as err:
    logging.error("%s", err)
    sys.exit(1)
torch.set_num_threads(snakemake.threads)
names = list(snakemake.params.sessions)
signals = snakemake.params.signals
multi = not snakemake.wildcards.fit.startswith("single/")
params = {**snakemake.params.cebra, "seed": int(snakemake.wildcards.seed)}
split = make_split(**snakemake.params.split)
sessions = [read_session(path, session=name, signal=signal_of(signals, name))
            for path, name in zip(snakemake.input.sessions, names)]
parts = [session_parts(split, y) for _, y in sessions]  # each row's part: all, or train/validation/test
train = [(x[fit_rows(p)], y[fit_rows(p)]) for (x, y), p in zip(sessions, parts)]  # in time order, as CEBRA

# The checkpoint holds a fingerprint of the parameters and the data: an interrupted job with the
# same inputs resumes; a changed config starts afresh.
# training.py logs "resuming from checkpoint <path> at iteration N of M" when it does.
checkpoint = Path(snakemake.params.checkpoint)
model = CEBRA(**params, device=snakemake.params.device, verbose=True, checkpoint_path=snakemake.params.checkpoint)
logging.info("fitting %s (seed %s, split %s) on %s: train rows %s; parameters %s", snakemake.wildcards.fit,
             params["seed"], snakemake.wildcards.split, names, [len(x) for x, _ in train], params)
started = time.perf_counter()
if multi:
    model.fit([x for x, _ in train], [y for _, y in train])
else:
    model.fit(*train[0])
seconds = time.perf_counter() - started
logging.info("fit done on %s in %.1f s (%.1f it/s)", model.device_, seconds, params["max_iterations"] / seconds)
model.save(snakemake.output.model)

frames = []
for i, (name, (x, y), part) in enumerate(zip(names, sessions, parts)):
    # run by run: no embedded row's window reaches into another part
    z = transform_runs(lambda rows: model.transform(rows, session_id=i if multi else None), x, part)
    frames.append(embedding_frame(name, z, y, part=part))
write_table(pd.concat(frames, ignore_index=True), snakemake.output.embedding)
loss = pd.DataFrame({"fit": snakemake.wildcards.fit, "seed": params["seed"], "split": snakemake.wildcards.split,
                     "iteration": np.arange(1, len(model.loss_history_) + 1)})
for column, values in model.log_.items():
    loss[column] = np.asarray(values, dtype=np.float64)
write_table(loss, snakemake.output.loss)
logging.info("final loss %.4f", model.loss_history_[-1])
checkpoint.unlink(missing_ok=True)
