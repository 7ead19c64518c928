"""Adapt the held-out session into the causal leave-one-out fit from its first seconds, stream the rest
bin by bin and decode it; the table of every length adapted on."""

from common import run, start

start(snakemake)

from cebra_core.steps.fits import online  # noqa: E402

run(
    online,
    {name: snakemake.input[name] for name in snakemake.params.sessions},
    model=snakemake.input.model, offline=snakemake.input.offline, table=snakemake.output.table,
    csv=snakemake.output.csv, held_out=snakemake.wildcards.session, trained=snakemake.params.trained,
    seconds=snakemake.params.seconds, bin_seconds=snakemake.params.bin_seconds,
    iterations=snakemake.params.iterations, device=snakemake.params.device, score=snakemake.params.score,
    neighbors=snakemake.params.neighbors, labels=snakemake.params.labels, threads=snakemake.threads,
)
