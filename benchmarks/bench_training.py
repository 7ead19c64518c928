"""Training speed of cebra_core against CEBRA 0.6.1, side by side, on sample sessions with the real shapes.

Each case runs in a fresh subprocess (so its peak memory is its own) and prints it/s, wall time
and peak RSS. CEBRA 0.6.1 runs in whichever interpreter has it: this one, or the one given with
--cebra-python (e.g. a separate venv with `pip install torch==2.13.0 cebra==0.6.1`).

    python benchmarks/bench_training.py                      # cebra_core only
    python benchmarks/bench_training.py --cebra-python .venv-cebra/bin/python
    python benchmarks/bench_training.py --quick              # fewer iterations
    python benchmarks/bench_training.py --device cuda --cases achilles cicero multi --scale 10
    python benchmarks/bench_training.py --family             # every architecture, conditional, distance, label kind

On a GPU (--device cuda, cuda:N or mps) the device is synchronised before and after every timed
fit, and the peak GPU memory (torch.cuda.max_memory_allocated) is reported as well.
--compile MODE runs cebra_core's training step through torch.compile(mode=MODE) (an experiment of
this benchmark only: "reduce-overhead" uses CUDA graphs on a GPU; the engine does not compile).

The rate is measured as (n2 - n1) / (t(n2) - t(n1)) over two fits of n1 and n2 iterations (the
best of --repeats such measurements, for both implementations alike), so
set-up costs (index building, model init) cancel for both implementations; a short fit before
them absorbs one-time warm-up (lazy initialisation, kernel selection).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

RATS = ("achilles", "buddy", "gatsby", "cicero")
CASES = RATS + ("multi", "T1e4", "T1e6")  # --cases: single-session per rat, four-rat multi-session, T-scaling
DEMO = dict(model_architecture="offset10-model", batch_size=512, learning_rate=3e-4, temperature=1.0,
            output_dimension=3, distance="cosine", conditional="time_delta", time_offsets=10, verbose=False)
ARCHITECTURES = ("offset1-model", "offset1-model-mse", "offset5-model", "offset10-model", "offset10-model-mse",
                 "offset36-model")  # cebra_core.engine.architectures, spelled out: the benchmark runs either library
# --family: (name, parameters changed from DEMO, labels: rat track / discrete (position in 4 classes) / open field)
FAMILY = (
    [(arch, {"model_architecture": arch} | ({"distance": "euclidean"} if arch.endswith("-mse") else {}), "track")
     for arch in ARCHITECTURES]
    + [("conditional time", {"conditional": "time"}, "track"),
       ("conditional delta", {"conditional": "delta", "delta": 0.05}, "track"),
       ("euclidean, auto temperature", {"model_architecture": "offset10-model-mse", "distance": "euclidean",
                                        "temperature_mode": "auto"}, "track"),
       ("discrete label", {}, "discrete"),
       ("discrete + continuous", {}, "mixed"),
       ("2-D label (open field)", {}, "openfield")]
)


def write_sessions(names: list[str], length: int | None, path: str, labels: str = "track") -> None:
    """Simulate sessions with the real shapes (or a synthetic length, for the T-scaling case) into an
    .npz, with the labels of the kind asked: the rat track (T, 3) float, a discrete label (the track's
    position in 4 classes, int), both, or an open field's (x, y) (mice of the rats' lengths)."""
    import numpy as np

    from cebra_core.sessions.rats import RAT_SHAPES
    from cebra_core.sessions.simulate import simulate, simulate_session
    from cebra_core.sessions.simulate_openfield import simulate_openfield

    if labels == "openfield":
        sims = [simulate_openfield(n, n_bins=RAT_SHAPES[n][0], n_neurons=RAT_SHAPES[n][1]) for n in names]
        arrays = {f"neural{i}": s.neural for i, s in enumerate(sims)}
        arrays |= {f"labels{i}_0": s.labels[["x", "y"]].to_numpy(np.float32) for i, s in enumerate(sims)}
        np.savez(path, **arrays)
        return
    sims = [simulate(length, RAT_SHAPES[names[0]][1], seed=0)] if length is not None else [simulate_session(n) for n in names]
    arrays = {f"neural{i}": s.neural for i, s in enumerate(sims)}
    for i, s in enumerate(sims):
        classes = np.minimum((s.labels[:, 0] / 1.6 * 4).astype(np.int64), 3)
        parts = {"track": [s.labels], "discrete": [classes], "mixed": [s.labels, classes]}[labels]
        arrays |= {f"labels{i}_{j}": part for j, part in enumerate(parts)}
    np.savez(path, **arrays)


def _read_sessions(path: str):
    """([neural per session], [[label arrays] per session])."""
    import numpy as np

    with np.load(path) as f:
        count = sum(name.startswith("neural") for name in f.files)
        labels = [[f[name] for name in sorted(n for n in f.files if n.startswith(f"labels{i}_"))] for i in range(count)]
        return [f[f"neural{i}"] for i in range(count)], labels


def _synchronize(device: str) -> None:
    """Wait for the device's queued work, so that a timer reads the work done, not the work queued."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


def _compile_step(mode: str) -> None:
    """Run cebra_core's fits with their training step compiled by torch.compile(mode=mode)."""
    import torch

    from cebra_core.engine import training

    compiled = torch.compile(training.contrastive_step, mode=mode)
    training.train.__kwdefaults__["step"] = compiled  # the default `step` of every fit in this process


def _fit_seconds(impl: str, neural, labels, iterations: int, device: str, params: dict) -> float:
    multi = len(neural) > 1
    X = neural if multi else neural[0]
    ys = [[session[j] for session in labels] for j in range(len(labels[0]))] if multi else labels[0]
    if params.get("conditional") == "time":
        ys = []  # CEBRA-Time: no labels (CEBRA's own way to ask for it)
    if impl == "cebra":
        import cebra

        model = cebra.CEBRA(max_iterations=iterations, device=device, **params)
    else:
        from cebra_core import CEBRA

        model = CEBRA(max_iterations=iterations, device=device, seed=0, **params)
    _synchronize(device)
    start = time.perf_counter()
    model.fit(X, *ys)
    _synchronize(device)
    return time.perf_counter() - start


def run_case(impl: str, data: str, n1: int, n2: int, device: str, repeats: int, compile_mode: str = "none",
             params: str = "{}") -> dict:
    """Runs inside the subprocess: two fits, the rate from their difference, peak memory."""
    import torch

    torch.manual_seed(0)
    params = DEMO | json.loads(params)
    if compile_mode != "none" and impl == "cebra_core":
        _compile_step(compile_mode)
    neural, labels = _read_sessions(data)
    _fit_seconds(impl, neural, labels, 3, device, params)  # warm-up: lazy initialisation, kernel selection
    rates = []
    for _ in range(repeats):  # the best of a few: the machine is shared and noisy; same for both
        t1 = _fit_seconds(impl, neural, labels, n1, device, params)
        t2 = _fit_seconds(impl, neural, labels, n2, device, params)
        rates.append((n2 - n1) / max(t2 - t1, 1e-9))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"it_per_s": max(rates), "all_it_per_s": rates, "wall_s": t2, "iterations": n2, "peak_rss_mb": peak_mb}
    if device.startswith("cuda"):
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def spawn(python: str, impl: str, data: str, n1: int, n2: int, device: str, repeats: int,
          compile_mode: str = "none", params: dict | None = None) -> dict:  # fmt: skip
    cmd = [python, os.path.abspath(__file__), "--case", impl, data, str(n1), str(n2), device, str(repeats), compile_mode,
           json.dumps(params or {})]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cebra_python(given: str | None) -> str | None:
    if given:
        return given
    probe = subprocess.run([sys.executable, "-c", "import cebra"], capture_output=True)
    return sys.executable if probe.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs=8, help=argparse.SUPPRESS)
    parser.add_argument("--family", action="store_true",
                        help="CEBRA's family instead of the rats: every architecture, conditional, distance and label "
                             "kind, single-session (achilles) and multi-session (four rats)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per case; the best counts (default 3)")
    parser.add_argument("--cebra-python", help="interpreter that can `import cebra` (0.6.1)")
    parser.add_argument("--skip-cebra", action="store_true", help="cebra_core only, even where cebra is importable")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (noisier): --scale 1")
    parser.add_argument("--scale", type=int, default=2, help="iterations per measurement, as a multiple (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="which cases (default: all)")
    parser.add_argument("--compile", default="none", choices=("none", "default", "reduce-overhead", "max-autotune"),
                        help="torch.compile mode for cebra_core's training step (default none)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.case:
        impl, data, n1, n2, device, repeats, compile_mode, params = args.case
        print(json.dumps(run_case(impl, data, int(n1), int(n2), device, int(repeats), compile_mode, params)))
        return

    import torch

    from cebra_core.engine.estimator import resolve_device

    try:  # a device torch does not see: say so now, not in every case
        resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    scale = 1 if args.quick else args.scale
    gpu = args.device != "cpu"
    ours = {"single": (50 * scale, 250 * scale), "multi": (20 * scale, 70 * scale)}
    theirs = {"single": (5, 5 + 25 * scale), "multi": (3, 3 + 12 * scale)}
    cases = [(f"single {r}", [r], None, "single", {}, "track") for r in RATS if r in args.cases]
    cases += [("multi 4 rats", list(RATS), None, "multi", {}, "track")] * ("multi" in args.cases)
    cases += [("single T=10,000 (N=55)", ["cicero"], 10_000, "single", {}, "track")] * ("T1e4" in args.cases)
    cases += [("single T=1,000,000 (N=55)", ["cicero"], 1_000_000, "single", {}, "track")] * ("T1e6" in args.cases)
    if args.family:
        cases = [(f"{kind} {name}", ["achilles"] if kind == "single" else list(RATS), None, kind, params, labels)
                 for name, params, labels in FAMILY for kind in ("single", "multi")]
    cebra_python = None if args.skip_cebra else _cebra_python(args.cebra_python)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?") \
        if os.path.exists("/proc/cpuinfo") else "?"
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"{args.device}: {cpu}"
    print(f"device={args.device} ({name})  torch={torch.__version__}  threads={torch.get_num_threads()}  "
          f"compile={args.compile}  "
          f"CEBRA 0.6.1: {'yes (' + cebra_python + ')' if cebra_python else 'not importable, skipped'}")  # fmt: skip
    header = f"{'case':<44}{'cebra_core it/s':>16}{'wall s':>8}{'peak MB':>9}{'CEBRA it/s':>12}{'peak MB':>9}{'speed-up':>10}"
    header += f"{'GPU MB':>9}{'CEBRA GPU MB':>14}" if gpu else ""
    print(header)
    results = []
    scratch = tempfile.mkdtemp(prefix="bench_training_")
    for label, names, length, kind, params, labels in cases:
        data = os.path.join(scratch, "sessions.npz")
        write_sessions(names, length, data, labels)  # both implementations train on the very same arrays
        mine = spawn(sys.executable, "cebra_core", data, *ours[kind], args.device, args.repeats, args.compile, params)
        ref = {}
        # CEBRA 0.6.1 refuses a multi-session fit without labels, and mixed labels in multi-session
        cebra_can = not (kind == "multi" and (params.get("conditional") == "time" or labels == "mixed"))
        if cebra_python and length is None and cebra_can:
            ref = spawn(cebra_python, "cebra", data, *theirs[kind], args.device, args.repeats, params=params)
        row = {"case": label, "parameters": DEMO | params, "labels": labels, "cebra_core": mine, "cebra": ref}
        results.append(row)
        if "error" in mine:
            print(f"{label:<44} cebra_core failed: {mine['error']}")
            continue
        speedup = f"{mine['it_per_s'] / ref['it_per_s']:.1f}x" if ref.get("it_per_s") else "-"
        ref_rate = f"{ref['it_per_s']:.1f}" if ref.get("it_per_s") else ("error" if "error" in ref else "-")
        ref_mem = f"{ref['peak_rss_mb']:.0f}" if ref.get("peak_rss_mb") else "-"
        gpu_mem = ""
        if gpu:  # peak GPU memory (torch.cuda.max_memory_allocated; "-" where torch does not report it)
            ref_gpu = f"{ref['peak_gpu_mb']:.0f}" if ref.get("peak_gpu_mb") is not None else "-"
            gpu_mem = f"{mine['peak_gpu_mb']:>9.0f}" if mine.get("peak_gpu_mb") is not None else f"{'-':>9}"
            gpu_mem += f"{ref_gpu:>14}"
        print(f"{label:<44}{mine['it_per_s']:>16.1f}{mine['wall_s']:>8.1f}{mine['peak_rss_mb']:>9.0f}"
              f"{ref_rate:>12}{ref_mem:>9}{speedup:>10}{gpu_mem}", flush=True)  # fmt: skip
    shutil.rmtree(scratch, ignore_errors=True)
    scaling = {r["case"]: r["cebra_core"] for r in results if r["case"].startswith("single T=")}
    small, large = scaling.get("single T=10,000 (N=55)", {}), scaling.get("single T=1,000,000 (N=55)", {})
    if "it_per_s" in small and "it_per_s" in large:
        print(f"per-iteration time, T=1e6 vs T=1e4: {small['it_per_s'] / large['it_per_s']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
