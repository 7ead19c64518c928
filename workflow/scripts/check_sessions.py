"""Check every session table against what the fits and analyses need, before any fit."""

from common import run, start

start(snakemake)

from cebra_core.steps.data import check  # noqa: E402

run(
    check,
    {name: snakemake.input[name] for name in snakemake.params.sessions}, snakemake.output[0],
    needs=snakemake.params.needs, sources=snakemake.params.sources, signals=snakemake.params.signals,
)
