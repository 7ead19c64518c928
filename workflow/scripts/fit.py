"""Fit CEBRA on one session (single) or several (multi) for one seed, on whole sessions or on the
train parts of a held-out split; write the model, the loss history and every row's embedding."""

from common import run, start

start(snakemake)

from cebra_core.steps.fits import fit  # noqa: E402

run(
    fit,
    {name: snakemake.input[name] for name in snakemake.params.sessions},
    model=snakemake.output.model, embedding=snakemake.output.embedding, loss=snakemake.output.loss,
    kind=snakemake.params.kind, cebra=snakemake.params.cebra, split=snakemake.params.split,
    seed=int(snakemake.wildcards.seed), device=snakemake.params.device, labels=snakemake.params.labels,
    threads=snakemake.threads,
    name=snakemake.wildcards.fit, split_name=snakemake.wildcards.split,
)
