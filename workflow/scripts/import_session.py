"""Load one session file (.jl only after its MD5 check, .npz, .parquet, .nwb), validate it, write its session table."""

from common import run, start

start(snakemake)

from cebra_core.steps.data import import_session  # noqa: E402

run(
    import_session,
    snakemake.input.raw, snakemake.output[0], session=snakemake.wildcards.session, md5=snakemake.params.md5,
    nwb=snakemake.params.nwb, signals=snakemake.params.signals, labels=snakemake.params.labels,
)
