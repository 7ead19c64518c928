"""Adapt the held-out session into the other sessions' multi-session space (CEBRA.adapt), on its
train part only; write the model, every session's embedding and the untrained baseline's."""

from common import run, start

start(snakemake)

from cebra_core.steps.fits import adapt  # noqa: E402

run(
    adapt,
    {name: snakemake.input[name] for name in snakemake.params.sessions},
    trained_model=snakemake.input.model, held_out=snakemake.wildcards.session, trained=snakemake.params.trained,
    model=snakemake.output.model, embedding=snakemake.output.embedding, untrained=snakemake.output.untrained,
    split=snakemake.params.split, iterations=snakemake.params.iterations, device=snakemake.params.device,
    labels=snakemake.params.labels, threads=snakemake.threads,
)
