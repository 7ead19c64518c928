"""Fit CEBRA on one session (single) or all sessions (multi); save model, loss history, embeddings."""

import hashlib
import json
import logging
import time
from pathlib import Path

from common import start

start(snakemake)

import numpy as np
import pandas as pd
import torch

from cebra_core import CEBRA
from cebra_core.data import embedding_frame, md5sum, read_session, write_table

torch.set_num_threads(snakemake.threads)
names = list(snakemake.params.sessions)
multi = snakemake.params.multi
params = dict(snakemake.params.cebra)
neural, labels = map(list, zip(*(read_session(path, session=name) for path, name in zip(snakemake.input, names))))

# The checkpoint is named after the parameters and the input data: a changed config starts afresh
# instead of resuming someone else's fit; an interrupted job with the same inputs resumes.
identity = json.dumps({"params": params, "data": [md5sum(path) for path in snakemake.input]}, sort_keys=True)
checkpoint = Path(snakemake.params.checkpoint_dir) / f"{hashlib.sha256(identity.encode()).hexdigest()[:16]}.pt"
if checkpoint.exists():
    logging.info("resuming from checkpoint %s", checkpoint)

model = CEBRA(**params, device=snakemake.params.device, verbose=True, checkpoint_path=checkpoint)
logging.info("fitting %s on %s: %s", "multi-session" if multi else "single-session", names, [x.shape for x in neural])
start = time.perf_counter()
if multi:
    model.fit(neural, labels)
else:
    model.fit(neural[0], labels[0])
seconds = time.perf_counter() - start
logging.info("fit done on %s in %.1f s (%.1f it/s)", model.device_, seconds, params["max_iterations"] / seconds)

model.save(snakemake.output.model)
frames = [
    embedding_frame(name, model.transform(x, session_id=i if multi else None), y)
    for i, (name, x, y) in enumerate(zip(names, neural, labels))
]
write_table(pd.concat(frames, ignore_index=True), snakemake.output.embedding)
loss = pd.DataFrame({"fit": "multi" if multi else names[0], "iteration": np.arange(1, len(model.loss_history_) + 1)})
for column, values in model.log_.items():
    loss[column] = np.asarray(values, dtype=np.float64)
write_table(loss, snakemake.output.loss)
logging.info("final loss %.4f", model.loss_history_[-1])
checkpoint.unlink(missing_ok=True)
