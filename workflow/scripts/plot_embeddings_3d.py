"""One session's interactive 3-D embeddings, as an offline HTML page."""

from common import run, start

start(snakemake)

from cebra_core.steps.figures import embeddings_3d  # noqa: E402

run(
    embeddings_3d,
    single=snakemake.input.single, multi=snakemake.input.multi, html=snakemake.output[0],
    session=snakemake.wildcards.session, sessions=snakemake.params.sessions, colour_by=snakemake.params.colour_by,
)
