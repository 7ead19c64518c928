"""kNN position decoding within each rat (time split) and across rats, for both kinds of fit."""

import logging

from common import start

start(snakemake)

import pandas as pd

from cebra_core.data import atomic_output, embedding_columns, split_sessions, write_table
from cebra_core.decoding import cross_decode_table

names = list(snakemake.params.sessions)
tables = []
for kind in ("single", "multi"):
    table = pd.read_parquet(snakemake.input[kind])
    z = embedding_columns(table)
    parts = split_sessions(table, names)
    scores = cross_decode_table(
        {name: part[z].to_numpy() for name, part in parts.items()},
        {name: part["position"].to_numpy() for name, part in parts.items()},
        n_neighbors=snakemake.params.neighbors,
    )
    scores.insert(0, "kind", kind)
    tables.append(scores)
    within = scores[scores["train"] == scores["test"]]
    logging.info("%s: within-rat median error %.1f cm", kind, within["median_error_cm"].mean())
result = pd.concat(tables, ignore_index=True)
write_table(result, snakemake.output.table)
with atomic_output(snakemake.output.csv) as tmp:
    result.to_csv(tmp, index=False, float_format="%.4f")
