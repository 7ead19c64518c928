"""Held-out scores from embedding tables with train/test parts: decoding of every label column (with
its chance level), a new session's scores, consistency between runs. Synthetic embeddings whose
direction is a known function of the labels: a rat's position on the track, or an open field's
(x, y) and a discrete context."""

import numpy as np
import pandas as pd
import pytest

import cebra_core.analysis.evaluation as evaluation
from cebra_core.analysis.alignment import OrthogonalProcrustesAlignment
from cebra_core.analysis.binning import EmptyBinError
from cebra_core.analysis.decoding import decode
from cebra_core.analysis.tables import embedding_columns, embedding_frame
from cebra_core.analysis.evaluation import (
    DECODING_COLUMNS,
    decoding_table,
    new_session_table,
    restricted_consistency,
    runs_consistency,
)
from cebra_core.analysis.metrics import consistency_score, label_consistency
from cebra_core.analysis.splits import Split, label_coverage

T = 1000  # time bins per rat; the last 20 % are the test part
KNN = dict(n_neighbors=10, top_k=5)
RAT = ["position", "right", "left"]  # the rat track's label columns
CONTINUOUS = ["median_abs_error", "r2"]  # the decoding metrics of a continuous column
DISCRETE = ["accuracy", "balanced_accuracy"]


def trajectory(T, period, phase, half_test=False):
    """Position on a 1.6 m track running back and forth, and the labels (position, right, left).

    ``half_test``: during the last 20 % the rat stays on the first half of the track.
    """
    t = np.arange(T)
    pos = 0.8 + 0.8 * np.sin(2 * np.pi * t / period + phase)
    if half_test:
        test = Split(0).test_mask(T)
        pos[test] = 0.4 + 0.4 * np.sin(2 * np.pi * t[test] / period + phase)
    right = (np.gradient(pos) > 0).astype(np.float32)
    return pos, pd.DataFrame({"position": pos.astype(np.float32), "right": right, "left": 1 - right})


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


def by_pair(table, column="position"):
    """The decoding rows of one label column, indexed by (train, test, metric)."""
    return table[table.column == column].set_index(["train", "test", "metric"])


def pair_rows(table, a, b):
    """Every row (all label columns and metrics) of the pair a -> b."""
    return table[(table.train == a) & (table.test == b)].reset_index(drop=True)


MAE, R2 = "median_abs_error", "r2"


@pytest.fixture(scope="module")
def rats():
    """A, and B, C: the same position code rotated into other spaces, each with its own trajectory."""
    return {"A": rat("A", 0), "B": rat("B", 1, rotate=rotation(10)), "C": rat("C", 2, rotate=rotation(11))}


def test_decoding_table_within_and_across_aligned_rats(rats):
    table = decoding_table(rats, shared_space=False, min_coverage=0.8, **KNN)
    assert list(table.columns) == DECODING_COLUMNS
    assert len(table) == 9 * 3 * 2  # pairs x label columns x metrics
    assert set(zip(table.train, table.test)) == {(a, b) for a in "ABC" for b in "ABC"}
    # Long format: every label column of the rat track, each with the continuous metrics.
    for (a, b), rows in table.groupby(["train", "test"]):
        assert list(zip(rows.column, rows.metric)) == [(c, m) for c in RAT for m in CONTINUOUS]
    assert (table.n_train == 800).all() and (table.n_test == 200).all() and (table.k == 10).all()
    # Within and across rats (after the Procrustes rotation) the position is decoded to a few cm
    # (errors in metres, the label's unit); its chance level (shuffled training labels) is far off.
    position = by_pair(table)
    errors, r2 = position.xs(MAE, level="metric"), position.xs(R2, level="metric")
    assert (errors.value < 0.02).all(), table
    assert (r2.value > 0.99).all(), table
    assert (errors.chance > 0.2).all() and (r2.chance < 0.1).all(), table
    assert (table.test_coverage == 1.0).all() and not table.flagged.any()
    # Control: the same rotated rats taken as one shared space decode badly across rats.
    shared = by_pair(decoding_table(rats, shared_space=True, min_coverage=0.8, **KNN))
    for a in "ABC":
        assert shared.loc[(a, a, MAE), "value"] < 0.02
        for b in set("ABC") - {a}:
            assert shared.loc[(a, b, MAE), "value"] > 0.15, shared


def test_decoding_table_shared_space_does_not_rotate(rats, monkeypatch):
    fitted = []
    monkeypatch.setattr(evaluation, "OrthogonalProcrustesAlignment",
                        lambda **kw: fitted.append(kw) or OrthogonalProcrustesAlignment(**kw))
    shared = {"A": rats["A"], "B": rat("B", 1), "C": rat("C", 2)}  # one space: no rotation needed
    table = decoding_table(shared, shared_space=True, min_coverage=0.8, **KNN)
    assert fitted == []
    assert (by_pair(table).xs(MAE, level="metric").value < 0.04).all()
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
    """The decoding table indexed by (train, test, column, metric), and the alignments' log."""
    log = []
    monkeypatch.setattr(RecordingAlignment, "log", log)
    monkeypatch.setattr(evaluation, "OrthogonalProcrustesAlignment", RecordingAlignment)
    table = decoding_table(frames, shared_space=False, min_coverage=0.8, **KNN)
    return table.set_index(["train", "test", "column", "metric"]), log


def test_alignment_is_fitted_on_train_rows_only(rats, monkeypatch):
    clean, log = _recorded_decoding(rats, monkeypatch)
    pairs = [(a, b) for a in rats for b in rats if a != b]
    assert len(log) == len(pairs)
    for (a, b), fit in zip(pairs, log):
        train_a = rats[a][rats[a].part == "train"]
        train_b = rats[b][rats[b].part == "train"]
        np.testing.assert_array_equal(fit["ref_data"], train_a[["z0", "z1", "z2"]].to_numpy())
        np.testing.assert_array_equal(fit["data"], train_b[["z0", "z1", "z2"]].to_numpy())
        # The rat track aligns on all its label columns, as stored (position, right, left).
        np.testing.assert_array_equal(fit["ref_label"], train_a[RAT].to_numpy())
        np.testing.assert_array_equal(fit["label"], train_b[RAT].to_numpy())

    # B's test rows made garbage (random embeddings, shuffled positions): every alignment is the
    # same, only the scores on B's test rows change.
    corrupted = dict(rats, B=garbage(rats["B"], "test", seed=5, labels=True))
    dirty, dirty_log = _recorded_decoding(corrupted, monkeypatch)
    for before, after in zip(log, dirty_log):
        np.testing.assert_array_equal(before["rotation"], after["rotation"])
    for a in "ABC":
        assert dirty.loc[(a, "B", "position", MAE), "value"] > 0.2, dirty
        for b in "AC":
            pd.testing.assert_frame_equal(dirty.loc[(a, b)], clean.loc[(a, b)])


def test_decoder_never_sees_the_test_labels_of_the_training_rat(rats):
    clean_table = decoding_table(rats, shared_space=False, min_coverage=0.8, **KNN)
    # Rat A's test positions shuffled: decoders trained on A (and the alignments onto A) are unchanged,
    # so A -> B and A -> C keep their scores; only the scores on A's own test rows change.
    shuffled = dict(rats, A=rats["A"].copy())
    test = shuffled["A"].part == "test"
    shuffled["A"].loc[test, "position"] = np.random.default_rng(3).permutation(shuffled["A"].loc[test, "position"])
    dirty_table = decoding_table(shuffled, shared_space=False, min_coverage=0.8, **KNN)
    for b in "BC":
        pd.testing.assert_frame_equal(pair_rows(dirty_table, "A", b), pair_rows(clean_table, "A", b))
    clean, dirty = by_pair(clean_table), by_pair(dirty_table)
    for a in "ABC":
        assert dirty.loc[(a, "A", R2), "value"] < 0.2 < clean.loc[(a, "A", R2), "value"]


def test_decoding_table_flags_a_test_part_on_half_the_track(rats):
    frames = dict(rats, C=rat("C", 2, rotate=rotation(11), half_test=True))
    full = decoding_table(frames, shared_space=False, min_coverage=0.8, **KNN)
    for a in "ABC":
        rows = pair_rows(full, a, "C")  # every label column's rows carry the test part's coverage
        assert rows.test_coverage.to_numpy() == pytest.approx(0.5, abs=0.05)
        assert rows.flagged.all()
        for b in "AB":
            rows = pair_rows(full, a, b)
            assert (rows.test_coverage == 1.0).all() and not rows.flagged.any()
    low = decoding_table(frames, shared_space=False, min_coverage=0.4, **KNN)
    assert not low.flagged.any()


def test_coverage_is_relative_to_the_test_rats_own_session(rats):
    # D only ever runs on the first half of the track, and its test part covers all of that.
    d = rat("D", 3)
    d["position"] = (d["position"] / 2).astype(np.float32)
    table = decoding_table(dict(rats, D=d), shared_space=True, min_coverage=0.8, **KNN)
    for a in "ABCD":
        rows = pair_rows(table, a, "D")
        assert len(rows) == 6 and (rows.test_coverage == 1.0).all() and not rows.flagged.any()


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
    assert list(table.columns) == ["kind", "measure", "column", "source", "target", "value", "chance",
                                   "test_coverage", "flagged"]
    assert (table.target == "C").all()
    assert len(table) == 3 * (3 + 3 * 2)  # per kind: 2 consistency + mean, 3 label columns x 2 metrics
    # Consistency rows are on the label (position) and have no chance level.
    scores = table[table.measure.str.startswith("consistency")]
    assert (scores.column == "position").all() and scores.chance.isna().all()
    values = table[table.column == "position"].set_index(["kind", "measure", "source"])["value"]
    chance = table[table.column == "position"].set_index(["kind", "measure", "source"])["chance"]
    for kind in kinds:
        rows = table[table.kind == kind]
        assert list(zip(rows.measure, rows.column)) == [
            ("consistency", "position"), ("consistency", "position"), ("consistency_mean", "position"),
            *((m, c) for c in RAT for m in CONTINUOUS)]
        assert set(rows.source[rows.measure == "consistency"]) == {"A", "B"}
        assert (rows.source[rows.measure == "consistency_mean"] == "A+B").all()
        mean = values[(kind, "consistency_mean", "A+B")]
        assert mean == pytest.approx((values[(kind, "consistency", "A")] + values[(kind, "consistency", "B")]) / 2)
    # 'single' decodes with C's own train rows; the others with A and B pooled.
    decode = table[table.measure.isin(CONTINUOUS)]
    assert dict(zip(decode.kind, decode.source)) == {"random": "A+B", "single": "C", "multi": "A+B"}
    assert decode.chance.notna().all()
    assert values[("single", MAE, "C")] < 0.04 and values[("single", R2, "C")] > 0.97
    assert values[("multi", MAE, "A+B")] < 0.04 and values[("multi", R2, "A+B")] > 0.97
    assert values[("random", MAE, "A+B")] > 0.2 and values[("random", R2, "A+B")] < 0.3
    for kind, source in (("single", "C"), ("multi", "A+B")):  # chance: the decoder on shuffled labels
        assert chance[(kind, MAE, source)] > 0.2 and chance[(kind, R2, source)] < 0.1
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
    values = table[table.column == "position"].set_index(["kind", "measure"])["value"]
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


# ------------------------------------------------------------ any label: an open field with a context

FIELD = ["x", "y", "context"]  # two continuous columns (an open field's position) and a discrete one


def field(name, seed, *, rotate=None, code="both", test_classes=None, test_x_max=None, noise=0.02, T=1200):
    """The embedding table of an open-field session of a held-out fit: (x, y) on a Lissajous path
    over the unit square, a context 0, 1, 2 drawn at random for every block of 4 bins.

    ``code`` says what the embedding carries: "both" points along (x + 1, y + 1, 3, 3 x
    one-hot(context)), so cosine neighbours share the place and the context; "place" along (x + 1,
    y + 1, 3) only (its mean per place is the same in every session, whatever the contexts there);
    "random" nothing. ``test_classes``: the contexts the test rows keep (the others become the first
    of them); ``test_x_max``: the test rows stay at x <= test_x_max."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    x = 0.5 + 0.5 * np.sin(t / (11 + seed))
    y = 0.5 + 0.5 * np.sin(t / (7 + seed) + 1)
    context = np.repeat(rng.integers(0, 3, T // 4 + 1), 4)[:T]
    test = Split(0).test_mask(T)
    if test_classes is not None:
        context[test & ~np.isin(context, test_classes)] = test_classes[0]
    if test_x_max is not None:
        x[test] = x[test] * test_x_max
    z = {"both": lambda: np.c_[x + 1, y + 1, np.full(T, 3.0), 3 * np.eye(3)[context]],
         "place": lambda: np.c_[x + 1, y + 1, np.full(T, 3.0)],
         "random": lambda: rng.normal(size=(T, 6))}[code]()
    z = z + rng.normal(0, noise, z.shape)
    if rotate is not None:
        z = z @ rotate
    labels = pd.DataFrame({"x": x.astype(np.float32), "y": y.astype(np.float32), "context": context.astype(np.int64)})
    return embedding_frame(name, z, labels, part=Split(0).parts(T))


@pytest.fixture(scope="module")
def fields():
    return {"A": field("A", 0), "B": field("B", 1), "C": field("C", 2)}


def test_decoding_table_decodes_every_column_of_a_mixed_label_set(fields):
    table = decoding_table(fields, shared_space=True, min_coverage=0.8, coverage_label=("x", "y"), **KNN)
    assert list(table.columns) == DECODING_COLUMNS
    assert len(table) == 9 * (2 * 2 + 2)
    for (a, b), rows in table.groupby(["train", "test"]):
        # each column with its kind's metrics: x and y regressed, the context classified
        assert list(zip(rows.column, rows.metric)) == [("x", MAE), ("x", R2), ("y", MAE), ("y", R2),
                                                       ("context", "accuracy"), ("context", "balanced_accuracy")]
        # the numbers are decode()'s: decoder on a's train rows, scored on b's test rows, with chance
        train, test = fields[a][fields[a].part == "train"], fields[b][fields[b].part == "test"]
        z = embedding_columns(train)
        for column, kind in (("x", "continuous"), ("y", "continuous"), ("context", "discrete")):
            want = decode(train[z], train[column], test[z], test[column], kind, n_neighbors=10)
            got = rows[rows.column == column]
            assert dict(zip(got.metric, zip(got.value, got.chance))) == want
    values = table.set_index(["train", "test", "column", "metric"])
    for a in "ABC":
        for b in "ABC":
            for column in ("x", "y"):  # to a few % of the arena; shuffled labels: about a third of it
                assert values.loc[(a, b, column, MAE), "value"] < 0.08 < 0.25 < values.loc[(a, b, column, MAE), "chance"]
                assert values.loc[(a, b, column, R2), "value"] > 0.9 > 0.1 > values.loc[(a, b, column, R2), "chance"]
            for metric in DISCRETE:  # the context always, far above its chance level
                row = values.loc[(a, b, "context", metric)]
                assert row.value == 1.0 and row.chance < 0.5, row
    means = table.groupby(["column", "metric"]).chance.mean()
    for metric in DISCRETE:  # over the 9 pairs, chance is 1 / 3 (3 contexts, drawn evenly)
        assert means[("context", metric)] == pytest.approx(1 / 3, abs=0.05)
    # (x, y) as the coverage label: the test parts cover the arena's grid
    assert (table.test_coverage == 1.0).all() and not table.flagged.any()


def test_decoding_table_aligns_single_session_fits_on_a_mixed_label_set(fields):
    """Rotated single-session fits: the alignment matches rows on (x, y) within a context, and the
    decoders transfer across sessions; taken as one space they do not."""
    rotated = {"A": fields["A"], "B": field("B", 1, rotate=rotation(20, 6)), "C": field("C", 2, rotate=rotation(21, 6))}
    aligned = decoding_table(rotated, shared_space=False, min_coverage=0.8, coverage_label=("x", "y"), **KNN)
    unaligned = decoding_table(rotated, shared_space=True, min_coverage=0.8, coverage_label=("x", "y"), **KNN)
    aligned, unaligned = (t.set_index(["train", "test", "column", "metric"]).value for t in (aligned, unaligned))
    for a in "ABC":
        for b in set("ABC") - {a}:
            assert aligned[(a, b, "context", "accuracy")] == 1.0, aligned
            assert aligned[(a, b, "x", MAE)] < 0.08 and aligned[(a, b, "y", MAE)] < 0.08, aligned
            assert unaligned[(a, b, "context", "accuracy")] < 0.6, unaligned
            assert unaligned[(a, b, "x", MAE)] > 0.2 and unaligned[(a, b, "y", MAE)] > 0.2, unaligned


def test_coverage_of_a_discrete_or_2d_label():
    frames = {"A": field("A", 0), "B": field("B", 1, test_classes=[0, 1]), "C": field("C", 2, test_x_max=0.5)}
    by_class = decoding_table(frames, shared_space=True, min_coverage=0.8, coverage_label=("context",), **KNN)
    coverage = by_class.groupby("test").test_coverage.agg(["min", "max"])
    assert coverage.loc["B"].tolist() == pytest.approx([2 / 3, 2 / 3])  # the test rows visit 2 of 3 contexts
    assert by_class[by_class.test == "B"].flagged.all() and not by_class[by_class.test != "B"].flagged.any()
    by_place = decoding_table(frames, shared_space=True, min_coverage=0.8, coverage_label=("x", "y"), **KNN)
    c = frames["C"]
    want = label_coverage(c.loc[c.part == "test", ["x", "y"]].to_numpy(), c[["x", "y"]].to_numpy())
    assert want == pytest.approx(0.5, abs=0.1)
    assert (by_place[by_place.test == "C"].test_coverage == want).all()
    assert by_place[by_place.test == "C"].flagged.all() and not by_place[by_place.test != "C"].flagged.any()


def place_fields(code="place"):
    """Sessions A, B, C whose embeddings carry the place only (rotated into their own spaces)."""
    return {"A": field("A", 0, code=code), "B": field("B", 1, code=code, rotate=rotation(20, 3 if code == "place" else 6)),
            "C": field("C", 2, code=code, rotate=rotation(21, 3 if code == "place" else 6))}


def test_coverage_of_a_discrete_label_counts_its_classes():
    """The fraction of the session's classes that the test rows show, however the classes are numbered
    (40 reach targets, the test rows miss every fourth: 0.75; bins over the class numbers would say 1)."""
    session = pd.DataFrame({"target": np.repeat(np.arange(40, dtype=np.int64), 5)})
    test = session[session.target % 4 != 0]
    assert evaluation.coverage(test, session, ["target"]) == 0.75
    assert evaluation.coverage(session, session, ["target"]) == 1.0
    as_float = session.astype(np.float32)  # the same numbers as a continuous label: bins of the range
    assert evaluation.coverage(as_float[session.target % 4 != 0], as_float, ["target"]) == 1.0


def test_restricted_consistency_on_a_2d_label():
    places = place_fields()
    scores = restricted_consistency("C", places, bins=36, label=("x", "y"))
    assert set(scores) == {"A", "B"}
    # the same place code: high (each cell's mean depends a little on where in the cell a session was)
    assert all(s > 0.9 for s in scores.values()), scores
    # random embeddings: low on the grid (6 regressors on 25 cells)
    randoms = restricted_consistency("C", place_fields("random"), bins=36, label=("x", "y"))
    assert all(s < 0.4 for s in randoms.values()), randoms
    # by hand: C's test rows against the others' rows (all of them) on the grid, both directions averaged
    test = places["C"][places["C"].part == "test"]
    parts = [test, places["A"], places["B"]]
    raw, pairs, _ = label_consistency([p[embedding_columns(p)].to_numpy(np.float64) for p in parts],
                                      [p[["x", "y"]].to_numpy(np.float64) for p in parts], ["C", "A", "B"],
                                      "continuous", 36, columns=("x", "y"))
    by = {tuple(p): s for p, s in zip(pairs.tolist(), raw)}
    for other in "AB":
        assert scores[other] == pytest.approx((by[("C", other)] + by[(other, "C")]) / 2, rel=1e-12)
    # C's test rows confined to a strip x <= 0.2: the grid cells (0.2 wide) they miss, even within
    # 2 cells, are an error naming a cell and the sessions
    strip = dict(places, C=field("C", 2, code="place", test_x_max=0.2, rotate=rotation(21, 3)))
    # (x 0.6-1 on 5 rows of y: 10 cells, the first named)
    with pytest.raises(EmptyBinError, match=r"grid cell x 0.6-0.8, y \S+-0.2 has no samples in \['C'\] but has in "
                                            r"\['A', 'B'\] \(10 such bins\)"):
        restricted_consistency("C", strip, bins=36, label=("x", "y"))


def test_restricted_consistency_on_a_discrete_label(fields):
    scores = restricted_consistency("C", fields, bins=36, label=("context",))
    test = fields["C"][fields["C"].part == "test"]
    parts = [test, fields["A"], fields["B"]]
    raw, pairs, _ = label_consistency([p[embedding_columns(p)].to_numpy(np.float64) for p in parts],
                                      [p["context"].to_numpy() for p in parts], ["C", "A", "B"], "discrete")
    by = {tuple(p): s for p, s in zip(pairs.tolist(), raw)}
    assert set(scores) == {"A", "B"}
    for other in "AB":
        assert scores[other] == pytest.approx((by[("C", other)] + by[(other, "C")]) / 2, rel=1e-12)
        assert scores[other] > 0.97


def test_new_session_table_on_a_mixed_label_set():
    """Consistency on (x, y), decoding of x, y and the context: the place code decodes the place but
    not the context (chance), a random code neither."""
    kinds = {"single": place_fields(), "random": place_fields("random")}
    table = new_session_table(kinds, "C", bins=36, n_neighbors=10, min_coverage=0.8, label=("x", "y"))
    assert len(table) == 2 * (3 + 2 * 2 + 2)
    for kind in kinds:
        rows = table[table.kind == kind]
        assert list(zip(rows.measure, rows.column)) == [
            ("consistency", "x+y"), ("consistency", "x+y"), ("consistency_mean", "x+y"),
            (MAE, "x"), (R2, "x"), (MAE, "y"), (R2, "y"), ("accuracy", "context"), ("balanced_accuracy", "context")]
    values = table.set_index(["kind", "measure", "column"])
    assert values.loc[("single", "consistency_mean", "x+y"), "value"] > 0.9
    assert values.loc[("random", "consistency_mean", "x+y"), "value"] < 0.4
    for column in ("x", "y"):
        assert values.loc[("single", MAE, column), "value"] < 0.08 < 0.25 < values.loc[("single", MAE, column), "chance"]
        assert values.loc[("random", MAE, column), "value"] > 0.25
    assert values.loc[("single", "accuracy", "context"), "value"] < 0.6  # the place code does not carry it
    assert (table.test_coverage == 1.0).all() and not table.flagged.any()  # coverage of (x, y)
    assert table.loc[table.measure.str.startswith("consistency"), "chance"].isna().all()
    assert table.loc[~table.measure.str.startswith("consistency"), "chance"].notna().all()
