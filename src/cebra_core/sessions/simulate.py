"""Place-cell simulator: a rat running laps on a 1.6 m linear track, with the real sessions' shapes.

Stands in for the published rats (sample data for CI and first runs): 25 ms bins, Gaussian place
fields active in one running direction (some in both), Poisson spike counts, and labels
(T, 3) = [position in m, right flag, left flag] like the real ``continuous_index``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from cebra_core.sessions.rats import BIN_SECONDS, RAT_SHAPES, TRACK_LENGTH

MIN_BINS = 100  # the shortest session simulated, whatever the scale (a few laps)
RIGHT, LEFT, BOTH = 0, 1, 2


@dataclass(frozen=True)
class Tuning:
    """Ranges the place fields are drawn from; `Tuning()` is the project's rats, others make unlike rats."""

    sigma: tuple[float, float] = (0.05, 0.15)  # m; the field spans about ±sigma, i.e. 10-30 cm
    peak_rate: tuple[float, float] = (5.0, 20.0)  # Hz
    background: tuple[float, float] = (0.05, 0.5)  # Hz
    direction_p: tuple[float, float, float] = (0.4, 0.4, 0.2)  # P(RIGHT), P(LEFT), P(BOTH)
    # Field centres along the track: position / TRACK_LENGTH ~ Beta(a, b); (1, 1) is uniform, (0.5, 0.5)
    # crowds them at both ends, (2, 5) towards the start.
    center_beta: tuple[float, float] = (1.0, 1.0)


@dataclass
class PlaceCells:
    """Ground truth of the simulated neurons (one entry per neuron)."""

    centers: np.ndarray  # m
    sigmas: np.ndarray  # m; the field spans about ±sigma
    peak_rates: np.ndarray  # Hz
    background: np.ndarray  # Hz
    directions: np.ndarray  # RIGHT, LEFT or BOTH


@dataclass
class SimulatedSession:
    neural: np.ndarray  # (T, N) float32 spike counts
    labels: np.ndarray  # (T, 3) float32 [position, right, left]
    cells: PlaceCells


def simulate_trajectory(
    n_bins: int, rng: np.random.Generator, mean_speed: float = 0.5, pause_s: tuple[float, float] = (0.2, 1.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Laps back and forth: (position (T,), right-running flag (T,), running mask (T,))."""
    position, right, running = [], [], []
    at_right_end = bool(rng.integers(2))
    total = 0
    while total < n_bins:
        going_right = not at_right_end
        speed = float(np.clip(rng.lognormal(np.log(mean_speed), 0.25), 0.2, 1.2))
        steps = max(2, int(round(TRACK_LENGTH / speed / BIN_SECONDS)))
        u = np.linspace(0.0, 1.0, steps)
        run = TRACK_LENGTH * (1 - np.cos(np.pi * u)) / 2  # accelerate, cruise, slow down
        run = run if going_right else TRACK_LENGTH - run
        n_pause = int(round(rng.uniform(*pause_s) / BIN_SECONDS))
        end = run[-1]
        pause = np.clip(end + rng.normal(0, 0.005, n_pause), 0.0, TRACK_LENGTH)
        position += [run, pause]
        # The flag keeps the direction of the last run through the pause (flags stay one-hot).
        right += [np.full(steps + n_pause, going_right)]
        running += [np.ones(steps, bool), np.zeros(n_pause, bool)]
        total += steps + n_pause
        at_right_end = going_right
    return (
        np.concatenate(position)[:n_bins],
        np.concatenate(right)[:n_bins],
        np.concatenate(running)[:n_bins],
    )


def place_cells(n_neurons: int, rng: np.random.Generator, tuning: Tuning = Tuning()) -> PlaceCells:
    """Draw fields: centres, widths, peaks and directions from `tuning`."""
    if tuning.center_beta == (1.0, 1.0):  # uniform through rng.uniform: the default rats do not depend on the option
        centers = rng.uniform(0.0, TRACK_LENGTH, n_neurons)
    else:
        centers = TRACK_LENGTH * rng.beta(*tuning.center_beta, n_neurons)
    return PlaceCells(
        centers=centers,
        sigmas=rng.uniform(*tuning.sigma, n_neurons),
        peak_rates=rng.uniform(*tuning.peak_rate, n_neurons),
        background=rng.uniform(*tuning.background, n_neurons),
        directions=rng.choice([RIGHT, LEFT, BOTH], size=n_neurons, p=list(tuning.direction_p)),
    )


def simulate(n_bins: int, n_neurons: int, seed: int | list[int] = 0, tuning: Tuning = Tuning()) -> SimulatedSession:
    """Simulate one session of ``n_bins`` 25 ms bins and ``n_neurons`` place cells tuned as `tuning`."""
    rng = np.random.default_rng(seed)
    position, right, running = simulate_trajectory(n_bins, rng)
    cells = place_cells(n_neurons, rng, tuning)
    field = np.exp(-0.5 * ((position[:, None] - cells.centers) / cells.sigmas) ** 2)
    active = np.where(right[:, None], cells.directions != LEFT, cells.directions != RIGHT)
    gain = np.where(running, 1.0, 0.2)[:, None]  # place cells fire less while the rat sits still
    rate = cells.background + cells.peak_rates * field * active * gain
    neural = rng.poisson(rate * BIN_SECONDS).astype(np.float32)
    labels = np.stack([position, right, ~right], axis=1).astype(np.float32)
    return SimulatedSession(neural=neural, labels=labels, cells=cells)


def simulate_session(
    name: str, *, scale: float = 1.0, seed: int = 0, shape: tuple[int, int] | None = None, tuning: Tuning = Tuning()
) -> SimulatedSession:
    """Simulate rat ``name`` with its real shape (or ``shape``), T shrunk by ``scale``; deterministic."""
    if shape is None:
        if name not in RAT_SHAPES:
            raise ValueError(f"unknown rat {name!r}: give a shape or use one of {', '.join(RAT_SHAPES)}")
        shape = RAT_SHAPES[name]
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    n_bins = max(MIN_BINS, int(round(shape[0] * scale)))
    # Each rat gets its own stream, stable across Python runs (crc32, not hash()).
    return simulate(n_bins, shape[1], seed=[int(seed), zlib.crc32(name.encode())], tuning=tuning)
