"""Center-out reaching simulator: a monkey reaching to 8 targets, motor-cortex-like spike counts.

A third kind of sample data, for a discrete label: trials of a hold at the centre (0.3-0.5 s,
jittered), a reach to one of 8 targets on a circle (0.5 s, minimum-jerk) and a return (0.4 s), in
25 ms bins, the targets in a balanced random order (each run of 8 trials visits every target once).
Neurons are cosine-tuned to the movement direction (Georgopoulos): rate = baseline + depth x
(hand speed / peak speed) x cos(direction - preferred direction), rectified at 0, so they are modulated
mostly while the hand moves (the return moves the opposite way); Poisson counts with a gain per
trial. Label: ``target`` (0..7) in every bin of a trial.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cebra_core.sessions.rats import BIN_SECONDS
from cebra_core.sessions.simulate_openfield import size_from_name

N_TARGETS = 8  # target k lies at angle 2 pi k / 8 (0: right, 2: up)
LABELS = {"continuous": [], "discrete": ["target"]}  # the label column (LabelSpec.from_config)
NEURONS_RANGE = (60, 120)  # a session's neuron count when not given, from its name
TRIALS_RANGE = (64, 112)  # a session's trial count when not given, from its name (a multiple of 8): ~3300-5800 bins
HOLD_BINS = (12, 20)  # 0.3-0.5 s at the centre, drawn per trial
REACH_BINS = 20  # 0.5 s out to the target
RETURN_BINS = 16  # 0.4 s back to the centre
REACH_DISTANCE = 0.08  # m, centre to target
HOLD, REACH, RETURN = 0, 1, 2  # the phases


@dataclass(frozen=True)
class ReachingTuning:
    """Ranges the neurons are drawn from; the defaults are the sample monkeys."""

    baseline: tuple[float, float] = (2.0, 15.0)  # Hz, the rate at rest
    depth: tuple[float, float] = (10.0, 40.0)  # Hz, the modulation at peak hand speed
    untuned: float = 0.1  # fraction of neurons without direction tuning (baseline only)
    preparatory: float = 0.5  # tuning to the coming reach while holding, a fraction of the peak modulation
    trial_gain_sd: float = 0.1  # sd of a lognormal gain per trial and neuron: trial-to-trial variability


@dataclass
class CosineCells:
    """Ground truth of the simulated neurons (one entry per neuron)."""

    preferred: np.ndarray  # (N,) rad, preferred direction, uniform on the circle
    baseline: np.ndarray  # (N,) Hz
    depth: np.ndarray  # (N,) Hz (0 for untuned neurons)
    tuned: np.ndarray  # (N,) bool


@dataclass
class ReachingSession:
    neural: np.ndarray  # (T, N) float32 spike counts
    labels: pd.DataFrame  # target (int64)
    targets: np.ndarray  # (n_trials,) int64, each trial's target
    trial: np.ndarray  # (T,) int64, the trial of each bin
    phase: np.ndarray  # (T,) int64, HOLD, REACH or RETURN
    hand: np.ndarray  # (T, 2) float64 m, hand position relative to the centre
    cells: CosineCells


def target_order(n_trials: int, rng: np.random.Generator) -> np.ndarray:
    """(n_trials,) targets, shuffled in runs of N_TARGETS: balanced (counts differ by at most 1) and random."""
    runs = -(-n_trials // N_TARGETS)
    return np.concatenate([rng.permutation(N_TARGETS) for _ in range(runs)])[:n_trials]


def cosine_cells(n_neurons: int, rng: np.random.Generator, tuning: ReachingTuning = ReachingTuning()) -> CosineCells:
    """Draw the neurons: preferred directions (uniform), baselines, depths, which are tuned."""
    tuned = rng.random(n_neurons) >= tuning.untuned
    return CosineCells(
        preferred=rng.uniform(0, 2 * np.pi, n_neurons),
        baseline=rng.uniform(*tuning.baseline, n_neurons),
        depth=rng.uniform(*tuning.depth, n_neurons) * tuned,
        tuned=tuned,
    )


def movement_profile(n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-jerk movement over ``n_bins``: (fraction of the distance covered, speed / peak speed)."""
    u = (np.arange(n_bins) + 0.5) / n_bins
    return 10 * u**3 - 15 * u**4 + 6 * u**5, 16 * u**2 * (1 - u) ** 2


def simulate_reaching(
    name: str,
    *,
    n_trials: int | None = None,
    n_neurons: int | None = None,
    seed: int = 0,
    tuning: ReachingTuning = ReachingTuning(),
    scale: float = 1.0,
) -> ReachingSession:
    """Simulate monkey ``name``: sizes from the name unless given (TRIALS_RANGE, NEURONS_RANGE), the
    number of trials from the name times ``scale`` (whole runs of the 8 targets); deterministic."""
    if n_trials is None:
        trials = size_from_name(name, "trials", *TRIALS_RANGE, step=N_TARGETS) * scale
        n_trials = max(N_TARGETS, N_TARGETS * round(trials / N_TARGETS))
    n_trials = int(n_trials)
    n_neurons = size_from_name(name, "neurons", *NEURONS_RANGE) if n_neurons is None else int(n_neurons)
    if n_trials < N_TARGETS or n_neurons < 1:
        raise ValueError(f"need n_trials >= {N_TARGETS} (every target) and n_neurons >= 1; got {n_trials}, {n_neurons}")
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])  # stable across runs (not hash())
    targets = target_order(n_trials, rng)
    holds = rng.integers(HOLD_BINS[0], HOLD_BINS[1] + 1, targets.size)
    cells = cosine_cells(n_neurons, rng, tuning)

    out, speed_out = movement_profile(REACH_BINS)
    back, speed_back = movement_profile(RETURN_BINS)
    trial, phase, distance, speed, direction = [], [], [], [], []
    for k, (target, hold) in enumerate(zip(targets, holds)):
        angle = 2 * np.pi * target / N_TARGETS
        length = hold + REACH_BINS + RETURN_BINS
        trial.append(np.full(length, k))
        phase.append(np.repeat([HOLD, REACH, RETURN], [hold, REACH_BINS, RETURN_BINS]))
        distance.append(np.concatenate([np.zeros(hold), out, 1 - back]))
        speed.append(np.concatenate([np.zeros(hold), speed_out, speed_back]))
        direction.append(np.concatenate([np.full(hold + REACH_BINS, angle), np.full(RETURN_BINS, angle + np.pi)]))
    trial, phase, distance, speed, direction = map(np.concatenate, (trial, phase, distance, speed, direction))
    target_angle = 2 * np.pi * targets[trial] / N_TARGETS
    hand = REACH_DISTANCE * distance[:, None] * np.stack([np.cos(target_angle), np.sin(target_angle)], axis=1)

    cosine = np.cos(direction[:, None] - cells.preferred)
    drive = speed + tuning.preparatory * (phase == HOLD)  # preparatory activity before the reach
    rate = np.maximum(cells.baseline + cells.depth * drive[:, None] * cosine, 0.0)
    sd = tuning.trial_gain_sd
    gain = rng.lognormal(-sd**2 / 2, sd, (targets.size, n_neurons)) if sd > 0 else np.ones((targets.size, n_neurons))
    neural = rng.poisson(rate * gain[trial] * BIN_SECONDS).astype(np.float32)
    labels = pd.DataFrame({"target": targets[trial].astype(np.int64)})
    return ReachingSession(
        neural=neural, labels=labels, targets=targets.astype(np.int64), trial=trial.astype(np.int64),
        phase=phase.astype(np.int64), hand=hand, cells=cells,
    )
