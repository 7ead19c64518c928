"""Training loss curves of the first seed's whole-session fits."""

from common import run, start

start(snakemake)

from cebra_core.steps.figures import loss  # noqa: E402

run(
    loss,
    single=snakemake.input.single, multi=snakemake.input.multi, png=snakemake.output.png, pdf=snakemake.output.pdf,
    sessions=snakemake.params.sessions, batch_size=snakemake.params.batch_size,
)
