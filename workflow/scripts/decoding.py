"""Held-out kNN position decoding within and across rats, for both kinds of fit, every seed and
fold: encoders and decoders fitted on train parts, scored on test parts (cebra_core.evaluation)."""

import logging

from common import start

start(snakemake)

import pandas as pd

from cebra_core.data import split_sessions, write_table
from cebra_core.evaluation import decoding_table

names = list(snakemake.params.sessions)
tables = []
for group in snakemake.params.groups:
    frames = split_sessions(pd.concat([pd.read_parquet(p) for p in group["paths"]], ignore_index=True), names)
    scores = decoding_table(
        frames,
        shared_space=group["kind"] == "multi",
        n_neighbors=snakemake.params.neighbors,
        top_k=snakemake.params.top_k,
        min_coverage=snakemake.params.min_coverage,
        k_grid=snakemake.params.k_grid,
    )
    fit = "single/<train rat>" if group["kind"] == "single" else "multi"
    scores.insert(0, "kind", group["kind"])
    scores.insert(1, "seed", group["seed"])
    scores.insert(2, "split", group["fold"])
    scores.insert(3, "encoder", f"{fit} on the train parts")
    tables.append(scores)
    within = scores[scores["train"] == scores["test"]]
    logging.info("%s seed %s %s: within-rat median error %.1f cm (flagged test parts: %s)", group["kind"],
                 group["seed"], group["fold"], within["median_error_cm"].mean(), list(within.loc[within["flagged"], "test"]))
write_table(pd.concat(tables, ignore_index=True), snakemake.output.table, snakemake.output.csv)
