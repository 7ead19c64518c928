"""Simulate one rat's place cells and write its session table."""

from common import run, start

start(snakemake)

from cebra_core.steps.data import simulate  # noqa: E402

run(
    simulate,
    snakemake.wildcards.session, snakemake.output[0], **snakemake.params.simulate, labels=snakemake.params.labels,
)
