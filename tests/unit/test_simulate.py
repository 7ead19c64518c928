"""The place-cell simulator: real shapes, a plausible track, one-hot flags, recoverable place fields."""

import numpy as np
import pytest

from cebra_core.sessions.rats import BIN_SECONDS, RAT_SHAPES, TRACK_LENGTH
from cebra_core.sessions.simulate import BOTH, LEFT, RIGHT, Tuning, place_cells, simulate_session


@pytest.mark.parametrize("name", sorted(RAT_SHAPES))
def test_real_shapes_and_scale(name):
    full = simulate_session(name, scale=1.0, seed=0)
    assert full.neural.shape == RAT_SHAPES[name]
    assert full.labels.shape == (RAT_SHAPES[name][0], 3)
    assert full.neural.dtype == np.float32 and full.labels.dtype == np.float32
    small = simulate_session(name, scale=0.1, seed=0)
    assert small.neural.shape == (round(RAT_SHAPES[name][0] * 0.1), RAT_SHAPES[name][1])


def test_track_running_and_flags():
    sim = simulate_session("achilles", seed=3)
    position, right, left = sim.labels.T
    assert position.min() >= 0.0 and position.max() <= TRACK_LENGTH
    assert position.min() < 0.05 and position.max() > TRACK_LENGTH - 0.05  # reaches both ends
    assert set(np.unique(right)) == {0.0, 1.0}
    np.testing.assert_array_equal(right + left, 1.0)  # one-hot
    velocity = np.diff(position) / BIN_SECONDS
    moving = np.abs(velocity) > 0.05
    assert 0.35 < np.abs(velocity[moving]).mean() < 0.7  # ~0.5 m/s while running
    assert 0.02 < (~moving).mean() < 0.4  # pauses at the track ends
    # The right flag marks runs towards 1.6 m, the left flag runs towards 0.
    assert velocity[moving & (right[1:] == 1)].mean() > 0.3
    assert velocity[moving & (left[1:] == 1)].mean() < -0.3
    laps = np.count_nonzero(np.diff(right))
    assert 40 < laps < 120  # achilles' real session has 83 direction changes


def test_counts_and_rates():
    sim = simulate_session("buddy", seed=1)
    assert np.all(sim.neural >= 0) and np.all(sim.neural == np.round(sim.neural))
    rates = sim.neural.mean(0) / BIN_SECONDS
    assert 0.2 < rates.mean() < 4.0  # Hz; real buddy: ~0.9 Hz
    cells = sim.cells
    assert np.all((cells.peak_rates >= 5) & (cells.peak_rates <= 20))
    assert np.all((cells.sigmas >= 0.05) & (cells.sigmas <= 0.15))
    assert {RIGHT, LEFT, BOTH} <= set(cells.directions.tolist())


def test_deterministic_from_seed():
    a = simulate_session("gatsby", scale=0.2, seed=7)
    b = simulate_session("gatsby", scale=0.2, seed=7)
    np.testing.assert_array_equal(a.neural, b.neural)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.neural, simulate_session("gatsby", scale=0.2, seed=8).neural)
    other = simulate_session("buddy", scale=0.2, seed=7)  # each rat gets its own stream
    assert not np.allclose(a.cells.centers[:10], other.cells.centers[:10])


def test_place_fields_recoverable():
    sim = simulate_session("cicero", seed=0)
    position, right = sim.labels[:, 0], sim.labels[:, 1] == 1
    edges = np.linspace(0, TRACK_LENGTH, 33)
    centres = (edges[:-1] + edges[1:]) / 2
    bins = np.clip(np.digitize(position, edges) - 1, 0, 31)
    errors = []
    for i in range(sim.neural.shape[1]):
        direction = sim.cells.directions[i]
        mask = right if direction == RIGHT else (~right if direction == LEFT else np.ones_like(right))
        tuning = np.bincount(bins[mask], sim.neural[mask, i], 32) / np.maximum(np.bincount(bins[mask], None, 32), 1)
        errors.append(abs(centres[np.argmax(tuning)] - sim.cells.centers[i]))
        # direction selectivity: a one-direction cell fires more in its direction
        if direction != BOTH:
            assert sim.neural[mask, i].mean() > 2 * sim.neural[~mask, i].mean()
    assert np.median(errors) < 0.06  # m; the tuning-curve peak finds the field centre


def test_field_centres_follow_the_tunings_density():
    """Tuning.center_beta places the fields: uniform by default (plain uniform draws), crowded at both
    ends with Beta(0.5, 0.5), towards the start with Beta(2, 5) (mean 2/7 of the track)."""
    n = 4000
    uniform = place_cells(n, np.random.default_rng(1)).centers
    np.testing.assert_array_equal(uniform, np.random.default_rng(1).uniform(0.0, TRACK_LENGTH, n))
    ends = place_cells(n, np.random.default_rng(1), Tuning(center_beta=(0.5, 0.5))).centers / TRACK_LENGTH
    outer = lambda x: np.mean((x < 0.1) | (x > 0.9))  # noqa: E731
    assert outer(uniform / TRACK_LENGTH) == pytest.approx(0.2, abs=0.03)
    assert outer(ends) == pytest.approx(0.41, abs=0.03)  # arcsine law: 4/pi * asin(sqrt(0.1))
    start = place_cells(n, np.random.default_rng(1), Tuning(center_beta=(2.0, 5.0))).centers / TRACK_LENGTH
    assert start.mean() == pytest.approx(2 / 7, abs=0.01) and 0 <= start.min() and start.max() <= 1


def test_unknown_rat_and_bad_scale():
    with pytest.raises(ValueError, match="unknown rat"):
        simulate_session("nemo")
    assert simulate_session("nemo", shape=(500, 7)).neural.shape == (500, 7)
    with pytest.raises(ValueError, match="scale"):
        simulate_session("buddy", scale=0)
