"""Contiguous train/test splits, runs of a mask, test-part coverage and part-by-part transforms."""

import numpy as np
import pytest

from cebra_core.analysis.splits import Split, contiguous_runs, label_coverage, transform_parts


def test_whole_session_split_has_no_test_rows_and_all_parts():
    split = Split(None)
    assert not split.test_mask(10).any()
    assert split.test_mask(10).shape == (10,)
    assert list(split.parts(4)) == ["all"] * 4


def test_one_fold_tests_the_last_fraction():
    mask = Split(0, 1, 0.2).test_mask(10)
    np.testing.assert_array_equal(mask, [False] * 8 + [True] * 2)
    assert Split(0, 1, 0.2).test_mask(9).sum() == 2  # 1.8 test rows round to 2
    mask = Split(0, 1, 0.25).test_mask(1000)
    assert mask.sum() == 250 and mask[750:].all() and not mask[:750].any()
    # The default is CEBRA's 20 % hold-out.
    assert Split(0).test_mask(100).sum() == 20 and Split(0).test_mask(100)[80:].all()


def test_k_folds_are_contiguous_blocks_that_test_every_sample_once():
    n, k = 10, 3
    masks = [Split(f, k).test_mask(n) for f in range(k)]
    # edges round(linspace(0, 10, 4)) = 0, 3, 7, 10
    expected = [np.arange(n) < 3, (np.arange(n) >= 3) & (np.arange(n) < 7), np.arange(n) >= 7]
    for mask, want in zip(masks, expected):
        np.testing.assert_array_equal(mask, want)
    counts = np.sum(masks, axis=0)
    np.testing.assert_array_equal(counts, np.ones(n))
    # Larger session, 5 folds: each block contiguous, sizes n/k, union is everything exactly once.
    n, k = 1003, 5
    masks = [Split(f, k, test_fraction=0.9).test_mask(n) for f in range(k)]  # fraction unused with k > 1
    np.testing.assert_array_equal(np.sum(masks, axis=0), np.ones(n))
    for f, mask in enumerate(masks):
        runs = contiguous_runs(mask)
        assert len(runs) == 1
        assert abs((runs[0].stop - runs[0].start) - n / k) <= 1
        if f:
            assert runs[0].start == contiguous_runs(masks[f - 1])[0].stop  # blocks in time order


def test_parts_name_train_and_test_rows():
    parts = Split(1, 3).parts(9)
    assert parts.dtype == object
    assert list(parts) == ["train"] * 3 + ["test"] * 3 + ["train"] * 3
    assert list(Split(0, 1, 0.5).parts(4)) == ["train", "train", "test", "test"]


@pytest.mark.parametrize("fold, folds", [(1, 1), (3, 3), (-1, 3), (5, 2)])
def test_a_fold_that_does_not_exist_is_an_error(fold, folds):
    with pytest.raises(ValueError, match=f"fold {fold} does not exist with {folds} fold"):
        Split(fold, folds)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_a_test_fraction_outside_0_1_is_an_error(fraction):
    with pytest.raises(ValueError, match="test_fraction must be in"):
        Split(0, 1, fraction)
    with pytest.raises(ValueError, match="test_fraction must be in"):
        Split(None, 1, fraction)


def test_a_session_too_short_for_the_split_is_an_error():
    with pytest.raises(ValueError, match="empty train or test part of 2 time bins"):
        Split(0, 1, 0.2).test_mask(2)  # round(0.4) = 0 test rows
    with pytest.raises(ValueError, match="empty train or test part of 1 time bins"):
        Split(0, 1, 0.9).test_mask(1)  # every row is a test row
    with pytest.raises(ValueError, match="fold 1 of 3"):
        Split(1, 3).test_mask(2)  # edges 0, 1, 1, 2: fold 1 is empty
    with pytest.raises(ValueError, match="empty train or test"):
        Split(0, 3).parts(1)
    # ... but the whole-session split of a tiny session is fine.
    assert list(Split(None).parts(1)) == ["all"]


def test_contiguous_runs():
    assert contiguous_runs([0, 1, 1, 0, 1]) == [slice(1, 3), slice(4, 5)]
    assert contiguous_runs([1, 1, 0, 0, 1, 1, 1]) == [slice(0, 2), slice(4, 7)]
    assert contiguous_runs(np.ones(4, bool)) == [slice(0, 4)]
    assert contiguous_runs(np.zeros(4, bool)) == []
    assert contiguous_runs([]) == []
    runs = contiguous_runs([True, False, True])
    assert all(type(r.start) is int and type(r.stop) is int for r in runs)


def test_label_coverage_of_half_the_track_whole_track_and_constant_position():
    session = np.linspace(0.0, 1.6, 1000)
    assert label_coverage(session, session) == 1.0
    assert label_coverage(session[session < 0.8], session) == pytest.approx(0.5)
    assert label_coverage(session[session < 0.4], session) == pytest.approx(0.25)
    # A shuffled test part covering everything is still the whole track.
    rng = np.random.default_rng(0)
    assert label_coverage(rng.permutation(session)[:500], session) == 1.0
    # Constant position: nothing to cover, so full coverage.
    assert label_coverage(np.full(5, 0.3), np.full(20, 0.3)) == 1.0


def test_label_coverage_counts_only_bins_the_session_visits():
    # Session visits bins 0, 5 and 19 of 20 (8 cm bins over [0, 1.6]); the test part only bin 0.
    session = np.array([0.0, 0.41, 1.6, 0.0, 0.41])
    assert label_coverage([0.0], session) == pytest.approx(1 / 3)
    assert label_coverage([0.0, 1.6], session) == pytest.approx(2 / 3)
    # Fewer bins: with 2 bins a test part on [0, 0.4] covers half of them.
    assert label_coverage(np.linspace(0, 0.4, 10), np.linspace(0, 1.6, 100), bins=2) == pytest.approx(0.5)


def _runs_transform(calls):
    """Returns [the input column, position within the call, a constant 7]: the second column
    restarts at 1 at every call, so it shows where each call's run began."""
    def transform(x):
        calls.append(len(x))
        return np.c_[x[:, 0], np.cumsum(np.ones(len(x))), np.full(len(x), 7.0)]
    return transform


def test_transform_parts_transforms_each_run_separately_in_time_order():
    neural = np.arange(10, dtype=float)[:, None]
    calls = []
    z, parts = transform_parts(_runs_transform(calls), neural, Split(1, 3))
    # Fold 1 of 3 on 10 bins: train [0, 3) and [7, 10), test [3, 7).
    assert sorted(calls) == [3, 3, 4] and len(calls) == 3
    np.testing.assert_array_equal(z[:, 0], np.arange(10))  # rows back in time order
    np.testing.assert_array_equal(z[:, 1], [1, 2, 3, 1, 2, 3, 4, 1, 2, 3])  # no run crosses a boundary
    np.testing.assert_array_equal(z[:, 2], 7.0)
    assert list(parts) == ["train"] * 3 + ["test"] * 4 + ["train"] * 3


def test_transform_parts_last_fraction_and_whole_session():
    neural = np.arange(10, dtype=float)[:, None]
    calls = []
    z, parts = transform_parts(_runs_transform(calls), neural, Split(0, 1, 0.2))
    assert sorted(calls) == [2, 8]
    np.testing.assert_array_equal(z[:, 0], np.arange(10))
    np.testing.assert_array_equal(z[:, 1], [1, 2, 3, 4, 5, 6, 7, 8, 1, 2])
    assert list(parts) == ["train"] * 8 + ["test"] * 2

    calls = []
    z, parts = transform_parts(_runs_transform(calls), neural, Split(None))
    assert calls == [10]
    np.testing.assert_array_equal(z[:, 1], np.arange(1, 11))
    assert list(parts) == ["all"] * 10


def test_transform_parts_first_fold_and_output_dimension():
    # The transform may change the dimension (neural channels -> embedding dims).
    neural = np.random.default_rng(1).normal(size=(12, 5))
    z, parts = transform_parts(lambda x: np.cumsum(x[:, :2], axis=0), neural, Split(0, 3))
    assert z.shape == (12, 2)
    # Fold 0 of 3: test [0, 4), train [4, 12): the cumulative sum restarts at row 4.
    np.testing.assert_allclose(z[:4], np.cumsum(neural[:4, :2], axis=0))
    np.testing.assert_allclose(z[4:], np.cumsum(neural[4:, :2], axis=0))
    assert list(parts) == ["test"] * 4 + ["train"] * 8


def test_validation_part_is_the_end_of_the_train_rows():
    """A sweep's nested split: with one fold the validation part sits just before the test part;
    with k folds it is the last train rows in time; encoders train on what is left."""
    split = Split(0, 1, test_fraction=0.2, validation_fraction=0.25)
    assert list(split.parts(20)) == ["train"] * 12 + ["validation"] * 4 + ["test"] * 4
    np.testing.assert_array_equal(split.train_mask(20), np.arange(20) < 12)
    assert not (split.train_mask(20) & (split.validation_mask(20) | split.test_mask(20))).any()
    # 3 folds, fold 0 tests 0..2 of 10 (edges 0, 3, 7, 10): train rows 3..9, validation their last 2
    assert list(Split(0, 3, validation_fraction=0.25).parts(10)) == ["test"] * 3 + ["train"] * 5 + ["validation"] * 2
    # the last fold: validation right before the test block
    assert list(Split(2, 3, validation_fraction=0.25).parts(10)) == ["train"] * 5 + ["validation"] * 2 + ["test"] * 3
    # no validation part by default: the held-out evaluation's splits are unchanged
    assert not Split(0).validation_mask(10).any() and "validation" not in Split(0).parts(10)


def test_a_validation_part_needs_room_and_a_fold():
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        Split(0, validation_fraction=1.0)
    with pytest.raises(ValueError, match="needs a fold"):
        Split(None, validation_fraction=0.2)
    with pytest.raises(ValueError, match="empty train or validation part of the 4 non-test"):
        Split(0, 1, 0.2, validation_fraction=0.05).validation_mask(5)  # 0.2 rows round to 0


def test_transform_parts_embeds_the_validation_part_on_its_own():
    split = Split(0, 1, test_fraction=0.2, validation_fraction=0.25)
    calls = []
    z, parts = transform_parts(lambda rows: calls.append(rows.copy()) or rows * 2, np.arange(20.0)[:, None], split)
    assert [c[:, 0].tolist() for c in calls] == [list(range(16, 20)), list(range(12)), list(range(12, 16))]
    np.testing.assert_array_equal(z[:, 0], np.arange(20.0) * 2)  # back in time order
    assert list(parts) == ["train"] * 12 + ["validation"] * 4 + ["test"] * 4
