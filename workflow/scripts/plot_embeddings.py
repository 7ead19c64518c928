"""The 2 x S embedding grid: aligned single-session fits on top, the multi-session fit below."""

from common import run, start

start(snakemake)

from cebra_core.steps.figures import embeddings  # noqa: E402

run(
    embeddings,
    single=snakemake.input.single, multi=snakemake.input.multi, png=snakemake.output.png, pdf=snakemake.output.pdf,
    sessions=snakemake.params.sessions, colour_by=snakemake.params.colour_by,
)
