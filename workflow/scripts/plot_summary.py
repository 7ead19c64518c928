"""The summary figure: consistency per pair over seeds, held-out decoding per session."""

from common import run, start

start(snakemake)

from cebra_core.steps.figures import summary  # noqa: E402

run(
    summary,
    snakemake.input.statistics, png=snakemake.output.png, pdf=snakemake.output.pdf, sessions=snakemake.params.sessions,
    decode=snakemake.params.decode,
)
