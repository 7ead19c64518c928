"""Benchmark: a new animal online, causal against centred (non-causal) models, held out.

For each data set and seed, with the new animal's last 20 % as its test part (no model sees it):
- full training: a multi-session fit of the trained animals and the new animal's first 80 %
  (with --full-at, also its first k seconds only), causal and centred; the test part decoded by a
  kNN decoder fitted on the trained animals' embeddings (`err_pooled`) and by one fitted on the new
  animal's own training part (`err_own`);
- online: a multi-session fit of the trained animals alone (causal, and centred for the offline
  line), the new animal adapted on its first k seconds (`--seconds`), the rest embedded bin by bin
  through a stream (causal) or in one batch (centred), the same test part decoded (`err_pooled`);
  the adaptation's seconds and the latency per streamed bin (one torch thread: median, 99th percentile).
Errors are median absolute position errors in cm.

Data:
- `real`: buddy trained, achilles (254 s, 120 neurons: the demo's model) the new animal
  (`$CEBRA_SHARED_DATA/rat_hippocampus`, see its README);
- `sim`: simulated achilles, buddy, cicero trained, simulated gatsby (425 s) the new animal, at full length.

    PYTHONPATH=src python benchmarks/bench_online.py [--data real sim] [--seeds 0 1 2]
        [--iterations 1500] [--adapt-iterations 1000] [--batch-size 256] [--seconds 30 60 120 300]
        [--threads 2] [--methods default ...] [--full-at SECONDS ...] [--json out.json]

With --json, a data set and seed already in that file are not run again: a stopped run resumes.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cebra_core import CEBRA
from cebra_core.analysis.decoding import decode
from cebra_core.analysis.replay import adapt_first, batch_rest, latency_summary, stream_rest, trained_embedding
from cebra_core.sessions.rats import BIN_SECONDS
from cebra_core.sessions.simulate import simulate_session
from real_sessions import load_real

TEST_FRACTION = 0.2
N_NEIGHBORS = 36  # the workflow's decoding_neighbors default
DATA = {"real": (("buddy",), "achilles"), "sim": (("achilles", "buddy", "cicero"), "gatsby")}
# name -> CEBRA.adapt keywords ("iterations_factor" multiplies --adapt-iterations)
METHODS = {
    "default": {},
    "first layer": dict(layers="first"),
    "own negatives": dict(own_negatives=True),
    "2x iterations": dict(iterations_factor=2),
}


def load(kind: str, seed: int) -> tuple[dict, str]:
    """{animal: (neural, labels (T, 3))}, the new animal's name."""
    trained, new = DATA[kind]
    if kind == "real":
        return {r: load_real(r) for r in (*trained, new)}, new
    sims = {r: simulate_session(r, seed=seed) for r in (*trained, new)}
    return {r: (s.neural, s.labels) for r, s in sims.items()}, new


def cm(z_train, y_train, z_test, y_test) -> float:
    """Median absolute position error (cm) of the kNN decoder."""
    return 100 * decode(z_train, y_train, z_test, y_test, "continuous", N_NEIGHBORS)["median_abs_error"][0]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def run_seed(kind: str, seed: int, args) -> list[dict]:
    data, new = load(kind, seed)
    trained = [r for r in data if r != new]
    X, y = data[new]
    split = len(X) - int(round(len(X) * TEST_FRACTION))
    test_y = y[split:, 0]
    trained_X = [data[r][0] for r in trained]
    trained_y = [data[r][1] for r in trained]
    pooled_y = np.concatenate([labels[:, 0] for labels in trained_y])
    params = dict(batch_size=args.batch_size, max_iterations=args.iterations, seed=seed, device="cpu")
    rows = []

    def add(**row) -> None:
        rows.append({"data": kind, "seed": seed, "new": new, **row})
        print("  " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
              flush=True)

    for causal in (True, False):
        window = "causal" if causal else "centred"
        started = time.perf_counter()
        full = CEBRA(causal=causal, **params).fit(trained_X + [X[:split]], trained_y + [y[:split]])
        seconds = time.perf_counter() - started
        z = full.transform(X, session_id=len(trained))
        add(window=window, method="full training", seconds_of_data=split * BIN_SECONDS, fit_seconds=seconds,
            err_pooled=cm(trained_embedding(full, trained_X), pooled_y, z[split:], test_y),
            err_own=cm(z[:split], y[:split, 0], z[split:], test_y))
        for length in args.full_at:  # full training on no more of the new animal than an adaptation sees
            bins = int(round(length / BIN_SECONDS))
            started = time.perf_counter()
            short = CEBRA(causal=causal, **params).fit(trained_X + [X[:bins]], trained_y + [y[:bins]])
            seconds = time.perf_counter() - started
            z = short.transform(X, session_id=len(trained))
            add(window=window, method="full training", seconds_of_data=float(length), fit_seconds=seconds,
                err_pooled=cm(trained_embedding(short, trained_X), pooled_y, z[split:], test_y),
                err_own=cm(z[:bins], y[:bins, 0], z[split:], test_y))
        started = time.perf_counter()
        base = CEBRA(causal=causal, **params).fit(trained_X, trained_y)
        fit_seconds = time.perf_counter() - started
        for length in args.seconds:
            bins = int(round(length / BIN_SECONDS))
            if bins > split:
                print(f"  {new}: {length} s is beyond its first {1 - TEST_FRACTION:.0%}; skipped", flush=True)
                continue
            for method in args.methods if causal else args.methods[:1]:
                options = dict(METHODS[method])
                iterations = int(args.adapt_iterations * options.pop("iterations_factor", 1))
                model = copy.deepcopy(base)
                new_id, adapt_seconds = adapt_first(model, X, [y], bins, iterations, **options)
                extra = {}
                if causal:
                    threads = torch.get_num_threads()
                    torch.set_num_threads(1)
                    rest, latency = stream_rest(model, new_id, X, bins)
                    torch.set_num_threads(threads)
                    extra = latency_summary(latency)
                else:
                    rest = batch_rest(model, new_id, X, bins)
                add(window=window, method="adapted" if method == "default" else f"adapted, {method}",
                    seconds_of_data=float(length), fit_seconds=fit_seconds, adapt_seconds=adapt_seconds,
                    err_pooled=cm(trained_embedding(model, trained_X), pooled_y, rest[split - bins:], test_y), **extra)
    return rows


def summary(rows: list[dict]) -> str:
    """Markdown: mean ± sd over seeds per data set, window, method and seconds of data."""
    lines = ["| data | window | method | seconds of data | err_pooled (cm) | err_own (cm) | adapt s | latency median / p99 (ms) | n |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def cell(values, digits=1) -> str:
        v = np.array([x for x in values if x is not None], dtype=float)
        if v.size == 0:
            return ""
        return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if v.size > 1 else 0:.{digits}f}"

    keys = dict.fromkeys((r["data"], r["window"], r["method"], r["seconds_of_data"]) for r in rows)
    for key in keys:
        sel = [r for r in rows if (r["data"], r["window"], r["method"], r["seconds_of_data"]) == key]
        latency = ""
        if "latency_median_ms" in sel[0]:
            latency = f"{cell([r['latency_median_ms'] for r in sel], 3)} / {cell([r['latency_p99_ms'] for r in sel], 3)}"
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]:.0f} | {cell([r['err_pooled'] for r in sel])} | "
                     f"{cell([r.get('err_own') for r in sel])} | {cell([r.get('adapt_seconds') for r in sel])} | "
                     f"{latency} | {len(sel)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=["real", "sim"], choices=list(DATA))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=1500, help="fit iterations")
    parser.add_argument("--adapt-iterations", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seconds", nargs="+", type=float, default=[30, 60, 120, 300])
    parser.add_argument("--full-at", nargs="*", type=float, default=[],
                        help="also full training on only the new animal's first seconds, for each of these")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the fits (the stream: 1)")
    parser.add_argument("--methods", nargs="+", default=["default"], choices=list(METHODS),
                        help="adaptation methods of the causal model (the centred one: the first)")
    parser.add_argument("--json", type=Path, default=None, help="also write all rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    print(f"{cpu_name()}, torch {torch.__version__}, {args.threads} threads; fits {args.iterations}, adapt "
          f"{args.adapt_iterations} iterations, batch {args.batch_size}", flush=True)
    done = json.loads(args.json.read_text()) if args.json is not None and args.json.is_file() else []
    rows = []
    for kind in args.data:
        for seed in args.seeds:
            finished = [r for r in done if r["data"] == kind and r["seed"] == seed]
            rows += finished or run_seed(kind, seed, args)
            if args.json is not None:
                args.json.write_text(json.dumps(rows, indent=1))
    print(summary(rows))


if __name__ == "__main__":
    main()
