"""Open-field simulator: a mouse exploring a 0.5 m x 0.5 m arena, seen through calcium imaging.

A second kind of sample data beside the rats' spike counts: a smooth random walk (reflected at the
walls, 3-30 cm/s, median 12), place cells with 2-D Gaussian fields (some untuned), Poisson spikes in 25 ms
bins, turned into calcium-like traces (an exponential transient per spike, tau 0.5-1 s, plus
Gaussian noise, z-scored per neuron: a continuous signal of both signs, never counts). The session
alternates between contexts in long blocks (every context in every session); a context changes the
cells' peak rates and moves a fraction of the fields (remapping), so context is decodable from the
traces. Labels: ``x``, ``y`` (m) and ``context`` (0..K-1).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from cebra_core.sessions.rats import BIN_SECONDS

ARENA = 0.5  # m, the side of the square arena; positions lie in [0, ARENA]
LABELS = {"continuous": ["x", "y"], "discrete": ["context"]}  # the label columns (LabelSpec.from_config)
BINS_RANGE = (3000, 6000)  # a session's length when not given: 75-150 s of 25 ms bins, from its name
NEURONS_RANGE = (60, 120)  # a session's neuron count when not given, from its name
BLOCKS_PER_CONTEXT = 4  # the contexts alternate in blocks: K = 2 gives A B A B A B A B (or B A …)
MIN_BLOCK_BINS = 25  # the shortest session has 25 bins per context block on average (200 for 2 contexts)


@dataclass(frozen=True)
class OpenFieldTuning:
    """Ranges the cells and the walk are drawn from; the defaults are the sample mice."""

    sigma: tuple[float, float] = (0.04, 0.08)  # m; a field spans about ±sigma around its centre
    peak_rate: tuple[float, float] = (3.0, 10.0)  # Hz, in a context of gain 1
    background: tuple[float, float] = (0.05, 0.3)  # Hz
    untuned: float = 0.2  # fraction of cells without a field (background spikes only)
    remap: float = 0.3  # fraction of the tuned cells whose field moves to a new centre in each context
    context_gain: tuple[float, float] = (1 / 3, 3.0)  # a tuned cell's peak rate times a gain per context, log-uniform
    tau: tuple[float, float] = (0.5, 1.0)  # s, the calcium transient's decay time constant
    noise: tuple[float, float] = (0.3, 0.8)  # Gaussian noise sd, in units of one spike's transient peak
    speed: float = 0.12  # m/s, the walk's median speed (clipped to 3-30 cm/s)


@dataclass
class PlaceFields2D:
    """Ground truth of the simulated neurons (one entry per neuron; K contexts)."""

    centers: np.ndarray  # (N, K, 2) m, a field's centre in each context (the same in every context unless remapped)
    sigmas: np.ndarray  # (N,) m
    peak_rates: np.ndarray  # (N, K) Hz, the field's peak in each context (0 for untuned cells)
    background: np.ndarray  # (N,) Hz
    tuned: np.ndarray  # (N,) bool: has a place field
    remapped: np.ndarray  # (N,) bool: its field moves between contexts
    taus: np.ndarray  # (N,) s, calcium decay time constants
    noise: np.ndarray  # (N,) the traces' Gaussian noise sd, in units of one spike's transient peak


@dataclass
class OpenFieldSession:
    neural: np.ndarray  # (T, N) float32 calcium traces, z-scored per neuron
    labels: pd.DataFrame  # x, y (float32, m), context (int64)
    position: np.ndarray  # (T, 2) float64 m, the trajectory
    spikes: np.ndarray  # (T, N) int64, the Poisson spikes behind the traces
    cells: PlaceFields2D


def size_from_name(name: str, what: str, low: int, high: int, step: int = 1) -> int:
    """A size in [low, high] (on a grid of ``step``) fixed by the name alone: sessions differ, runs agree."""
    choices = range(low, high + 1, step)
    return choices[zlib.crc32(f"{name}/{what}".encode()) % len(choices)]


def reflect(free: np.ndarray, side: float) -> np.ndarray:
    """Fold an unbounded path into [0, side]: a wall reflects it, keeping the speed."""
    return side - np.abs(np.mod(free, 2 * side) - side)


def simulate_walk(n_bins: int, rng: np.random.Generator, speed: float = 0.12, side: float = ARENA) -> np.ndarray:
    """A smooth random walk in the square arena, (T, 2) m: heading diffusing, log-speed an AR(1) process."""
    dt = BIN_SECONDS
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 1.0 * np.sqrt(dt), n_bins))  # ~1 rad²/s
    a = np.exp(-dt / 1.0)  # log-speed correlation time 1 s, stationary sd 0.5
    log_speed = lfilter([np.sqrt(1 - a**2) * 0.5], [1, -a], rng.normal(0, 1, n_bins))
    v = np.clip(speed * np.exp(log_speed), 0.03, 0.30)
    steps = (v * dt)[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    return reflect(rng.uniform(0, side, 2) + np.cumsum(steps, axis=0) - steps[0], side)


def context_blocks(n_bins: int, n_contexts: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) context per bin: BLOCKS_PER_CONTEXT blocks each, alternating in a random order, lengths ±25 %."""
    order = np.tile(rng.permutation(n_contexts), BLOCKS_PER_CONTEXT)
    weights = rng.uniform(0.75, 1.25, order.size)
    ends = np.round(np.cumsum(weights) / weights.sum() * n_bins).astype(int)
    return np.repeat(order, np.diff(ends, prepend=0))


def place_fields(
    n_neurons: int, n_contexts: int, rng: np.random.Generator, tuning: OpenFieldTuning = OpenFieldTuning()
) -> PlaceFields2D:
    """Draw the cells: which are tuned and remapped, centres per context, widths, rates, gains, taus, noise."""
    tuned = rng.random(n_neurons) >= tuning.untuned
    remapped = tuned & (rng.random(n_neurons) < tuning.remap)
    centers = np.repeat(rng.uniform(0, ARENA, (n_neurons, 1, 2)), n_contexts, axis=1)
    moved = rng.uniform(0, ARENA, (n_neurons, n_contexts, 2))
    centers[remapped] = moved[remapped]
    gain = np.exp(rng.uniform(*np.log(tuning.context_gain), (n_neurons, n_contexts)))  # log-uniform
    peak = rng.uniform(*tuning.peak_rate, n_neurons)[:, None] * gain * tuned[:, None]
    return PlaceFields2D(
        centers=centers,
        sigmas=rng.uniform(*tuning.sigma, n_neurons),
        peak_rates=peak,
        background=rng.uniform(*tuning.background, n_neurons),
        tuned=tuned,
        remapped=remapped,
        taus=rng.uniform(*tuning.tau, n_neurons),
        noise=rng.uniform(*tuning.noise, n_neurons),
    )


def calcium(spikes: np.ndarray, taus: np.ndarray, noise_sd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spikes (T, N) to z-scored traces: each spike a unit transient decaying with tau, plus noise."""
    decay = np.exp(-BIN_SECONDS / taus)
    trace = np.empty(spikes.shape)
    for i in range(spikes.shape[1]):
        trace[:, i] = lfilter([1.0], [1.0, -decay[i]], spikes[:, i].astype(float))
    trace += rng.normal(0, 1, spikes.shape) * noise_sd
    sd = trace.std(0)
    return ((trace - trace.mean(0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def simulate_openfield(
    name: str,
    *,
    n_bins: int | None = None,
    n_neurons: int | None = None,
    seed: int = 0,
    n_contexts: int = 2,
    tuning: OpenFieldTuning = OpenFieldTuning(),
    scale: float = 1.0,
) -> OpenFieldSession:
    """Simulate mouse ``name``: sizes from the name unless given (BINS_RANGE, NEURONS_RANGE), the
    number of bins from the name times ``scale``; deterministic."""
    n_bins = round(size_from_name(name, "bins", *BINS_RANGE) * scale) if n_bins is None else int(n_bins)
    n_neurons = size_from_name(name, "neurons", *NEURONS_RANGE) if n_neurons is None else int(n_neurons)
    shortest = MIN_BLOCK_BINS * BLOCKS_PER_CONTEXT * max(n_contexts, 1)
    if n_bins < shortest or n_neurons < 1 or n_contexts < 1:
        raise ValueError(
            f"need n_bins >= {shortest} (for {n_contexts} contexts), n_neurons >= 1 and n_contexts >= 1; "
            f"got {n_bins}, {n_neurons}, {n_contexts}"
        )
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])  # stable across runs (not hash())
    position = simulate_walk(n_bins, rng, tuning.speed)
    context = context_blocks(n_bins, n_contexts, rng)
    cells = place_fields(n_neurons, n_contexts, rng, tuning)
    centers = cells.centers[:, context].transpose(1, 0, 2)  # (T, N, 2): each bin's field centres
    distance2 = ((position[:, None, :] - centers) ** 2).sum(-1)
    rate = cells.background + cells.peak_rates[:, context].T * np.exp(-0.5 * distance2 / cells.sigmas**2)
    spikes = rng.poisson(rate * BIN_SECONDS)
    neural = calcium(spikes, cells.taus, cells.noise, rng)
    labels = pd.DataFrame(
        {"x": position[:, 0].astype(np.float32), "y": position[:, 1].astype(np.float32), "context": context.astype(np.int64)}
    )
    return OpenFieldSession(neural=neural, labels=labels, position=position, spikes=spikes, cells=cells)
