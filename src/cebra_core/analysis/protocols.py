"""The held-out evaluation protocols' names and the trial split's size: facts the workflow's plan
needs as well as the splits themselves, so standard library only (the plan runs in Snakemake's own
process, which under ``--use-conda`` has no numpy)."""

PROTOCOLS = ("contiguous", "trials")  # evaluation.protocol: contiguous blocks of time, or CEBRA's trial split
TRIAL_SPLITS = 3  # the trial split's split numbers 0, 1, 2 (CEBRA's inner 3-fold split; cebra_core.analysis.trials)
