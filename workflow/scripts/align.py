"""Rotate every session's embedding onto the first session's (Procrustes on label neighbours)."""

import logging

from common import start

start(snakemake)

import pandas as pd

from cebra_core.alignment import align_to_reference
from cebra_core.data import embedding_columns, frame_labels, split_sessions, write_table

names = list(snakemake.params.sessions)
table = pd.concat([pd.read_parquet(path) for path in snakemake.input], ignore_index=True)
z = embedding_columns(table)
parts = split_sessions(table, names)
aligned = align_to_reference(
    {name: part[z].to_numpy() for name, part in parts.items()},
    {name: frame_labels(part) for name, part in parts.items()},
    reference=names[0],
    top_k=snakemake.params.top_k,
)
for name, part in parts.items():
    part[z] = aligned[name]
write_table(pd.concat(parts.values(), ignore_index=True), snakemake.output[0])
logging.info("aligned %s onto %s", names[1:], names[0])
