"""Rotate every session's embedding onto the first session's (Procrustes on label neighbours)."""

from common import run, start

start(snakemake)

from cebra_core.steps.analysis import align  # noqa: E402

run(
    align,
    snakemake.input, snakemake.output[0], sessions=snakemake.params.sessions, top_k=snakemake.params.top_k,
    seed=int(snakemake.wildcards.seed), kind=snakemake.wildcards.kind,
)
