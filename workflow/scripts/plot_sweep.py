"""A sweep's figure: each measure against each grid parameter, mean ± sd over seeds."""

from common import run, start

start(snakemake)

from cebra_core.steps.figures import sweep  # noqa: E402

run(
    sweep,
    snakemake.input.table, png=snakemake.output.png, pdf=snakemake.output.pdf, grid_keys=snakemake.params.grid_keys,
)
