"""Adapt the held-out session into the other sessions' multi-session space (CEBRA.adapt); save the
model, all sessions' embeddings in that space, and the held-out session's untrained-encoder embedding."""

import logging
import time

from common import start

start(snakemake)

import pandas as pd
import torch

from cebra_core import CEBRA
from cebra_core.adaptation import new_session_encoder
from cebra_core.data import embedding_frame, read_session, write_table
from cebra_core.model import embed_sequence

torch.set_num_threads(snakemake.threads)
names = list(snakemake.params.sessions)
held_out = snakemake.wildcards.session
trained = [name for name in names if name != held_out]  # the order fit_multi_without trained them in
data = {name: read_session(path, session=name) for name, path in zip(names, snakemake.input.sessions)}
model = CEBRA.load(snakemake.input.model, device=snakemake.params.device)
if model.num_sessions_ != len(trained):
    raise ValueError(f"{snakemake.input.model} has {model.num_sessions_} sessions, expected {len(trained)} ({trained})")

X, y = data[held_out]
# The baseline: the adapted encoder's own starting point (adapt seeds the new first layer with seed_ + new id).
untrained = new_session_encoder(model.model_[0], X.shape[1], seed=model.seed_ + model.num_sessions_)
with torch.no_grad():
    z_untrained = embed_sequence(untrained, torch.from_numpy(X).to(model.device_)).cpu().numpy()

logging.info("adapting %s %s into the space of %s", held_out, X.shape, trained)
start = time.perf_counter()
new_id = model.adapt(X, y, max_iterations=snakemake.params.iterations)
logging.info("adapt done on %s in %.1f s", model.device_, time.perf_counter() - start)
model.save(snakemake.output.model)

ids = {**{name: i for i, name in enumerate(trained)}, held_out: new_id}
frames = [embedding_frame(name, model.transform(x, session_id=ids[name]), labels) for name, (x, labels) in data.items()]
write_table(pd.concat(frames, ignore_index=True), snakemake.output.embedding)
write_table(embedding_frame(held_out, z_untrained, y), snakemake.output.untrained)
