"""Mean ± sd over seeds, the paired test of multi- against single-session consistency, and the
consistency between seeds."""

from common import run, start

start(snakemake)

from cebra_core.steps.analysis import statistics  # noqa: E402

run(
    statistics,
    consistency=snakemake.input.consistency, decoding=snakemake.input.decoding, single=snakemake.input.single,
    multi=snakemake.input.multi, table=snakemake.output.table, csv=snakemake.output.csv,
    sessions=snakemake.params.sessions,
)
