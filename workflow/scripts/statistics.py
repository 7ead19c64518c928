"""Mean ± sd over seeds, the paired test of multi- against single-session consistency, and the
consistency between seeds (cebra_core.stats, cebra_core.evaluation)."""

import logging

from common import start

start(snakemake)

import pandas as pd

from cebra_core.data import write_table
from cebra_core.evaluation import runs_consistency
from cebra_core.stats import summary_table

tables = {kind: [pd.read_parquet(p) for p in snakemake.input[kind]] for kind in ("single", "multi")}
runs = runs_consistency(tables, snakemake.params.sessions)
table = summary_table(pd.read_parquet(snakemake.input.consistency), pd.read_parquet(snakemake.input.decoding), runs)
write_table(table, snakemake.output.table, snakemake.output.csv)
for row in table[table["measure"].isin(["consistency", "consistency_paired_test"])].itertuples():
    logging.info("%s %s: %.3f ± %.3f (n=%d) t=%.3f p=%.4g", row.measure, row.kind, row.mean, row.sd, row.n,
                 row.statistic, row.p_value)
