"""A sweep's table, its choice on the validation parts and the chosen parameters as a config file."""

from common import run, start

start(snakemake)

from cebra_core.steps.analysis import sweep  # noqa: E402

run(
    sweep,
    snakemake.input, table=snakemake.output.table, csv=snakemake.output.csv, chosen=snakemake.output.chosen,
    runs=snakemake.params.runs, sessions=snakemake.params.sessions, select_by=snakemake.params.select_by,
    neighbors=snakemake.params.neighbors, bins=snakemake.params.bins, decode=snakemake.params.decode,
    label=snakemake.params.label,
)
