"""The open-field simulator: sizes from the name, a walk inside the arena, contexts in blocks, z-scored
calcium traces with the declared kernel and noise, recoverable place fields, decodable position and context."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter
from scipy.spatial import cKDTree

from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.rats import BIN_SECONDS
from cebra_core.sessions.simulate_openfield import (
    ARENA,
    BINS_RANGE,
    BLOCKS_PER_CONTEXT,
    LABELS,
    NEURONS_RANGE,
    OpenFieldTuning,
    place_fields,
    reflect,
    simulate_openfield,
)


def test_shapes_dtypes_and_label_columns():
    sim = simulate_openfield("mouse1", seed=0)
    n_bins, n_neurons = sim.neural.shape
    assert BINS_RANGE[0] <= n_bins <= BINS_RANGE[1] and NEURONS_RANGE[0] <= n_neurons <= NEURONS_RANGE[1]
    assert sim.neural.dtype == np.float32
    assert list(sim.labels.columns) == ["x", "y", "context"] == list(LabelSpec.from_config(LABELS).columns)
    assert sim.labels["x"].dtype == np.float32 and sim.labels["y"].dtype == np.float32
    assert sim.labels["context"].dtype == np.int64
    assert len(sim.labels) == n_bins and sim.position.shape == (n_bins, 2) and sim.spikes.shape == (n_bins, n_neurons)
    np.testing.assert_allclose(sim.labels[["x", "y"]].to_numpy(), sim.position, atol=1e-6)
    assert sim.cells.centers.shape == (n_neurons, 2, 2) and sim.cells.peak_rates.shape == (n_neurons, 2)
    small = simulate_openfield("mouse1", n_bins=500, n_neurons=7, n_contexts=3)
    assert small.neural.shape == (500, 7) and set(small.labels["context"]) == {0, 1, 2}
    with pytest.raises(ValueError, match="n_bins"):
        simulate_openfield("mouse1", n_bins=50)


def test_sizes_come_from_the_name():
    shapes = {name: simulate_openfield(name, seed=0).neural.shape for name in ("m1", "m2", "m3", "m4", "m5")}
    assert len({n for _, n in shapes.values()}) >= 4 and len({t for t, _ in shapes.values()}) >= 4  # sessions differ
    assert simulate_openfield("m2", seed=5).neural.shape == shapes["m2"]  # the name alone fixes the size
    assert all(BINS_RANGE[0] <= t <= BINS_RANGE[1] and NEURONS_RANGE[0] <= n <= NEURONS_RANGE[1] for t, n in shapes.values())


def test_deterministic_for_name_and_seed():
    a = simulate_openfield("m1", n_bins=800, n_neurons=20, seed=3)
    b = simulate_openfield("m1", n_bins=800, n_neurons=20, seed=3)
    np.testing.assert_array_equal(a.neural, b.neural)
    assert a.labels.equals(b.labels)
    other_seed = simulate_openfield("m1", n_bins=800, n_neurons=20, seed=4)
    other_name = simulate_openfield("m2", n_bins=800, n_neurons=20, seed=3)
    for other in (other_seed, other_name):
        assert not np.allclose(a.position, other.position) and not np.allclose(a.cells.centers, other.cells.centers)


def test_walk_stays_in_the_arena_at_mouse_speeds():
    np.testing.assert_allclose(reflect(np.array([-0.1, 0.2, 0.6, 1.1, -0.7]), 0.5), [0.1, 0.2, 0.4, 0.1, 0.3])
    sim = simulate_openfield("m3", seed=1)
    xy = sim.position
    assert xy.min() >= 0.0 and xy.max() <= ARENA
    assert xy.min(0).max() < 0.02 and xy.max(0).min() > ARENA - 0.02  # reaches every wall
    step = np.diff(xy, axis=0)
    speed = np.linalg.norm(step, axis=1) / BIN_SECONDS
    assert 0.09 < np.median(speed) < 0.15  # m/s; Tuning.speed = 0.12
    assert np.percentile(speed, 1) > 0.025 and speed.max() <= 0.30 + 1e-9  # 3-30 cm/s
    # Smooth: consecutive steps point the same way (cos of the turn > 0.9 in most bins), and wall bounces are rare.
    turn = (step[1:] * step[:-1]).sum(1) / np.maximum(np.linalg.norm(step[1:], axis=1) * np.linalg.norm(step[:-1], axis=1), 1e-12)
    assert np.mean(turn > 0.9) > 0.95
    occupancy, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=10, range=[[0, ARENA], [0, ARENA]])
    assert (occupancy > 0).mean() > 0.85  # explores most 5 cm squares


@pytest.mark.parametrize("n_contexts", [2, 3])
def test_contexts_alternate_in_long_blocks(n_contexts):
    sim = simulate_openfield("m4", seed=2, n_contexts=n_contexts)
    context = sim.labels["context"].to_numpy()
    starts = np.flatnonzero(np.diff(context)) + 1
    blocks = np.split(context, starts)
    assert len(blocks) == n_contexts * BLOCKS_PER_CONTEXT  # every block a run of one context
    assert sorted(b[0] for b in blocks) == sorted(list(range(n_contexts)) * BLOCKS_PER_CONTEXT)
    lengths = np.array([len(b) for b in blocks]) / (len(context) / len(blocks))
    assert lengths.min() > 0.7 and lengths.max() < 1.3  # ±25 % around equal blocks
    order = [b[0] for b in blocks]
    assert order == order[:n_contexts] * BLOCKS_PER_CONTEXT  # the same order repeats: A B A B …, A B C A B C …


def test_traces_are_z_scored_calcium_with_the_declared_kernel():
    sim = simulate_openfield("m5", n_bins=6000, n_neurons=30, seed=0)
    x = sim.neural.astype(float)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    assert (x < 0).mean() > 0.3 and (x < -0.5).any(0).all()  # both signs in every neuron
    assert not np.allclose(x, np.round(x))  # a continuous signal, not counts
    # The trace is (spikes * exp(-t/tau) + noise) z-scored: regressing it on the spikes filtered with each
    # candidate tau picks the declared tau, and the residual in spike units is the declared noise sd
    # (neurons with >= 40 spikes, enough to tell).
    cells, candidates = sim.cells, np.linspace(0.3, 1.3, 101)
    checked = np.flatnonzero(sim.spikes.sum(0) >= 40)
    assert len(checked) >= 20
    for i in checked:
        spikes = sim.spikes[:, i].astype(float)
        fits = [np.corrcoef(lfilter([1.0], [1.0, -np.exp(-BIN_SECONDS / tau)], spikes), x[:, i])[0, 1] for tau in candidates]
        assert candidates[int(np.argmax(fits))] == pytest.approx(cells.taus[i], abs=0.04), i  # s; measured <= 0.023
        kernel = lfilter([1.0], [1.0, -np.exp(-BIN_SECONDS / cells.taus[i])], spikes)
        slope, intercept = np.polyfit(kernel, x[:, i], 1)
        residual = x[:, i] - (slope * kernel + intercept)
        assert residual.std() / slope == pytest.approx(cells.noise[i], rel=0.05), i  # measured <= 3 %


def test_the_cells_follow_the_tuning():
    tuning = OpenFieldTuning()
    cells = place_fields(4000, 2, np.random.default_rng(0), tuning)
    assert cells.tuned.mean() == pytest.approx(1 - tuning.untuned, abs=0.02)
    assert cells.remapped[cells.tuned].mean() == pytest.approx(tuning.remap, abs=0.02) and not cells.remapped[~cells.tuned].any()
    np.testing.assert_array_equal(cells.peak_rates[~cells.tuned], 0)
    same = cells.centers[:, 0] == cells.centers[:, 1]
    np.testing.assert_array_equal(same.all(1), ~cells.remapped)  # only remapped fields move
    gain = np.log(cells.peak_rates[cells.tuned, 1] / cells.peak_rates[cells.tuned, 0])
    assert gain.std() == pytest.approx(np.log(9) / np.sqrt(6), rel=0.05)  # difference of two log-uniform(1/3, 3)
    assert cells.centers.min() >= 0 and cells.centers.max() <= ARENA
    assert tuning.tau[0] <= cells.taus.min() and cells.taus.max() <= tuning.tau[1]


def rate_map(spikes, xy, mask, bins=20):
    """Mean spike count per 2.5 cm square, smoothed (sd 3.75 cm), NaN where barely visited; the squares' centres."""
    edges = np.linspace(0, ARENA, bins + 1)
    count, _, _ = np.histogram2d(xy[mask, 0], xy[mask, 1], bins=[edges, edges])
    total, _, _ = np.histogram2d(xy[mask, 0], xy[mask, 1], bins=[edges, edges], weights=spikes[mask])
    count, total = gaussian_filter(count, 1.5), gaussian_filter(total, 1.5)
    return np.where(count > 5, total / np.maximum(count, 1e-9), np.nan), (edges[:-1] + edges[1:]) / 2


def test_place_fields_are_where_declared():
    sim = simulate_openfield("m6", n_bins=12000, n_neurons=60, seed=0)
    cells, context, xy = sim.cells, sim.labels["context"].to_numpy(), sim.position
    errors, moved = [], []
    for i in np.flatnonzero(cells.tuned):
        for k in (0, 1):
            rates, mids = rate_map(sim.spikes[:, i], xy, context == k)
            if cells.peak_rates[i, k] < 3:  # too few spikes for a map
                continue
            a, b = np.unravel_index(np.nanargmax(rates), rates.shape)
            error = np.hypot(mids[a] - cells.centers[i, k, 0], mids[b] - cells.centers[i, k, 1])
            (moved if cells.remapped[i] else errors).append(error)
    assert len(errors) > 40 and len(moved) > 20
    # m; measured 0.027 and 0.019, a random centre is ~0.19 away: remapped cells follow their new centres
    assert np.median(errors) < 0.04 and np.median(moved) < 0.04
    # Untuned cells fire at their background rate everywhere.
    untuned = ~cells.tuned
    np.testing.assert_allclose(sim.spikes[:, untuned].mean(0) / BIN_SECONDS, cells.background[untuned], atol=0.1)
    # The context gain: in-field rates in context 1 vs 0 follow the declared peak-rate ratio.
    stay = np.flatnonzero(cells.tuned & ~cells.remapped)
    near = np.linalg.norm(xy[:, None] - cells.centers[stay, 0], axis=-1) < cells.sigmas[stay]
    spikes = np.stack([(sim.spikes[:, stay] * near * (context == k)[:, None]).sum(0) for k in (0, 1)])
    bins = np.stack([(near * (context == k)[:, None]).sum(0) for k in (0, 1)])
    enough = spikes.min(0) >= 10
    assert enough.sum() >= 15  # measured 20 cells with >= 10 in-field spikes in both contexts
    measured = (spikes[1] / bins[1] / (spikes[0] / bins[0]))[enough]
    declared = (cells.peak_rates[stay, 1] / cells.peak_rates[stay, 0])[enough]
    assert np.corrcoef(np.log(measured), np.log(declared))[0, 1] > 0.9  # measured 0.94
    # The traces users get carry the fields: higher inside the field (same context) than elsewhere.
    inside = np.linalg.norm(xy[:, None] - cells.centers[stay, 0], axis=-1) < cells.sigmas[stay]
    contrast = [
        sim.neural[inside[:, j] & (context == 0), i].mean() - sim.neural[~inside[:, j], i].mean() for j, i in enumerate(stay)
    ]
    assert np.median(contrast) > 1.0  # sd; measured 2.0


def test_position_and_context_are_decodable():
    """kNN decodes (x, y) from the held-out last quarter; a linear readout decodes context in the second half."""
    sim = simulate_openfield("m1", seed=0)
    x, xy = sim.neural, sim.position
    cut = int(0.75 * len(x))
    _, nearest = cKDTree(x[:cut]).query(x[cut:], k=10)
    error = np.median(np.linalg.norm(xy[:cut][nearest].mean(1) - xy[cut:], axis=1))
    shuffled = xy[:cut][np.random.default_rng(0).permutation(cut)]
    chance = np.median(np.linalg.norm(shuffled[nearest].mean(1) - xy[cut:], axis=1))
    assert error < 0.09 and error < 0.55 * chance  # m; measured 0.078 vs 0.152 (seeds 0-3: 0.39-0.51 of chance)
    # Context, on 300 s sessions: measured 0.90 and 0.76 (seeds 0-4: 0.90-0.97 and 0.74-0.87); the same
    # cells without a context effect (gain 1, no remapping) give 0.56 and 0.31 (seeds 0-4: <= 0.56, <= 0.35).
    no_effect = OpenFieldTuning(context_gain=(1.0, 1.0), remap=0.0)
    for n_contexts, floor, ceiling in ((2, 0.8, 0.65), (3, 0.6, 0.45)):  # chance: 1 / n_contexts
        for tuning, ok in ((OpenFieldTuning(), lambda b: b > floor), (no_effect, lambda b: b < ceiling)):
            sim = simulate_openfield("m1", n_bins=12000, seed=0, n_contexts=n_contexts, tuning=tuning)
            context = sim.labels["context"].to_numpy()
            half = len(context) // 2
            assert set(context[:half]) == set(context[half:]) == set(range(n_contexts))
            design = np.c_[sim.neural, np.ones(len(context))]
            weights = np.linalg.lstsq(design[:half], np.eye(n_contexts)[context[:half]], rcond=None)[0]
            predicted = (design[half:] @ weights).argmax(1)
            balanced = np.mean([np.mean(predicted[context[half:] == k] == k) for k in range(n_contexts)])
            assert ok(balanced), (n_contexts, tuning, balanced)
