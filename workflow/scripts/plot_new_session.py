"""The held-out session's consistency by kind of embedding, with its decoding errors beside."""

from common import run, start

start(snakemake)

from cebra_core.steps.figures import new_session  # noqa: E402

run(
    new_session,
    snakemake.input[0], png=snakemake.output.png, pdf=snakemake.output.pdf, held_out=snakemake.wildcards.session,
    decode=snakemake.params.decode,
)
