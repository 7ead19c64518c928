"""Consistency (R² of linear maps between label-binned embeddings) for single- and multi-session fits."""

import logging

from common import start

start(snakemake)

import pandas as pd

from cebra_core.data import embedding_columns, split_sessions, write_table
from cebra_core.metrics import consistency_score

names = list(snakemake.params.sessions)
rows = []
for kind in ("single", "multi"):
    table = pd.read_parquet(snakemake.input[kind])
    z = embedding_columns(table)
    parts = list(split_sessions(table, names).values())
    scores, pairs, _ = consistency_score(
        [p[z].to_numpy() for p in parts],
        labels=[p["position"].to_numpy() for p in parts],
        dataset_ids=names,
        between="datasets",
        num_discretization_bins=snakemake.params.bins,
    )
    rows += [{"kind": kind, "source": str(a), "target": str(b), "score": float(s)} for (a, b), s in zip(pairs, scores)]
    logging.info("%s: mean consistency %.3f", kind, sum(float(s) for s in scores) / len(scores))
write_table(pd.DataFrame(rows, columns=["kind", "source", "target", "score"]), snakemake.output[0])
