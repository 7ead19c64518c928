"""Mean ± sd, the paired t-test over rat pairs (seed means first) and the summary table."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from cebra_core.analysis.stats import SUMMARY_COLUMNS, mean_sd, paired_consistency_test, paired_ttest, summary_table


def test_mean_sd_uses_the_sample_sd():
    mean, sd = mean_sd([1, 2, 3, 4])
    assert mean == pytest.approx(2.5)
    assert sd == pytest.approx(math.sqrt(5 / 3))  # ddof=1; ddof=0 would be 1.118
    mean, sd = mean_sd(np.array([0.2, 0.4]))
    assert (mean, sd) == pytest.approx((0.3, math.sqrt(0.02)))


def test_mean_sd_of_one_value_has_nan_sd_and_of_none_is_an_error():
    mean, sd = mean_sd([5.0])
    assert mean == 5.0 and math.isnan(sd)
    with pytest.raises(ValueError, match="at least one value"):
        mean_sd([])


def test_paired_ttest_by_hand_and_against_scipy():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([2.0, 4.0, 5.0, 4.0])
    d = b - a  # 1, 2, 2, 0: mean 1.25, sd sqrt(2.75 / 3)
    t_hand = 1.25 / (math.sqrt(2.75 / 3) / math.sqrt(4))
    assert t_hand == pytest.approx(2.6111648, rel=1e-6)
    p_hand = 2 * scipy_stats.t.sf(t_hand, df=3)
    result = paired_ttest(a, b)
    assert result.mean_difference == pytest.approx(d.mean())
    assert result.statistic == pytest.approx(t_hand, rel=1e-10)
    assert result.p_value == pytest.approx(p_hand, rel=1e-10)
    assert 0.07 < result.p_value < 0.09
    assert result.n == 4
    # b against a: swapping the arguments flips the sign of t and of the difference, not p.
    swapped = paired_ttest(b, a)
    assert swapped.statistic == pytest.approx(-t_hand) and swapped.mean_difference == pytest.approx(-1.25)
    assert swapped.p_value == pytest.approx(result.p_value)

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12), rng.normal(0.3, 1.0, size=12)
    ref = scipy_stats.ttest_rel(b, a)
    result = paired_ttest(a, b)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert result.n == 12


@pytest.mark.parametrize("a, b", [
    ([1.0, 2.0, 3.0], [1.0, 2.0]),
    (np.ones((2, 2)), np.ones((2, 2))),
    ([1.0], [2.0]),
])
def test_paired_ttest_rejects_bad_shapes(a, b):
    with pytest.raises(ValueError, match="paired_ttest needs"):
        paired_ttest(a, b)


def _consistency(rows):
    return pd.DataFrame(rows, columns=["kind", "seed", "source", "target", "score"])


def test_paired_consistency_test_averages_each_pair_over_seeds_first():
    # Three pairs; 'single' has one seed per pair except A->B which has three very different seeds,
    # 'multi' has two seeds per pair except A->C (four). Seed means per pair:
    #   single: A->B (0.1+0.2+0.9)/3 = 0.4, B->A 0.5, A->C 0.3
    #   multi:  A->B (0.8+0.6)/2 = 0.7,    B->A 0.6, A->C 0.9
    # differences 0.3, 0.1, 0.6 (n = 3). Pooling the rows, or pairing seed 0 only, differs.
    rows = [
        ("single", 0, "A", "B", 0.1), ("single", 1, "A", "B", 0.2), ("single", 2, "A", "B", 0.9),
        ("single", 0, "B", "A", 0.5), ("single", 0, "A", "C", 0.3),
        ("multi", 0, "A", "B", 0.8), ("multi", 1, "A", "B", 0.6),
        ("multi", 0, "B", "A", 0.55), ("multi", 1, "B", "A", 0.65),
        ("multi", 0, "A", "C", 0.8), ("multi", 1, "A", "C", 1.0),
        ("multi", 2, "A", "C", 0.9), ("multi", 3, "A", "C", 0.9),
        ("random", 0, "A", "B", 0.0), ("random", 0, "B", "A", 0.0),  # another kind: ignored
    ]
    table = _consistency(rows)
    d = np.array([0.3, 0.1, 0.6])
    result = paired_consistency_test(table)
    assert result.n == 3
    assert result.mean_difference == pytest.approx(d.mean())
    assert result.statistic == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(3)))
    pooled = table[table.kind == "multi"].score.mean() - table[table.kind == "single"].score.mean()
    assert abs(pooled - d.mean()) > 0.03  # so the checks above can tell these apart
    seed0 = np.array([0.8 - 0.1, 0.55 - 0.5, 0.8 - 0.3])
    assert abs(seed0.mean() - d.mean()) > 0.03
    # first/second pick the kinds; the test is second against first.
    reverse = paired_consistency_test(table, first="multi", second="single")
    assert reverse.mean_difference == pytest.approx(-d.mean())
    vs_random = paired_consistency_test(table, first="random", second="single")
    assert vs_random.n == 2 and vs_random.mean_difference == pytest.approx((0.4 + 0.5) / 2)


def test_paired_consistency_test_needs_both_kinds():
    table = _consistency([("multi", 0, "A", "B", 0.8), ("multi", 0, "B", "A", 0.7)])
    with pytest.raises(ValueError, match="no rows of kind \\['single'\\]"):
        paired_consistency_test(table)


def _tiny_tables():
    consistency = _consistency([
        ("single", 0, "A", "B", 0.5), ("single", 0, "B", "A", 0.7),
        ("single", 1, "A", "B", 0.3), ("single", 1, "B", "A", 0.5),
        ("multi", 0, "A", "B", 0.9), ("multi", 0, "B", "A", 0.8),
        ("multi", 1, "A", "B", 0.7), ("multi", 1, "B", "A", 0.8),
    ])
    fits = [
        # kind, seed, fold, train, test, median_abs_error (value, chance), r2 (value, chance)
        ("multi", 0, 0, "A", "A", (2.0, 40.0), (0.9, -0.1)),
        ("multi", 1, 0, "A", "A", (4.0, 44.0), (0.7, 0.0)),
        ("multi", 0, 1, "A", "A", (3.0, 45.0), (0.8, 0.1)),
        ("multi", 0, 0, "B", "B", (5.0, 41.0), (0.6, 0.0)),
        ("multi", 0, 0, "A", "B", (100.0, 100.0), (-1.0, -1.0)),  # across rats: not in the summary
        ("multi", 0, 0, "B", "A", (100.0, 100.0), (-1.0, -1.0)),
        ("single", 0, 0, "B", "B", (6.0, 42.0), (0.5, 0.05)),
    ]
    # the decoding table's long format: a row per label column and metric, with its chance level
    rows = [(kind, seed, fold, train, test, "position", metric, *score)
            for kind, seed, fold, train, test, error, r2 in fits
            for metric, score in (("median_abs_error", error), ("r2", r2))]
    # a discrete column beside it: the context's accuracy (multi, A, two seeds)
    rows += [("multi", 0, 0, "A", "A", "context", "accuracy", 0.9, 0.3),
             ("multi", 1, 0, "A", "A", "context", "accuracy", 0.7, 0.35)]
    decoding = pd.DataFrame(rows, columns=["kind", "seed", "fold", "train", "test", "column", "metric", "value",
                                           "chance"])
    runs = pd.DataFrame([("multi", "A", 0.97, 2), ("single", "B", 0.91, 3)],
                        columns=["kind", "session", "score", "n_runs"])
    return consistency, decoding, runs


def _row(table, measure, kind, subject, label=None):
    rows = table[(table.measure == measure) & (table.kind == kind) & (table.subject == subject)]
    if label is not None:
        rows = rows[rows.label == label]
    assert len(rows) == 1, (measure, kind, subject, rows)
    return rows.iloc[0]


def test_summary_table_consistency_is_mean_sd_over_seeds_of_the_pair_mean():
    consistency, decoding, runs = _tiny_tables()
    table = summary_table(consistency, decoding, runs)
    assert list(table.columns) == SUMMARY_COLUMNS
    assert set(table.measure) == {"consistency", "consistency_pair", "consistency_paired_test",
                                  "decoding_median_abs_error", "chance_median_abs_error", "decoding_r2", "chance_r2",
                                  "decoding_accuracy", "chance_accuracy", "runs_consistency"}
    # consistency rows name no label column
    assert (table.loc[table.measure.str.startswith("consistency"), "label"] == "").all()
    # single: seed 0 mean over pairs 0.6, seed 1 0.4 -> 0.5 ± 0.1414 (all four rows would give sd 0.163)
    row = _row(table, "consistency", "single", "mean over pairs")
    assert (row["mean"], row["sd"], row["n"]) == pytest.approx((0.5, math.sqrt(0.02), 2))
    assert math.isnan(row["statistic"]) and math.isnan(row["p_value"])
    row = _row(table, "consistency", "multi", "mean over pairs")  # 0.85, 0.75
    assert (row["mean"], row["sd"], row["n"]) == pytest.approx((0.8, math.sqrt(0.005), 2))
    # per pair over seeds
    row = _row(table, "consistency_pair", "single", "A->B")
    assert (row["mean"], row["sd"], row["n"]) == pytest.approx((0.4, math.sqrt(0.02), 2))
    row = _row(table, "consistency_pair", "multi", "B->A")
    assert (row["mean"], row["sd"], row["n"]) == pytest.approx((0.8, 0.0, 2), abs=1e-12)
    assert (table.measure == "consistency_pair").sum() == 4
    # paired test on the seed means: d = (0.8 - 0.4, 0.8 - 0.6) = (0.4, 0.2) -> t = 0.3 / (0.1414 / sqrt 2) = 3
    row = _row(table, "consistency_paired_test", "multi-single", "ordered pairs")
    assert row["mean"] == pytest.approx(0.3)
    assert row["statistic"] == pytest.approx(3.0)
    assert row["p_value"] == pytest.approx(2 * scipy_stats.t.sf(3.0, df=1))
    assert row["n"] == 2 and math.isnan(row["sd"])


def test_summary_table_decoding_only_within_rats_and_runs_rows():
    consistency, decoding, runs = _tiny_tables()
    table = summary_table(consistency, decoding, runs)
    errors = table[table.measure == "decoding_median_abs_error"]
    assert sorted(zip(errors.kind, errors.subject)) == [("multi", "A"), ("multi", "B"), ("single", "B")]
    assert (errors.label == "position").all()
    row = _row(table, "decoding_median_abs_error", "multi", "A")  # 2, 4, 3 over seeds and folds
    assert (row["mean"], row["sd"], row["n"]) == pytest.approx((3.0, 1.0, 3))
    assert math.isnan(row["statistic"]) and math.isnan(row["p_value"])
    row = _row(table, "decoding_r2", "multi", "A", "position")
    assert (row["mean"], row["sd"], row["n"]) == pytest.approx((0.8, 0.1, 3))
    row = _row(table, "decoding_median_abs_error", "multi", "B")
    assert row["mean"] == 5.0 and row["n"] == 1 and math.isnan(row["sd"])
    assert (table.loc[table.measure.str.startswith("decoding"), "mean"] < 50).all()  # no cross-rat rows
    # beside each score its chance level (the decoder on shuffled labels), over the same fits
    row = _row(table, "chance_median_abs_error", "multi", "A", "position")  # 40, 44, 45
    assert (row["mean"], row["sd"], row["n"]) == pytest.approx((43.0, math.sqrt(7.0), 3))
    row = _row(table, "chance_r2", "single", "B", "position")
    assert row["mean"] == pytest.approx(0.05) and row["n"] == 1
    assert (table.loc[table.measure.str.startswith("chance"), "mean"] < 50).all()  # no cross-rat rows
    # every label column has its own rows, named in ``label``: the context's accuracy
    row = _row(table, "decoding_accuracy", "multi", "A", "context")
    assert (row["mean"], row["sd"], row["n"]) == pytest.approx((0.8, math.sqrt(0.02), 2))
    row = _row(table, "chance_accuracy", "multi", "A", "context")
    assert (row["mean"], row["n"]) == pytest.approx((0.325, 2))
    assert set(table.label[table.measure.str.endswith("accuracy")]) == {"context"}
    assert ((table.measure == "decoding_accuracy").sum(), (table.measure == "chance_accuracy").sum()) == (1, 1)
    row = _row(table, "runs_consistency", "single", "B")
    assert row["mean"] == pytest.approx(0.91) and row["n"] == 3 and math.isnan(row["sd"])
    assert (table.measure == "runs_consistency").sum() == 2
    # Without runs there are no runs rows.
    assert "runs_consistency" not in set(summary_table(consistency, decoding).measure)


def test_summary_table_without_both_kinds_has_no_paired_test():
    consistency, decoding, _ = _tiny_tables()
    only_multi = consistency[consistency.kind == "multi"]
    table = summary_table(only_multi, decoding)
    assert "consistency_paired_test" not in set(table.measure)
    assert set(table.kind[table.measure == "consistency"]) == {"multi"}
    # One pair only: no test either (a t-test needs two pairs).
    one_pair = consistency[(consistency.source == "A")]
    assert "consistency_paired_test" not in set(summary_table(one_pair, decoding).measure)
