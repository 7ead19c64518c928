"""Consistency of the whole-session single- and multi-session fits, for every seed."""

from common import run, start

start(snakemake)

from cebra_core.steps.analysis import consistency  # noqa: E402

run(
    consistency,
    snakemake.input, table=snakemake.output.table, csv=snakemake.output.csv, sessions=snakemake.params.sessions,
    bins=snakemake.params.bins, label=snakemake.params.label,
)
