"""Held-out kNN position decoding within and across sessions, for both kinds of fit, every seed and fold."""

from common import run, start

start(snakemake)

from cebra_core.steps.analysis import decoding  # noqa: E402

run(
    decoding,
    snakemake.input, table=snakemake.output.table, csv=snakemake.output.csv, groups=snakemake.params.groups,
    sessions=snakemake.params.sessions, neighbors=snakemake.params.neighbors, top_k=snakemake.params.top_k,
    min_coverage=snakemake.params.min_coverage, k_grid=snakemake.params.k_grid, label=snakemake.params.label,
)
