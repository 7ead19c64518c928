"""Held-out scores from embedding tables with train/test parts: decoding, a new session's scores,
consistency between runs. Synthetic embeddings whose direction is a known function of position."""

import numpy as np
import pandas as pd
import pytest

import cebra_core.analysis.evaluation as evaluation
from cebra_core.analysis.alignment import OrthogonalProcrustesAlignment
from cebra_core.analysis.tables import embedding_frame
from cebra_core.analysis.evaluation import (
    DECODING_COLUMNS,
    decoding_table,
    new_session_table,
    restricted_consistency,
    runs_consistency,
)
from cebra_core.analysis.metrics import consistency_score
from cebra_core.analysis.splits import Split

T = 1000  # time bins per rat; the last 20 % are the test part
KNN = dict(n_neighbors=10, top_k=5)


def trajectory(T, period, phase, half_test=False):
    """Position on a 1.6 m track running back and forth, and direction labels (T, 3).

    ``half_test``: during the last 20 % the rat stays on the first half of the track.
    """
    t = np.arange(T)
    pos = 0.8 + 0.8 * np.sin(2 * np.pi * t / period + phase)
    if half_test:
        test = Split(0).test_mask(T)
        pos[test] = 0.4 + 0.4 * np.sin(2 * np.pi * t[test] / period + phase)
    right = (np.gradient(pos) > 0).astype(float)
    return pos, np.c_[pos, right, 1 - right]


def curve(pos):
    """A unit vector per position, distinct in direction along the track (cosine kNN can decode it)."""
    theta = pos / 1.6 * 0.8 * np.pi
    z = np.c_[np.cos(theta), np.sin(theta), pos - 0.8]
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def rotation(seed, d=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def rat(name, seed, z_fn=curve, rotate=None, half_test=False, noise=0.02):
    """The embedding table of one rat of a held-out fit (part column 'train' / 'test')."""
    rng = np.random.default_rng(seed)
    pos, labels = trajectory(T, period=140 + 20 * seed, phase=seed, half_test=half_test)
    z = z_fn(pos) + rng.normal(0, noise, (T, 3))
    if rotate is not None:
        z = z @ rotate
    return embedding_frame(name, z, labels, part=Split(0).parts(T))


def garbage(frame, part, seed, labels=False):
    """A copy of ``frame`` whose ``part`` rows have random embeddings (and, with ``labels``, shuffled positions)."""
    out = frame.copy()
    rows = out["part"] == part
    rng = np.random.default_rng(seed)
    for c in ("z0", "z1", "z2"):
        out.loc[rows, c] = rng.normal(size=rows.sum()).astype(np.float32)
    if labels:
        out.loc[rows, "position"] = rng.permutation(out.loc[rows, "position"].to_numpy())
    return out


def by_pair(table):
    return table.set_index(["train", "test"])


@pytest.fixture(scope="module")
def rats():
    """A, and B, C: the same position code rotated into other spaces, each with its own trajectory."""
    return {"A": rat("A", 0), "B": rat("B", 1, rotate=rotation(10)), "C": rat("C", 2, rotate=rotation(11))}


def test_decoding_table_within_and_across_aligned_rats(rats):
    table = decoding_table(rats, shared_space=False, min_coverage=0.8, **KNN)
    assert list(table.columns) == DECODING_COLUMNS
    assert len(table) == 9
    assert set(zip(table.train, table.test)) == {(a, b) for a in "ABC" for b in "ABC"}
    assert (table.n_train == 800).all() and (table.n_test == 200).all()
    # Within and across rats (after the Procrustes rotation) the position is decoded to a few cm.
    assert (table.median_error_cm < 2).all(), table
    assert (table.r2 > 0.99).all(), table
    assert (table.test_coverage == 1.0).all() and not table.flagged.any()
    # Control: the same rotated rats taken as one shared space decode badly across rats.
    shared = by_pair(decoding_table(rats, shared_space=True, min_coverage=0.8, **KNN))
    for a in "ABC":
        assert shared.loc[(a, a), "median_error_cm"] < 2
        for b in set("ABC") - {a}:
            assert shared.loc[(a, b), "median_error_cm"] > 15, shared


def test_decoding_table_shared_space_does_not_rotate(rats, monkeypatch):
    fitted = []
    monkeypatch.setattr(evaluation, "OrthogonalProcrustesAlignment",
                        lambda **kw: fitted.append(kw) or OrthogonalProcrustesAlignment(**kw))
    shared = {"A": rats["A"], "B": rat("B", 1), "C": rat("C", 2)}  # one space: no rotation needed
    table = decoding_table(shared, shared_space=True, min_coverage=0.8, **KNN)
    assert fitted == []
    assert (table.median_error_cm < 4).all()
    decoding_table(shared, shared_space=False, min_coverage=0.8, n_neighbors=10, top_k=7)
    assert fitted == [{"top_k": 7}] * 6  # one alignment per ordered pair of different rats


class RecordingAlignment(OrthogonalProcrustesAlignment):
    """Records what each alignment was fitted on and the rotation it found."""

    log: list = []

    def fit(self, ref_data, data, ref_label=None, label=None):
        super().fit(ref_data, data, ref_label, label)
        self.log.append(dict(ref_data=np.array(ref_data), data=np.array(data), ref_label=np.array(ref_label),
                             label=np.array(label), rotation=self.rotation_.copy()))
        return self


def _recorded_decoding(frames, monkeypatch):
    log = []
    monkeypatch.setattr(RecordingAlignment, "log", log)
    monkeypatch.setattr(evaluation, "OrthogonalProcrustesAlignment", RecordingAlignment)
    return by_pair(decoding_table(frames, shared_space=False, min_coverage=0.8, **KNN)), log


def test_alignment_is_fitted_on_train_rows_only(rats, monkeypatch):
    clean, log = _recorded_decoding(rats, monkeypatch)
    pairs = [(a, b) for a in rats for b in rats if a != b]
    assert len(log) == len(pairs)
    for (a, b), fit in zip(pairs, log):
        train_a = rats[a][rats[a].part == "train"]
        train_b = rats[b][rats[b].part == "train"]
        np.testing.assert_array_equal(fit["ref_data"], train_a[["z0", "z1", "z2"]].to_numpy())
        np.testing.assert_array_equal(fit["data"], train_b[["z0", "z1", "z2"]].to_numpy())
        np.testing.assert_array_equal(fit["ref_label"][:, 0], train_a.position.to_numpy())
        np.testing.assert_array_equal(fit["label"][:, 0], train_b.position.to_numpy())

    # B's test rows made garbage (random embeddings, shuffled positions): every alignment is the
    # same, only the scores on B's test rows change.
    corrupted = dict(rats, B=garbage(rats["B"], "test", seed=5, labels=True))
    dirty, dirty_log = _recorded_decoding(corrupted, monkeypatch)
    for before, after in zip(log, dirty_log):
        np.testing.assert_array_equal(before["rotation"], after["rotation"])
    for a in "ABC":
        assert dirty.loc[(a, "B"), "median_error_cm"] > 20, dirty
        for b in "AC":
            pd.testing.assert_series_equal(dirty.loc[(a, b)], clean.loc[(a, b)])


def test_decoder_never_sees_the_test_labels_of_the_training_rat(rats):
    clean = by_pair(decoding_table(rats, shared_space=False, min_coverage=0.8, **KNN))
    # Rat A's test positions shuffled: decoders trained on A (and the alignments onto A) are unchanged,
    # so A -> B and A -> C keep their scores; only the scores on A's own test rows change.
    shuffled = dict(rats, A=rats["A"].copy())
    test = shuffled["A"].part == "test"
    shuffled["A"].loc[test, "position"] = np.random.default_rng(3).permutation(shuffled["A"].loc[test, "position"])
    dirty = by_pair(decoding_table(shuffled, shared_space=False, min_coverage=0.8, **KNN))
    for b in "BC":
        pd.testing.assert_series_equal(dirty.loc[("A", b)], clean.loc[("A", b)])
    for a in "ABC":
        assert dirty.loc[(a, "A"), "r2"] < 0.2 < clean.loc[(a, "A"), "r2"]


def test_decoding_table_flags_a_test_part_on_half_the_track(rats):
    frames = dict(rats, C=rat("C", 2, rotate=rotation(11), half_test=True))
    table = by_pair(decoding_table(frames, shared_space=False, min_coverage=0.8, **KNN))
    for a in "ABC":
        assert table.loc[(a, "C"), "test_coverage"] == pytest.approx(0.5, abs=0.05)
        assert table.loc[(a, "C"), "flagged"]
        for b in "AB":
            assert table.loc[(a, b), "test_coverage"] == 1.0 and not table.loc[(a, b), "flagged"]
    low = by_pair(decoding_table(frames, shared_space=False, min_coverage=0.4, **KNN))
    assert not low.flagged.any()


def test_coverage_is_relative_to_the_test_rats_own_session(rats):
    # D only ever runs on the first half of the track, and its test part covers all of that.
    d = rat("D", 3)
    d["position"] = (d["position"] / 2).astype(np.float32)
    table = by_pair(decoding_table(dict(rats, D=d), shared_space=True, min_coverage=0.8, **KNN))
    for a in "ABCD":
        assert table.loc[(a, "D"), "test_coverage"] == 1.0 and not table.loc[(a, "D"), "flagged"]


def test_decoding_table_needs_train_and_test_rows(rats):
    whole = dict(rats, B=rats["B"].assign(part="all"))
    with pytest.raises(ValueError, match="session 'B'.*no 'train' rows"):
        decoding_table(whole, shared_space=True, min_coverage=0.8, **KNN)


def random_rat(name, seed, **kw):
    return rat(name, seed, z_fn=lambda pos: np.random.default_rng(100 + seed).normal(size=(len(pos), 3)), **kw)


def test_restricted_consistency_identical_code_is_high_random_is_low(rats):
    scores = restricted_consistency("C", rats, bins=40)
    assert set(scores) == {"A", "B"}
    assert all(s > 0.97 for s in scores.values()), scores
    randoms = {n: random_rat(n, s, noise=0.0) for n, s in (("A", 0), ("B", 1), ("C", 2))}
    scores = restricted_consistency("C", randoms, bins=40)
    assert all(s < 0.4 for s in scores.values()), scores


def test_restricted_consistency_restricts_to_the_test_range_and_averages_both_directions():
    frames = {"A": rat("A", 0, noise=0.3), "B": rat("B", 1, noise=0.3), "C": rat("C", 2, half_test=True, noise=0.3)}
    scores = restricted_consistency("C", frames, bins=40)
    # By hand: C's test rows span about half the track, so about 20 bins; the others restricted to that range.
    test = frames["C"][frames["C"].part == "test"]
    lo, hi = test.position.min(), test.position.max()
    n_bins = int(round(40 * (hi - lo) / (1.6 - 0.0)))
    assert 18 <= n_bins <= 21
    parts = [test] + [f[(f.position >= lo) & (f.position <= hi)] for f in (frames["A"], frames["B"])]
    raw, pairs, _ = consistency_score([p[["z0", "z1", "z2"]].to_numpy(np.float64) for p in parts],
                                      labels=[p.position.to_numpy(np.float64) for p in parts],
                                      dataset_ids=["C", "A", "B"], num_discretization_bins=n_bins)
    by = {tuple(p): s for p, s in zip(pairs.tolist(), raw)}
    for other in "AB":
        assert scores[other] == pytest.approx((by[("C", other)] + by[(other, "C")]) / 2, rel=1e-9)
        assert by[("C", other)] != pytest.approx(by[(other, "C")], rel=1e-6)  # directions differ
    # Without the restriction C's test rows would not cover the track: the binning fails.
    with pytest.raises(ValueError, match="empty"):
        consistency_score([p[["z0", "z1", "z2"]].to_numpy() for p in (test, frames["A"])],
                          labels=[test.position.to_numpy(), frames["A"].position.to_numpy()],
                          num_discretization_bins=40)


@pytest.fixture(scope="module")
def kinds():
    """Held-out rat C with trained rats A, B, for three kinds of embedding.

    - random: random embeddings;
    - single: each rat in its own (rotated) space, so only C's own decoder works on C;
    - multi: one shared space, but C's train rows are garbage, so only a decoder pooled over
      A and B works on C.
    """
    return {
        "random": {n: random_rat(n, s) for n, s in (("A", 0), ("B", 1), ("C", 2))},
        "single": {"A": rat("A", 0), "B": rat("B", 1, rotate=rotation(10)), "C": rat("C", 2, rotate=rotation(11))},
        "multi": {"A": rat("A", 0), "B": rat("B", 1), "C": garbage(rat("C", 2), "train", seed=9)},
    }


def test_new_session_table_columns_sources_and_scores(kinds):
    table = new_session_table(kinds, "C", bins=40, n_neighbors=10, min_coverage=0.8)
    assert list(table.columns) == ["kind", "measure", "source", "target", "value", "test_coverage", "flagged"]
    assert (table.target == "C").all()
    assert len(table) == 3 * 5
    values = table.set_index(["kind", "measure", "source"])["value"]
    for kind in kinds:
        rows = table[table.kind == kind]
        assert sorted(rows.measure) == sorted(["consistency", "consistency", "consistency_mean", "r2",
                                               "median_error_cm"])
        assert set(rows.source[rows.measure == "consistency"]) == {"A", "B"}
        assert (rows.source[rows.measure == "consistency_mean"] == "A+B").all()
        mean = values[(kind, "consistency_mean", "A+B")]
        assert mean == pytest.approx((values[(kind, "consistency", "A")] + values[(kind, "consistency", "B")]) / 2)
    # 'single' decodes with C's own train rows; the others with A and B pooled.
    decode = table[table.measure.isin(["r2", "median_error_cm"])]
    assert dict(zip(decode.kind, decode.source)) == {"random": "A+B", "single": "C", "multi": "A+B"}
    assert values[("single", "median_error_cm", "C")] < 4 and values[("single", "r2", "C")] > 0.97
    assert values[("multi", "median_error_cm", "A+B")] < 4 and values[("multi", "r2", "A+B")] > 0.97
    assert values[("random", "median_error_cm", "A+B")] > 20 and values[("random", "r2", "A+B")] < 0.3
    # Consistency is invariant to the rotations: high for single and multi, low for random.
    for kind in ("single", "multi"):
        assert values[(kind, "consistency_mean", "A+B")] > 0.97
    assert values[("random", "consistency_mean", "A+B")] < 0.4
    assert (table.test_coverage == 1.0).all() and not table.flagged.any()


def test_new_session_table_flags_a_half_track_test_part(kinds):
    half = {kind: dict(frames, C=rat("C", 2, half_test=True)) for kind, frames in kinds.items()}
    table = new_session_table(half, "C", bins=40, n_neighbors=10, min_coverage=0.8)
    assert table.test_coverage.to_numpy() == pytest.approx(0.5, abs=0.05)
    assert table.flagged.all()
    values = table.set_index(["kind", "measure"])["value"]
    assert values[("multi", "consistency_mean")] > 0.97  # compared only where C's test rows have data


def _whole(name, seed, z_fn=curve, rotate=None):
    frame = rat(name, seed, z_fn=z_fn, rotate=rotate)
    return frame.assign(part="all")


def test_runs_consistency():
    a, b = _whole("A", 0), _whole("B", 1)
    multi_seed0 = pd.concat([a, b], ignore_index=True)
    # One run: nothing to compare.
    assert runs_consistency({"multi": [multi_seed0]}, ["A", "B"]) is None
    # Identical runs -> 1; a rotated run is linearly identical -> 1; independent random runs -> low.
    rotated = pd.concat([_whole("A", 0, rotate=rotation(3)), _whole("B", 1, rotate=rotation(4))], ignore_index=True)
    random = pd.concat([_whole("A", 0, z_fn=lambda p: np.random.default_rng(7).normal(size=(len(p), 3))),
                        _whole("B", 1, z_fn=lambda p: np.random.default_rng(8).normal(size=(len(p), 3)))],
                       ignore_index=True)
    single = [a, b, a.copy(), b.copy(), a.copy()]  # per-session tables; A has three runs
    table = runs_consistency({"multi": [multi_seed0, multi_seed0.copy()], "rotated": [multi_seed0, rotated],
                              "random": [multi_seed0, random], "single": single}, ["A", "B"])
    assert list(table.columns) == ["kind", "session", "score", "n_runs"]
    scores = table.set_index(["kind", "session"])
    assert len(table) == 8
    for session in "AB":
        assert scores.loc[("multi", session), "score"] == pytest.approx(1.0, abs=1e-9)
        assert scores.loc[("rotated", session), "score"] == pytest.approx(1.0, abs=1e-9)
        assert scores.loc[("random", session), "score"] < 0.1
        assert scores.loc[("single", session), "score"] == pytest.approx(1.0, abs=1e-9)
    assert scores.loc[("single", "A"), "n_runs"] == 3 and scores.loc[("single", "B"), "n_runs"] == 2
    assert scores.loc[("multi", "A"), "n_runs"] == 2
