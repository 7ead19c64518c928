"""The held-out session's consistency with the trained rats and its position decoding: adapted
encoder, untrained encoder (random), its single-session and its full multi-session embedding."""

import logging

from common import start

start(snakemake)

import numpy as np
import pandas as pd

from cebra_core.data import atomic_output, embedding_columns, split_sessions, write_table
from cebra_core.decoding import knn_decode, pooled_decode
from cebra_core.metrics import consistency_score

names = list(snakemake.params.sessions)
held_out = snakemake.wildcards.session
trained = [name for name in names if name != held_out]
pooled = "+".join(trained)


def sessions(path):
    """{session: (embedding, position)} of an embedding table, in time order."""
    frame = pd.read_parquet(path)
    z = embedding_columns(frame)
    return {name: (part[z].to_numpy(), part["position"].to_numpy()) for name, part in split_sessions(frame).items()}


adapted = sessions(snakemake.input.adapted)
kinds = {
    "random": {**adapted, **sessions(snakemake.input.untrained)},  # the trained rats, and an untrained encoder
    "single": sessions(snakemake.input.single),
    "multi": sessions(snakemake.input.multi),
    "adapted": adapted,
}
rows = []
for kind, parts in kinds.items():
    scores, pairs, _ = consistency_score(
        [parts[name][0] for name in names],
        labels=[parts[name][1] for name in names],
        dataset_ids=names,
        num_discretization_bins=snakemake.params.bins,
    )
    mine = [(str(a), str(b), float(s)) for (a, b), s in zip(pairs, scores) if held_out in (a, b)]
    rows += [(kind, "consistency", a, b, s) for a, b, s in mine]
    mean = float(np.mean([s for *_, s in mine]))
    rows.append((kind, "consistency_mean", pooled, held_out, mean))
    if kind == "single":  # its own decoder: first 80 % of its time, tested on the rest
        source, result = held_out, knn_decode(*parts[held_out], n_neighbors=snakemake.params.neighbors)
    else:  # a decoder fitted on the trained rats, tested on the same last 20 %
        source, result = pooled, pooled_decode(
            [parts[name][0] for name in trained], [parts[name][1] for name in trained], *parts[held_out],
            n_neighbors=snakemake.params.neighbors,
        )
    rows += [(kind, "r2", source, held_out, result.r2), (kind, "median_error_cm", source, held_out, result.median_error_cm)]
    logging.info(
        "%s: consistency %.3f, decoding %s -> %s R² %.3f, median error %.1f cm (%d train, %d test samples)",
        kind, mean, source, held_out, result.r2, result.median_error_cm, result.n_train, result.n_test,
    )
table = pd.DataFrame(rows, columns=["kind", "measure", "source", "target", "value"])
write_table(table, snakemake.output.table)
with atomic_output(snakemake.output.csv) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4f")
