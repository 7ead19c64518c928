"""Consistency (R² of linear maps between label-binned embeddings) of the whole-session single- and
multi-session fits, for every seed."""

import logging

from common import start

start(snakemake)

import pandas as pd

from cebra_core.data import embedding_columns, split_sessions, write_table
from cebra_core.metrics import consistency_score

names = list(snakemake.params.sessions)
rows = []
for kind in ("single", "multi"):
    for seed, path in zip(snakemake.params.seeds, snakemake.input[kind]):
        table = pd.read_parquet(path)
        z = embedding_columns(table)
        parts = list(split_sessions(table, names).values())
        scores, pairs, _ = consistency_score(
            [p[z].to_numpy() for p in parts],
            labels=[p["position"].to_numpy() for p in parts],
            dataset_ids=names,
            num_discretization_bins=snakemake.params.bins,
        )
        rows += [(kind, int(seed), "all", str(a), str(b), float(s)) for (a, b), s in zip(pairs, scores)]
        logging.info("%s, seed %s: mean consistency %.3f", kind, seed, float(scores.mean()))
table = pd.DataFrame(rows, columns=["kind", "seed", "split", "source", "target", "score"])
write_table(table, snakemake.output.table, snakemake.output.csv)
