"""The center-out reaching simulator: sizes from the name, balanced targets, trials of hold, reach and
return, counts cosine-tuned as declared, the target decodable while the hand moves and not at rest."""

import numpy as np
import pytest

from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.rats import BIN_SECONDS
from cebra_core.sessions.simulate_reaching import (
    HOLD,
    HOLD_BINS,
    LABELS,
    N_TARGETS,
    NEURONS_RANGE,
    REACH,
    REACH_BINS,
    REACH_DISTANCE,
    RETURN,
    RETURN_BINS,
    TRIALS_RANGE,
    ReachingTuning,
    cosine_cells,
    movement_profile,
    simulate_reaching,
)

ANGLES = 2 * np.pi * np.arange(N_TARGETS) / N_TARGETS


def test_shapes_dtypes_and_label_columns():
    sim = simulate_reaching("monkey1", seed=0)
    n_bins, n_neurons = sim.neural.shape
    n_trials = len(sim.targets)
    assert TRIALS_RANGE[0] <= n_trials <= TRIALS_RANGE[1] and n_trials % N_TARGETS == 0
    assert NEURONS_RANGE[0] <= n_neurons <= NEURONS_RANGE[1]
    trial_bins = (HOLD_BINS[0] + REACH_BINS + RETURN_BINS, HOLD_BINS[1] + REACH_BINS + RETURN_BINS)
    assert n_trials * trial_bins[0] <= n_bins <= n_trials * trial_bins[1]
    assert 3000 <= n_bins <= 6000  # a quick session
    assert sim.neural.dtype == np.float32 and np.all(sim.neural >= 0) and np.all(sim.neural == np.round(sim.neural))
    assert list(sim.labels.columns) == ["target"] == list(LabelSpec.from_config(LABELS).columns)
    assert sim.labels["target"].dtype == np.int64 and len(sim.labels) == n_bins
    assert sim.trial.shape == sim.phase.shape == (n_bins,) and sim.hand.shape == (n_bins, 2)
    small = simulate_reaching("monkey1", n_trials=9, n_neurons=5)
    assert small.neural.shape[1] == 5 and len(small.targets) == 9 and set(small.targets) == set(range(N_TARGETS))
    with pytest.raises(ValueError, match="n_trials"):
        simulate_reaching("monkey1", n_trials=7)


def test_sizes_come_from_the_name():
    sims = {name: simulate_reaching(name, seed=0) for name in ("k1", "k2", "k3", "k4", "k5")}
    assert len({s.neural.shape[1] for s in sims.values()}) >= 4 and len({len(s.targets) for s in sims.values()}) >= 3
    again = simulate_reaching("k2", seed=9)  # the name alone fixes the sizes
    assert again.neural.shape[1] == sims["k2"].neural.shape[1] and len(again.targets) == len(sims["k2"].targets)


def test_deterministic_for_name_and_seed():
    a = simulate_reaching("k1", n_trials=16, n_neurons=10, seed=3)
    b = simulate_reaching("k1", n_trials=16, n_neurons=10, seed=3)
    np.testing.assert_array_equal(a.neural, b.neural)
    assert a.labels.equals(b.labels)
    others = [simulate_reaching("k1", n_trials=16, n_neurons=10, seed=4), simulate_reaching("k2", n_trials=16, n_neurons=10, seed=3)]
    for other in others:
        assert not np.array_equal(a.targets, other.targets) and not np.allclose(a.cells.preferred, other.cells.preferred)


def test_trials_targets_and_hand():
    sim = simulate_reaching("k3", seed=1)
    target, trial, phase = sim.labels["target"].to_numpy(), sim.trial, sim.phase
    assert np.all(np.diff(trial) >= 0) and np.array_equal(np.unique(trial), np.arange(len(sim.targets)))
    np.testing.assert_array_equal(target, sim.targets[trial])  # one target per trial, in every bin
    # Balanced and shuffled in runs of 8: every run of 8 trials visits each target once.
    runs = sim.targets.reshape(-1, N_TARGETS)
    np.testing.assert_array_equal(np.sort(runs, axis=1), np.tile(np.arange(N_TARGETS), (len(runs), 1)))
    assert len({tuple(run) for run in runs}) > 1  # not the same order every run
    for k in (0, 5, len(sim.targets) - 1):
        phases = phase[trial == k]
        hold = np.count_nonzero(phases == HOLD)
        assert HOLD_BINS[0] <= hold <= HOLD_BINS[1]
        np.testing.assert_array_equal(phases, np.repeat([HOLD, REACH, RETURN], [hold, REACH_BINS, RETURN_BINS]))
    holds = np.bincount(trial[phase == HOLD])
    assert len(set(holds.tolist())) > 3  # jittered
    # The hand rests at the centre, reaches REACH_DISTANCE towards the target, and comes back.
    np.testing.assert_allclose(sim.hand[phase == HOLD], 0)
    last_reach = np.flatnonzero((phase == REACH) & (np.roll(phase, -1) == RETURN))
    reached = sim.hand[last_reach]
    np.testing.assert_allclose(np.linalg.norm(reached, axis=1), REACH_DISTANCE, rtol=0.01)
    turn = np.angle(np.exp(1j * (np.arctan2(reached[:, 1], reached[:, 0]) - ANGLES[sim.targets])))
    np.testing.assert_allclose(turn, 0, atol=1e-9)  # towards target k at angle 2 pi k / 8
    speed = np.linalg.norm(np.diff(sim.hand, axis=0), axis=1) / BIN_SECONDS
    # Minimum jerk: peak speed 1.875 x the mean, fastest on the shorter return (8 cm in 0.4 s: 0.375 m/s).
    assert speed.max() == pytest.approx(1.875 * REACH_DISTANCE / (RETURN_BINS * BIN_SECONDS), rel=0.02)


def test_the_neurons_follow_the_tuning():
    tuning = ReachingTuning()
    cells = cosine_cells(4000, np.random.default_rng(0), tuning)
    assert cells.tuned.mean() == pytest.approx(1 - tuning.untuned, abs=0.015)
    np.testing.assert_array_equal(cells.depth[~cells.tuned], 0)
    # Preferred directions uniform: each octant holds 1/8 of them.
    np.testing.assert_allclose(np.bincount((cells.preferred // (np.pi / 4)).astype(int), minlength=8) / 4000, 1 / 8, atol=0.015)
    assert tuning.baseline[0] <= cells.baseline.min() and cells.baseline.max() <= tuning.baseline[1]


def tuning_fit(counts: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean count per target fitted by b0 + b1 cos + b2 sin: (preferred direction, modulation in Hz)."""
    means = np.stack([counts[target == k].mean(0) for k in range(N_TARGETS)])
    design = np.c_[np.ones(N_TARGETS), np.cos(ANGLES), np.sin(ANGLES)]
    b = np.linalg.lstsq(design, means, rcond=None)[0]
    return np.arctan2(b[2], b[1]) % (2 * np.pi), np.hypot(b[1], b[2]) / BIN_SECONDS


def test_counts_are_cosine_tuned_as_declared():
    sim = simulate_reaching("k1", seed=0)
    cells, counts, target, phase = sim.cells, sim.neural.astype(float), sim.labels["target"].to_numpy(), sim.phase
    reach = phase == REACH
    preferred, modulation = tuning_fit(counts[reach], target[reach])
    error = np.abs(np.angle(np.exp(1j * (preferred - cells.preferred))))[cells.tuned]
    assert np.degrees(np.median(error)) < 5 and np.degrees(error.max()) < 20  # measured 1.9 and 9.1 degrees
    # The return moves the other way: the preferred direction turns by 180 degrees.
    back, _ = tuning_fit(counts[phase == RETURN], target[phase == RETURN])
    flipped = np.abs(np.angle(np.exp(1j * (back - cells.preferred - np.pi))))[cells.tuned]
    assert np.degrees(np.median(flipped)) < 6  # measured 3.4
    assert np.corrcoef(modulation[cells.tuned], cells.depth[cells.tuned])[0, 1] > 0.8  # measured 0.87
    assert modulation[~cells.tuned].max() < 3  # Hz; untuned neurons: noise only (tuned: depth 10-40 Hz)


def test_modulation_and_preparatory_activity_follow_the_depth():
    """Where the cosine is never rectified (baselines above the depths), the reach's modulation is depth x
    its mean speed / peak speed (8/15) and the hold's is `preparatory` x depth, around the baseline."""
    tuning = ReachingTuning(baseline=(30.0, 40.0), depth=(5.0, 25.0))
    sim = simulate_reaching("k1", seed=0, tuning=tuning)
    cells, counts, target, phase = sim.cells, sim.neural.astype(float), sim.labels["target"].to_numpy(), sim.phase
    assert np.all(cells.depth <= cells.baseline)  # never rectified
    _, modulation = tuning_fit(counts[phase == REACH], target[phase == REACH])
    ratio = modulation[cells.tuned] / cells.depth[cells.tuned]
    assert np.median(ratio) == pytest.approx(movement_profile(REACH_BINS)[1].mean(), rel=0.1)  # measured 0.536 vs 0.533
    # While holding, every neuron fires at its baseline on average over the targets, tuned to the coming
    # reach with `preparatory` times its depth (preparatory activity); untuned neurons stay flat.
    rest = counts[phase == HOLD].mean(0) / BIN_SECONDS
    assert np.median(np.abs(rest / cells.baseline - 1)) < 0.05  # measured 0.017 (Poisson and trial gains)
    _, rest_modulation = tuning_fit(counts[phase == HOLD], target[phase == HOLD])
    ratio = rest_modulation[cells.tuned] / (tuning.preparatory * cells.depth[cells.tuned])
    assert np.median(ratio) == pytest.approx(1.0, rel=0.1)  # measured 1.05
    assert np.median(rest_modulation[~cells.tuned]) < 2.5  # Hz; measured 1.6 (noise only; tuned: 2.5-12.5)


def test_target_is_decodable_while_holding_and_moving():
    """Nearest class mean (z-scored counts), trained on the first 3/4 of the trials, tested on the last 1/4."""
    sim = simulate_reaching("k1", seed=0)
    counts, target, phase, trial = sim.neural.astype(float), sim.labels["target"].to_numpy(), sim.phase, sim.trial
    cut = int(0.75 * len(sim.targets))
    train, test = trial < cut, trial >= cut
    z = (counts - counts[train].mean(0)) / counts[train].std(0)
    means = np.stack([z[train & (phase == REACH) & (target == k)].mean(0) for k in range(N_TARGETS)])

    def accuracy(mask):
        predicted = ((z[mask][:, None] - means) ** 2).sum(-1).argmin(1)
        return np.mean(predicted == target[mask])

    assert accuracy(test & (phase == REACH)) > 0.4  # per 25 ms bin; chance 1/8, measured 0.58
    assert accuracy(test & (phase == HOLD)) > 0.4  # the preparatory tuning points the same way: measured 0.58
    # Whole reaches (the counts summed over each trial's reach) are decoded almost without error.
    summed = np.stack([counts[(trial == k) & (phase == REACH)].sum(0) for k in range(len(sim.targets))])
    summed = (summed - summed[:cut].mean(0)) / summed[:cut].std(0)
    centroids = np.stack([summed[:cut][sim.targets[:cut] == k].mean(0) for k in range(N_TARGETS)])
    predicted = ((summed[cut:, None] - centroids) ** 2).sum(-1).argmin(1)
    assert np.mean(predicted == sim.targets[cut:]) > 0.9
