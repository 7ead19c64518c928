"""A new animal online: its streamed part's decoding against the seconds adapted on, and the latency per bin."""

from common import run, start

start(snakemake)

from cebra_core.steps.figures import online  # noqa: E402

run(
    online,
    snakemake.input[0], png=snakemake.output.png, pdf=snakemake.output.pdf,
)
