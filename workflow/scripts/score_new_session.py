"""The held-out session's scores on its test part, for every seed and fold."""

from common import run, start

start(snakemake)

from cebra_core.steps.analysis import new_session_scores  # noqa: E402

run(
    new_session_scores,
    snakemake.input, table=snakemake.output.table, csv=snakemake.output.csv, held_out=snakemake.wildcards.session,
    runs=snakemake.params.runs, sessions=snakemake.params.sessions, bins=snakemake.params.bins,
    neighbors=snakemake.params.neighbors, min_coverage=snakemake.params.min_coverage, label=snakemake.params.label,
)
