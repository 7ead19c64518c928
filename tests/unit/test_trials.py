"""The CEBRA paper's 3-fold trial split (cebra_core.analysis.trials), its place beside the contiguous split
(cebra_core.analysis.splits), and the decoder whose k is chosen on the validation trials."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cebra_core.analysis import decoding
from cebra_core.analysis.decoding import K_GRID, cross_decode, decode, knn_classify, validated_decode
from cebra_core.analysis.evaluation import decoding_table
from cebra_core.analysis.splits import PROTOCOLS, Split, contiguous_runs, fit_rows, make_split, session_parts, transform_runs
from cebra_core.analysis.trials import TrialSplit, trial_edges, trial_parts

REPO = Path(__file__).resolve().parents[2]
CEBRA_PART = {"train": "train", "validation": "valid", "test": "test"}


def session_labels(n_runs: int, seed: int = 0, start: int = 0) -> np.ndarray:
    """Labels (T, 3) [position, right, left] of runs of random length with alternating direction."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 40, n_runs)
    right = np.repeat((np.arange(n_runs) + start) % 2, lengths).astype(np.float32)
    position = rng.uniform(0, 1.6, len(right)).astype(np.float32)
    return np.stack([position, right, 1 - right], axis=1)


@pytest.fixture(scope="module")
def hippocampus():
    """CEBRA 0.6.1's cebra.datasets.hippocampus (imported once: it takes seconds)."""
    return pytest.importorskip("cebra.datasets.hippocampus", reason="CEBRA 0.6.1 is not installed here")


def cebra_split(hippocampus, labels: np.ndarray, split_no: int, part: str):
    """CEBRA 0.6.1's SingleRatTrialSplitDataset on these labels (its data loading skipped): the
    row numbers it keeps for ``part`` and its trial slices."""
    import torch

    dataset = object.__new__(hippocampus.SingleRatTrialSplitDataset)
    dataset.index = torch.from_numpy(labels)
    dataset.neural = torch.arange(len(labels), dtype=torch.float64)[:, None]  # row numbers
    dataset.split_no = split_no
    dataset._split(part)
    return dataset.neural[:, 0].numpy().astype(int), dataset.selected_indices


# Runs of the direction flag: 2 runs per trial. Odd counts end in half a trial; 19 trials leave
# blocks of 7, 6, 6 trials (inner folds of 3, 2, 2 and 2, 2, 2); start=1 begins running right.
@pytest.mark.parametrize("n_runs, start", [(36, 0), (37, 1), (38, 0), (62, 1), (81, 0)])
@pytest.mark.parametrize("split_no", [0, 1, 2])
def test_parts_are_cebras_trial_split(hippocampus, n_runs, start, split_no):
    labels = session_labels(n_runs, seed=n_runs, start=start)
    split = TrialSplit(split_no)
    parts = split.parts(labels)
    edges = split.edges(labels)
    for ours, theirs in CEBRA_PART.items():
        rows, slices = cebra_split(hippocampus, labels, split_no, theirs)
        np.testing.assert_array_equal(np.flatnonzero(parts == ours), rows)  # same rows, same order
        trials = np.flatnonzero(split.trial_parts(labels) == ours)
        assert [(s.start, s.stop) for s in slices] == [(edges[i], edges[i + 1]) for i in trials]
    _, every = cebra_split(hippocampus, labels, split_no, "all")
    assert [(s.start, s.stop) for s in every] == list(zip(edges[:-1], edges[1:]))


def test_trial_edges_sit_before_every_second_direction_change():
    # runs of 3 bins: right, left, right, left, right -> changes after bins 2, 5, 8, 11
    right = np.repeat([1, 0, 1, 0, 1], 3)
    labels = np.stack([np.zeros(15), right, 1 - right], axis=1)
    np.testing.assert_array_equal(trial_edges(labels), [0, 5, 11, 15])
    with pytest.raises(ValueError, match=r"running-direction flag in column 1; got shape \(15,\)"):
        trial_edges(labels[:, 0])


def test_each_block_holds_out_one_fold_first_half_test_second_half_validation():
    # 18 trials: blocks 0-5, 6-11, 12-17; folds of 2 trials in each block
    parts = {k: list(trial_parts(18, k)) for k in range(3)}
    block = {0: ["test", "validation", "train", "train", "train", "train"],
             1: ["train", "train", "test", "validation", "train", "train"],
             2: ["train", "train", "train", "train", "test", "validation"]}
    for k in range(3):
        assert parts[k] == block[k] * 3
    # Over the three split numbers every trial is tested or validated exactly once.
    held = np.sum([np.array(parts[k]) != "train" for k in range(3)], axis=0)
    np.testing.assert_array_equal(held, np.ones(18))


@pytest.mark.parametrize("n_trials, split_no, message", [
    (8, 0, "at least 9 trials"), (9, 0, "empty validation part"), (20, 3, "split number 3 does not exist")])
def test_a_session_too_short_for_the_trial_split_is_an_error(n_trials, split_no, message):
    with pytest.raises(ValueError, match=message):
        trial_parts(n_trials, split_no)


def test_trial_split_masks_partition_the_rows():
    labels = session_labels(50, seed=3)
    split = TrialSplit(2)
    masks = [split.train_mask(labels), split.validation_mask(labels), split.test_mask(labels)]
    np.testing.assert_array_equal(np.sum(masks, axis=0), np.ones(len(labels)))
    # Three test runs (one per block), from the beginning, the middle and the end of the session.
    runs = contiguous_runs(masks[2])
    assert len(runs) == 3
    thirds = [run.start * 3 // len(labels) for run in runs]
    assert thirds == [0, 1, 2]


def test_make_split_and_session_parts_for_both_protocols():
    labels = session_labels(40, seed=1)
    n = len(labels)
    contiguous = make_split("contiguous", fold=1, folds=3, test_fraction=0.2)
    assert contiguous == Split(1, 3, 0.2)
    np.testing.assert_array_equal(session_parts(contiguous, labels), Split(1, 3).parts(n))
    trials = make_split("trials", fold=1, folds=3, test_fraction=0.2, validation_fraction=0.2)
    assert trials == TrialSplit(1)
    np.testing.assert_array_equal(session_parts(trials, labels), TrialSplit(1).parts(labels))
    whole = make_split("trials", fold=None)
    assert list(np.unique(session_parts(whole, labels))) == ["all"]
    assert fit_rows(session_parts(whole, labels)).all()
    parts = session_parts(trials, labels)
    np.testing.assert_array_equal(fit_rows(parts), parts == "train")
    with pytest.raises(ValueError, match=r"protocol must be one of \['contiguous', 'trials'\], got 'blocks'"):
        make_split("blocks", fold=0)


def test_transform_runs_embeds_each_run_of_one_part_alone():
    labels = session_labels(40, seed=2)
    parts = TrialSplit(1).parts(labels)
    neural = np.arange(len(labels), dtype=np.float64)[:, None]
    calls = []

    def transform(rows):
        calls.append(rows[:, 0].astype(int))
        return np.stack([rows[:, 0], -rows[:, 0]], axis=1)

    z = transform_runs(transform, neural, parts)
    np.testing.assert_array_equal(z[:, 0], neural[:, 0])  # rows back in time order
    for rows in calls:
        assert np.all(np.diff(rows) == 1) and len(set(parts[rows])) == 1  # one contiguous run of one part
    assert len(calls) == len(contiguous_runs(parts == "train")) + len(contiguous_runs(parts == "validation")) \
        + len(contiguous_runs(parts == "test"))
    with pytest.raises(ValueError, match="3 part names for 40 rows"):
        transform_runs(transform, np.zeros((40, 1)), parts[:3])


def ring(position: np.ndarray) -> np.ndarray:
    """A unit-circle embedding of position (m): cosine neighbours are position neighbours."""
    angle = position / 1.6 * np.pi
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


def test_validated_decode_chooses_the_k_with_the_lowest_validation_error():
    rng = np.random.default_rng(0)
    train, validation, test = (np.sort(rng.uniform(0, 1.6, n)) for n in (2000, 300, 300))
    # Noisy train targets: averaging many neighbours wins, so the largest k is chosen.
    noisy = train + rng.normal(0, 0.3, len(train))
    chosen = validated_decode(ring(train), noisy, ring(validation), validation, ring(test), test)
    # validation: the primary metric of a continuous label (median absolute error) of every k
    expected = {k: cross_decode(ring(train), noisy, ring(validation), validation, n_neighbors=k).median_error
                for k in K_GRID}
    assert chosen.validation == pytest.approx(expected)
    assert chosen.k == min(expected, key=expected.get) == 25
    # test: every metric with its chance level, at the chosen k
    at_k = cross_decode(ring(train), noisy, ring(test), test, n_neighbors=chosen.k)
    assert list(chosen.test) == ["median_abs_error", "r2"]
    assert (chosen.test["median_abs_error"][0], chosen.test["r2"][0]) == (at_k.median_error, at_k.r2)
    assert chosen.test == decode(ring(train), noisy, ring(test), test, "continuous", n_neighbors=chosen.k)
    # Exact targets that repeat every 2 cm (25 neighbours span about 2 cm): the nearest one wins.
    def sawtooth(p):
        return np.mod(p, 0.02) * 50
    chosen = validated_decode(ring(train), sawtooth(train), ring(validation), sawtooth(validation),
                              ring(test), sawtooth(test), k_grid=(25, 1, 4))
    assert chosen.k == 1 and set(chosen.validation) == {1, 4, 25}
    assert chosen.validation[1] < chosen.validation[4] < chosen.validation[25]


def test_validated_decode_of_a_discrete_label_chooses_the_highest_validation_accuracy():
    rng = np.random.default_rng(2)
    train, validation, test = (rng.uniform(0, 1.6, n) for n in (2000, 300, 300))

    def zone(p):
        return (p // 0.4).astype(np.int64)  # 4 classes: quarters of the track

    # Noisy train classes (60 % relabelled at random): a vote over many neighbours wins.
    noisy = np.where(rng.random(2000) < 0.6, rng.integers(0, 4, 2000), zone(train))
    chosen = validated_decode(ring(train), noisy, ring(validation), zone(validation), ring(test), zone(test),
                              kind="discrete")
    expected = {k: np.mean(knn_classify(ring(train), noisy, ring(validation), n_neighbors=k) == zone(validation))
                for k in K_GRID}
    assert chosen.validation == pytest.approx(expected)  # accuracy, the primary metric of a discrete label
    assert chosen.k == max(expected, key=expected.get) == 25  # higher is better
    assert expected[1] < 0.8 < expected[25]
    assert list(chosen.test) == ["accuracy", "balanced_accuracy"]
    assert chosen.test == decode(ring(train), noisy, ring(test), zone(test), "discrete", n_neighbors=25)
    assert chosen.test["accuracy"][0] > 0.9 and chosen.test["accuracy"][1] < 0.45  # 4 classes: chance about 1 / 4


def test_validated_decode_rejects_a_grid_without_a_usable_k():
    z = ring(np.linspace(0, 1.6, 10))
    with pytest.raises(ValueError, match=r"k_grid \[25, 16\] has no k between 1 and the 10 training samples"):
        validated_decode(z, np.zeros(10), z, np.zeros(10), z, np.zeros(10), k_grid=(25, 16))
    assert validated_decode(z, np.zeros(10), z, np.zeros(10), z, np.zeros(10), k_grid=(4, 25)).k == 4


def frame(name: str, position: np.ndarray, parts: np.ndarray, z: np.ndarray) -> pd.DataFrame:
    right = ((np.arange(len(position)) // 50) % 2).astype(np.float32)  # the rat track's flags are continuous
    return pd.DataFrame({"session": name, "position": position, "right": right, "left": 1 - right,
                         "part": parts, "z0": z[:, 0], "z1": z[:, 1]})


def test_decoding_table_chooses_k_on_the_validation_rows():
    rng = np.random.default_rng(1)
    frames = {}
    for name in ("a", "b"):
        position = rng.uniform(0, 1.6, 1200)
        parts = np.array(["train", "validation", "test"], dtype=object)[(np.arange(1200) // 100) % 3]
        z = ring(position + rng.normal(0, 0.05, 1200))
        frames[name] = frame(name, position, parts, z)
    table = decoding_table(frames, shared_space=True, n_neighbors=36, top_k=5, min_coverage=0.8, k_grid=K_GRID)
    assert len(table) == 4 * 3 * 2  # pairs x label columns x metrics
    for (a, b, column), rows in table.groupby(["train", "test", "column"]):
        train, f = frames[a][frames[a].part == "train"], frames[b]
        v, t = f[f.part == "validation"], f[f.part == "test"]
        want = validated_decode(train[["z0", "z1"]], train[column], v[["z0", "z1"]], v[column],
                                t[["z0", "z1"]], t[column])
        assert (rows.k == want.k).all() and (rows.n_test == 400).all()  # k chosen per column
        assert dict(zip(rows.metric, zip(rows.value, rows.chance))) == want.test
    position = table[(table.column == "position") & (table.metric == "median_abs_error")]
    assert (position.value < 0.1).all() and (position.chance > 0.3).all()
    fixed = decoding_table(frames, shared_space=True, n_neighbors=36, top_k=5, min_coverage=0.8)
    assert (fixed.k == 36).all()
    no_validation = {n: f[f.part != "validation"] for n, f in frames.items()}
    with pytest.raises(ValueError, match="session 'a': the embedding table has no 'validation' rows"):
        decoding_table(no_validation, shared_space=True, n_neighbors=36, top_k=5, min_coverage=0.8, k_grid=K_GRID)


def test_schema_defaults_are_the_librarys():
    evaluation = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]["evaluation"]
    assert tuple(evaluation["properties"]["decoding_k_grid"]["default"]) == decoding.K_GRID
    assert tuple(evaluation["properties"]["protocol"]["enum"]) == PROTOCOLS
    assert evaluation["properties"]["protocol"]["default"] == PROTOCOLS[0] == "contiguous"
