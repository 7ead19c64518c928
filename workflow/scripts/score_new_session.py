"""The held-out session's scores on its test part, for every seed and fold: adapted encoder,
untrained encoder (random), its single-session and its full multi-session held-out fits
(cebra_core.evaluation.new_session_table)."""

import logging

from common import start

start(snakemake)

import pandas as pd

from cebra_core.data import split_sessions, write_table
from cebra_core.evaluation import new_session_table

names = list(snakemake.params.sessions)
held_out = snakemake.wildcards.session
per_run = len(names)
tables = []
for i, run in enumerate(snakemake.params.runs):
    adapted = split_sessions(pd.read_parquet(snakemake.input.adapted[i]), names)
    singles = [pd.read_parquet(p) for p in snakemake.input.single[i * per_run:(i + 1) * per_run]]
    kinds = {
        "random": {**adapted, held_out: pd.read_parquet(snakemake.input.untrained[i])},
        "single": split_sessions(pd.concat(singles, ignore_index=True), names),
        "multi": split_sessions(pd.read_parquet(snakemake.input.multi[i]), names),
        "adapted": adapted,
    }
    table = new_session_table(kinds, held_out, bins=snakemake.params.bins, n_neighbors=snakemake.params.neighbors,
                              min_coverage=snakemake.params.min_coverage)
    table.insert(0, "seed", run["seed"])
    table.insert(1, "split", run["fold"])
    tables.append(table)
    means = table[table["measure"] == "consistency_mean"].set_index("kind")["value"]
    logging.info("seed %s %s: consistency %s", run["seed"], run["fold"], means.round(3).to_dict())
write_table(pd.concat(tables, ignore_index=True), snakemake.output.table, snakemake.output.csv)
