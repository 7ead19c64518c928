"""The held-out evaluation's names: its protocols, the trial split's size and the decoding metrics of
each kind of label. Facts the workflow's plan needs as well as the analysis itself, so standard
library only (the plan runs in Snakemake's own process, which under ``--use-conda`` has no numpy)."""

PROTOCOLS = ("contiguous", "trials")  # evaluation.protocol: contiguous blocks of time, or CEBRA's trial split
TRIAL_SPLITS = 3  # the trial split's split numbers 0, 1, 2 (CEBRA's inner 3-fold split; cebra_core.analysis.trials)
# The decoding scores of each kind of label, the first one the primary (what a k or a sweep is chosen by).
METRICS = {"continuous": ("median_abs_error", "r2"), "discrete": ("accuracy", "balanced_accuracy")}
# The score shown and chosen by when none is given (evaluation.score's default): the rat track's position.
DEFAULT_SCORE = {"column": "position", "metric": "median_abs_error"}
