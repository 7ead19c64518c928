"""Sampling speed: one `sample(batch)` step of our samplers against CEBRA 0.6.1's loaders, on the CPU.

Three kinds of label, each single-session (T samples) and multi-session (S x T samples):
- track: the rat track's 1-D position + right / left running flags (T, 3), as in the demo;
- openfield: an open field's x, y (T, 2);
- mixed: x, y and a discrete context (3 contexts in blocks).
All with conditional='time_delta', time_offsets=10. Ours: `make_sampler(...).sample(batch)` (the
nearest label from `NearestLabelIndex`: sorted arrays for the track, k-d trees for x, y). CEBRA's:
`get_indices(batch)` of the loader its estimator picks (ContinuousDataLoader / TimedeltaDistribution,
MixedDataLoader / MixedTimeDeltaDistribution, ContinuousMultiSessionDataLoader / MultisessionSampler;
float32 labels, its brute-force argmin over all T). CEBRA has no multi-session mixed sampler.

Each number is the median over --repeats blocks of timed steps (µs per step, steps/s), after a few
warm-up steps; building the sampler (index, tables) is timed once, apart. One torch / OpenMP thread.

    python benchmarks/bench_sampling.py                       # T = 50 000, 4 sessions, batch 512
    python benchmarks/bench_sampling.py --json results.json
    python benchmarks/bench_sampling.py --quick               # fewer repeats
    python benchmarks/bench_sampling.py --no-cebra            # ours only
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before torch / numpy start their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cebra_core.engine.sampling import Labels, make_sampler  # noqa: E402
from cebra_core.sessions.simulate import simulate_trajectory  # noqa: E402
from cebra_core.sessions.simulate_openfield import context_blocks, simulate_walk  # noqa: E402

KINDS = ("track", "openfield", "mixed")
DESCRIPTION = {"track": "1-D + 2 flags", "openfield": "2-D x, y", "mixed": "2-D + class"}
TIME_OFFSET = 10
GOAL = 1.5  # our 2-D step within this factor of our 1-D step


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def labels_for(kind: str, length: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(continuous (T, c) float32, discrete (T,) int64 or None) of one simulated session."""
    rng = np.random.default_rng(seed)
    if kind == "track":
        position, right, _ = simulate_trajectory(length, rng)
        return np.stack([position, right, ~right], 1).astype(np.float32), None
    xy = simulate_walk(length, rng).astype(np.float32)
    if kind == "openfield":
        return xy, None
    return xy, context_blocks(length, 3, rng).astype(np.int64)


def time_steps(step, steps: int, repeats: int, warmup: int) -> dict:
    """Median (and range) over `repeats` blocks of `steps` calls of step(), seconds per call."""
    for _ in range(warmup):
        step()
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        per_step.append((time.perf_counter() - start) / steps)
    median = statistics.median(per_step)
    return {"us_per_step": median * 1e6, "steps_per_s": 1.0 / median, "us_min": min(per_step) * 1e6,
            "us_max": max(per_step) * 1e6, "repeats": repeats, "steps_per_repeat": steps}


def ours(sessions, batch: int, steps: int, repeats: int) -> dict:
    labels = [Labels(torch.from_numpy(c), None if d is None else torch.from_numpy(d)) for c, d in sessions]
    start = time.perf_counter()
    sampler = make_sampler(labels, conditional="time_delta", time_offset=TIME_OFFSET, delta=None, seed=0,
                           device="cpu", multi=len(sessions) > 1)
    build = time.perf_counter() - start
    out = time_steps(lambda: sampler.sample(batch), steps, repeats, warmup=3)
    return out | {"build_s": build, "search": sampler.index.mode}


def cebra_loader(sessions, batch: int):
    """The loader CEBRA's estimator builds for these labels (float32, as its sklearn dataset casts them)."""
    import cebra.data

    def dataset(c, d):
        return cebra.data.TensorDataset(torch.zeros(len(c), 1), continuous=torch.from_numpy(c),
                                        discrete=None if d is None else torch.from_numpy(d))

    options = dict(num_steps=1, batch_size=batch, time_offset=TIME_OFFSET)
    if len(sessions) > 1:
        if sessions[0][1] is not None:
            return None  # CEBRA 0.6.1 has no multi-session mixed sampler
        collection = cebra.data.DatasetCollection(*[dataset(c, d) for c, d in sessions])
        return cebra.data.ContinuousMultiSessionDataLoader(collection, **options)
    c, d = sessions[0]
    if d is not None:
        return cebra.data.MixedDataLoader(dataset(c, d), **options)
    return cebra.data.ContinuousDataLoader(dataset(c, d), conditional="time_delta", **options)


def theirs(sessions, batch: int, steps: int, repeats: int) -> dict | None:
    start = time.perf_counter()
    loader = cebra_loader(sessions, batch)
    if loader is None:
        return None
    build = time.perf_counter() - start
    return time_steps(lambda: loader.get_indices(batch), steps, repeats, warmup=1) | {"build_s": build,
                                                                                   "search": "brute force"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=50_000, help="samples per session (T)")
    parser.add_argument("--sessions", type=int, default=4, help="sessions of the multi-session cases")
    parser.add_argument("--batch", type=int, default=512, help="batch size (per session, multi-session)")
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per case (the median is reported)")
    parser.add_argument("--steps", type=int, default=40, help="our steps per timed block")
    parser.add_argument("--cebra-steps", type=int, default=3, help="CEBRA's steps per timed block")
    parser.add_argument("--quick", action="store_true", help="3 repeats of fewer steps")
    parser.add_argument("--no-cebra", action="store_true", help="time ours only")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.steps, args.cebra_steps = 3, 10, 1
    torch.set_num_threads(1)

    cebra_version = None
    if not args.no_cebra:
        try:
            import cebra

            cebra_version = cebra.__version__
        except ImportError:
            print("CEBRA is not importable here: timing ours only")
    machine = {"cpu": cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "torch": torch.__version__, "numpy": np.__version__, "cebra": cebra_version,
               "python": platform.python_version(), "load_before": os.getloadavg()}
    print(f"CPU: {machine['cpu']} ({machine['cpus']} CPUs, torch threads {machine['torch_threads']}); "
          f"torch {machine['torch']}, numpy {machine['numpy']}, CEBRA {cebra_version or '-'}; "
          f"load average {machine['load_before'][0]:.2f}")
    print(f"T = {args.length} per session, batch {args.batch}, time_offsets {TIME_OFFSET}; median of {args.repeats} "
          f"blocks ({args.steps} steps ours, {args.cebra_steps} CEBRA's)\n")

    header = (f"{'layout':<15}{'labels':<15}{'impl':<9}{'search':<12}{'build s':>9}{'us/step':>12}"
              f"{'steps/s':>10}{'min-max us':>20}{'vs our 1-D':>11}{'CEBRA/ours':>11}")
    print(header)
    print("-" * len(header))
    results = []
    for layout, count in (("single", 1), (f"multi {args.sessions}x", args.sessions)):
        reference = None
        for kind in KINDS:
            sessions = [labels_for(kind, args.length, seed=s) for s in range(count)]
            rows = [("ours", ours(sessions, args.batch, args.steps, args.repeats))]
            if cebra_version:
                rows.append(("CEBRA", theirs(sessions, args.batch, args.cebra_steps, args.repeats)))
            mine = rows[0][1]["us_per_step"]
            if kind == "track":
                reference = mine
            for impl, r in rows:
                if r is None:
                    print(f"{layout:<15}{DESCRIPTION[kind]:<15}{impl:<9}{'(none: CEBRA has no multi-session mixed)'}")
                    results.append({"layout": layout, "labels": kind, "impl": impl, "available": False})
                    continue
                ratio = r["us_per_step"] / reference if impl == "ours" else None
                speedup = r["us_per_step"] / mine if impl == "CEBRA" else None
                print(f"{layout:<15}{DESCRIPTION[kind]:<15}{impl:<9}{r['search']:<12}{r['build_s']:>9.2f}"
                      f"{r['us_per_step']:>12.0f}{r['steps_per_s']:>10.1f}"
                      f"{r['us_min']:>10.0f}-{r['us_max']:<9.0f}"
                      f"{'' if ratio is None else f'{ratio:.2f}x':>11}"
                      f"{'' if speedup is None else f'{speedup:.0f}x':>11}",
                      flush=True)
                results.append({"layout": layout, "sessions": count, "length": args.length, "batch": args.batch,
                                "labels": kind, "impl": impl, "available": True, "vs_our_1d": ratio,
                                "cebra_over_ours": speedup, **r})
    machine["load_after"] = os.getloadavg()

    print()
    goal = {}
    for layout in ("single", f"multi {args.sessions}x"):
        ours_rows = {r["labels"]: r for r in results if r["layout"] == layout and r["impl"] == "ours"}
        for kind in ("openfield", "mixed"):
            ratio = ours_rows[kind]["us_per_step"] / ours_rows["track"]["us_per_step"]
            goal[f"{layout} {kind}"] = ratio
            print(f"goal ({layout}, {DESCRIPTION[kind]}): our 2-D step / our 1-D step = {ratio:.2f} "
                  f"({'within' if ratio <= GOAL else 'OVER'} {GOAL}x)")
    print(f"load average after: {machine['load_after'][0]:.2f} (another process on this machine slows every number)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "settings": vars(args), "results": results, "goal_ratios": goal,
                       "goal": GOAL}, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
