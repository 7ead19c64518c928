"""Statistics over seeds and rat pairs: mean ± sd, and the paired t-test of the CEBRA paper.

The paper (Schneider, Lee & Mathis 2023, Extended Data Fig. 7) compares multi- with single-session
consistency over the 12 ordered rat pairs with a paired t-test. Here each pair's score is first
averaged over seeds, then the two kinds are compared pair by pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as scipy_stats

__all__ = ["PairedTest", "mean_sd", "paired_consistency_test", "paired_ttest"]


def mean_sd(values: npt.ArrayLike) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for fewer than two values)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_sd needs at least one value")
    sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return float(values.mean()), sd


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of b against a: mean difference (b - a), t statistic, two-sided p, n pairs."""

    mean_difference: float
    statistic: float
    p_value: float
    n: int


def paired_ttest(a: npt.ArrayLike, b: npt.ArrayLike) -> PairedTest:
    """Two-sided paired t-test of b against a (scipy.stats.ttest_rel); needs at least two pairs."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_ttest needs two 1-D arrays of equal length, got shapes {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"paired_ttest needs at least two pairs, got {a.size}")
    result = scipy_stats.ttest_rel(b, a)
    return PairedTest(float(np.mean(b - a)), float(result.statistic), float(result.pvalue), int(a.size))


def paired_consistency_test(table: pd.DataFrame, first: str = "single", second: str = "multi") -> PairedTest:
    """Paired t-test of consistency, ``second`` against ``first``, over ordered (source, target) pairs.

    ``table`` has columns kind, seed, source, target, score; each pair is averaged over seeds first.
    """
    means = table.groupby(["kind", "source", "target"])["score"].mean().unstack("kind")
    missing = [k for k in (first, second) if k not in means.columns]
    if missing:
        raise ValueError(f"the consistency table has no rows of kind {missing}")
    means = means[[first, second]].dropna()
    return paired_ttest(means[first].to_numpy(), means[second].to_numpy())


SUMMARY_COLUMNS = ["measure", "kind", "subject", "label", "mean", "sd", "n", "statistic", "p_value"]


def summary_table(consistency: pd.DataFrame, decoding: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The numbers a reviewer asks for, as one tidy table (columns ``SUMMARY_COLUMNS``):

    - ``consistency``: per kind, the mean over ordered pairs, mean ± sd over seeds;
    - ``consistency_pair``: per kind and pair, mean ± sd over seeds;
    - ``consistency_paired_test``: multi against single over the pairs (seed means), t and p;
    - ``decoding_<metric>`` / ``chance_<metric>``: within-animal held-out decoding per kind, animal
      and label column (``label``), and its chance level, mean ± sd over seeds and folds (``n``);
    - ``runs_consistency``: per kind and animal, consistency between seeds (``runs`` table:
      kind, session, score), a check that the fits converge to the same embedding.
    """
    rows = []
    per_seed = consistency.groupby(["kind", "seed"])["score"].mean()
    for kind, values in per_seed.groupby(level="kind"):
        rows.append(("consistency", kind, "mean over pairs", "", *mean_sd(values), len(values), np.nan, np.nan))
    for (kind, source, target), values in consistency.groupby(["kind", "source", "target"])["score"]:
        rows.append(("consistency_pair", kind, f"{source}->{target}", "", *mean_sd(values), len(values), np.nan, np.nan))
    if {"single", "multi"} <= set(consistency["kind"]) and consistency.groupby(["source", "target"]).ngroups >= 2:
        test = paired_consistency_test(consistency)
        rows.append(("consistency_paired_test", "multi-single", "ordered pairs", "", test.mean_difference, np.nan,
                     test.n, test.statistic, test.p_value))
    within = decoding[decoding["train"] == decoding["test"]]
    for (kind, animal, column, metric), group in within.groupby(["kind", "test", "column", "metric"], sort=False):
        for prefix, values in (("decoding", group["value"]), ("chance", group["chance"])):
            rows.append((f"{prefix}_{metric}", kind, animal, column, *mean_sd(values), len(values), np.nan, np.nan))
    if runs is not None:
        for row in runs.itertuples():
            rows.append(("runs_consistency", row.kind, row.session, "", row.score, np.nan, row.n_runs, np.nan, np.nan))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
