"""Download one published rat and verify both MD5s; nothing is unpickled here."""

from common import run, start

start(snakemake)

from cebra_core.steps.data import download  # noqa: E402

run(
    download,
    snakemake.wildcards.session, snakemake.output[0], **snakemake.params.download,
)
