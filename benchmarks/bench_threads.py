"""Threads against concurrency on a small CPU: one fit with all the CPUs' threads, or several
1-thread fits side by side? (the whole workflow's question: `fit_threads` and `--cores`).

Each case runs in fresh processes started together; a fit's rate is (n2 - n1) / (t(n2) - t(n1))
over two fits of n1 and n2 iterations (set-up cancels), as in bench_training.py.

    python benchmarks/bench_threads.py                  # achilles-sized single, four-rat multi
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_training import RATS, run_case, write_sessions  # noqa: E402

ITERATIONS = {"single": (50, 250), "multi": (20, 80)}


def child(data: str, threads: int, n1: int, n2: int) -> dict:
    """One fit's rate with `threads` threads (bench_training's measurement, one repeat)."""
    import torch

    torch.set_num_threads(threads)
    return run_case("cebra_core", data, n1, n2, "cpu", repeats=1)


def run_together(data: str, threads: list[int], n1: int, n2: int) -> list[float]:
    """Start one process per entry of `threads` at once; their rates."""
    procs = [subprocess.Popen([sys.executable, __file__, "--child", data, str(t), str(n1), str(n2)],
                              stdout=subprocess.PIPE, text=True) for t in threads]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1])["it_per_s"] for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    if args.child:
        data, threads, n1, n2 = args.child
        print(json.dumps(child(data, int(threads), int(n1), int(n2))))
        return
    cpus = args.cpus
    print(f"CPUs: {cpus}")
    print(f"{'case':<26}{'layout':<28}{'it/s per fit':>24}{'total it/s':>12}")
    with tempfile.TemporaryDirectory() as scratch:
        for kind, names in (("single", ["achilles"]), ("multi", list(RATS))):
            data = os.path.join(scratch, f"{kind}.npz")
            write_sessions(names, None, data)
            label = "single, achilles-sized" if kind == "single" else "multi, four rats"
            for layout, threads in ((f"1 fit x {cpus} threads", [cpus]), ("1 fit x 1 thread", [1]),
                                    (f"{cpus} fits x 1 thread at once", [1] * cpus)):
                rates = run_together(data, threads, *ITERATIONS[kind])
                print(f"{label:<26}{layout:<28}{' + '.join(f'{r:.1f}' for r in rates):>24}{sum(rates):>12.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
