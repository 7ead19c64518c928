"""A sweep's table: every grid point x seed scored on the validation parts, the point chosen on
them, the chosen point and the reference scored on the test parts (cebra_core.sweep); and the
chosen parameters as a config file that --configfile accepts."""

import logging

from common import start

start(snakemake)

import pandas as pd
import yaml

from cebra_core.data import atomic_output, split_sessions, write_table
from cebra_core.sweep import SweepRun, chosen_config, sweep_table

names = list(snakemake.params.sessions)
runs = []
for run in snakemake.params.runs:  # a run: one point and seed, one fit (multi) or one per session (single)
    frames = split_sessions(pd.concat([pd.read_parquet(p) for p in run["embeddings"]], ignore_index=True), names)
    final_loss = sum(pd.read_parquet(p)["total"].iloc[-1] for p in run["losses"]) / len(run["losses"])
    seconds = sum(pd.read_csv(p, sep="\t")["s"].iloc[0] for p in run["benchmarks"])
    runs.append(SweepRun(run["point"], run["seed"], run["parameters"], frames, float(final_loss), float(seconds),
                         run["candidate"], run["reference"]))
table = sweep_table(runs, select_by=snakemake.params.select_by, n_neighbors=snakemake.params.neighbors,
                    bins=snakemake.params.bins)
write_table(table, snakemake.output.table, snakemake.output.csv)

keys = list(snakemake.params.runs[0]["parameters"])
means = table.groupby("point", sort=False)[["validation_error_cm", "validation_consistency", "test_error_cm"]].mean()
chosen = table.loc[table["chosen"], "point"].iloc[0]
reference = table.loc[table["reference"], "point"].iloc[0]
logging.info("chosen point %s %s by %s: validation error %.1f cm, test error %.1f cm (reference %s: test %.1f cm)",
             chosen, chosen_config(table, keys)["cebra"], snakemake.params.select_by, means.loc[chosen, "validation_error_cm"],
             means.loc[chosen, "test_error_cm"], reference, means.loc[reference, "test_error_cm"])
header = (
    f"# The parameters `snakemake sweep` chose (grid point {chosen}) by {', '.join(snakemake.params.select_by)}\n"
    f"# on the validation parts, mean over seeds {sorted(set(table['seed']))}: validation error "
    f"{means.loc[chosen, 'validation_error_cm']:.2f} cm; test error {means.loc[chosen, 'test_error_cm']:.2f} cm\n"
    f"# (not used to choose). Merge it over the config the sweep ran with:\n"
    f"#   snakemake --configfile <that config> {snakemake.output.chosen}\n"
)
with atomic_output(snakemake.output.chosen) as tmp:
    tmp.write_text(header + yaml.safe_dump(chosen_config(table, keys), sort_keys=False))
