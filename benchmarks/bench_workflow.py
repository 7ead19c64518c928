"""Wall time of the whole workflow, rule by rule, on full-size simulated rats; extrapolated to the
demo's 15000 iterations.

Runs `snakemake` on config/sample.yaml with the rats at full size (data.simulate.scale 1.0, the
real sessions' lengths), the demo's batch size and the given number of iterations, in a fresh
folder per run, and reads every job's `benchmark:` file. With two or more iteration counts, each
rule's time is fitted as a + b * iterations and extrapolated to --extrapolate iterations (setup
costs cancel out of the slope); the wall time likewise.

    python benchmarks/bench_workflow.py --iterations 300 900 --cores 2
    python benchmarks/bench_workflow.py --iterations 300 900 --cores 2 --targets \\
        results/figures/embeddings.png results/figures/consistency.png      # the notebook's job
    python benchmarks/bench_workflow.py --iterations 300 --cores 4 --seeds 0 1 2

Benchmark alone: other processes on the machine change the numbers.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TRAINING_RULES = {"fit", "adapt_session"}  # their time grows with the iterations; the others' does not


def run(iterations: int, args: argparse.Namespace, root: Path) -> tuple[float, dict[str, list[float]]]:
    """One workflow run: its wall time and {rule: [seconds of each job]} from the benchmark files."""
    work = root / f"it{iterations}"
    config = yaml.safe_load((REPO / "config/sample.yaml").read_text())
    config["data"]["simulate"]["scale"] = args.scale
    config["cebra"].update(batch_size=args.batch_size, max_iterations=iterations, checkpoint_every=iterations)
    config["new_session"]["iterations"] = iterations
    config["seeds"] = args.seeds
    config["fit_threads"] = args.fit_threads
    work.mkdir(parents=True)
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", *args.targets, "--directory", str(work), "--cores", str(args.cores),
               "--configfile", str(work / "config.yaml")]
    # the session tables and their check first, outside the wall time (the same for every iteration
    # count); their benchmark files are still reported
    subprocess.run([*command[:3], "--directory", str(work), "--cores", str(args.cores), "--configfile",
                    str(work / "config.yaml"), "--until", "check_sessions", "--quiet", "all"],
                   cwd=REPO, check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run([*command, "--quiet", "all"], cwd=REPO, check=True, capture_output=True)
    wall = time.perf_counter() - start
    per_rule: dict[str, list[float]] = defaultdict(list)
    for tsv in (work / "results/benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(work / "results/benchmarks").parts[0]
        with open(tsv) as handle:
            per_rule[rule] += [float(row["s"]) for row in csv.DictReader(handle, delimiter="\t")]
    return wall, per_rule


def extrapolate(points: list[tuple[int, float]], target: int) -> float:
    """Least-squares line through (iterations, seconds), evaluated at target (the last value alone: as is)."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my + slope * (target - mx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[300, 900])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--fit-threads", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--extrapolate", type=int, default=15000)
    parser.add_argument("--targets", nargs="*", default=[])
    args = parser.parse_args()

    # warm-up: the first import of torch after boot reads ~1 GB from disk; not the workflow's time
    subprocess.run([sys.executable, "-c", "import torch, pandas"], cwd=REPO, check=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-workflow-") as root:
        for iterations in args.iterations:
            results[iterations] = run(iterations, args, Path(root))
            print(f"{iterations} iterations: {results[iterations][0]:.1f} s wall", flush=True)

    rules = sorted({rule for _, per_rule in results.values() for rule in per_rule})
    head = " | ".join(f"{it} it (s)" for it in args.iterations)
    print(f"\n--cores {args.cores}, fit_threads {args.fit_threads}, scale {args.scale}, batch {args.batch_size}, "
          f"seeds {args.seeds}, targets {args.targets or ['all']}\n")
    print(f"| rule | jobs | {head} | {args.extrapolate} it, extrapolated (s) |")
    print("| --- | ---: | " + " | ".join("---:" for _ in args.iterations) + " | ---: |")
    for rule in rules:
        totals = [(it, sum(results[it][1].get(rule, []))) for it in args.iterations]
        jobs = len(results[args.iterations[-1]][1].get(rule, []))
        cells = " | ".join(f"{t:.1f}" for _, t in totals)
        at_target = extrapolate(totals, args.extrapolate) if rule in TRAINING_RULES else sum(t for _, t in totals) / len(totals)
        print(f"| {rule} | {jobs} | {cells} | {at_target:.0f} |")
    walls = [(it, results[it][0]) for it in args.iterations]
    cells = " | ".join(f"{w:.1f}" for _, w in walls)
    print(f"| **wall** | | {cells} | {extrapolate(walls, args.extrapolate):.0f} |")


if __name__ == "__main__":
    main()
