"""The two consistency heatmaps (single- vs multi-session) of the first seed."""

from common import run, start

start(snakemake)

from cebra_core.steps.figures import consistency  # noqa: E402

run(
    consistency,
    snakemake.input[0], png=snakemake.output.png, pdf=snakemake.output.pdf, sessions=snakemake.params.sessions,
    seed=snakemake.params.seed,
)
