"""The CEBRA paper's decoding protocol on the real rats, cebra_core beside CEBRA 0.6.1: CEBRA's
3-fold trial split (cebra_core.analysis.trials), encoder fitted on the train trials, kNN decoder fitted on
the train trials' embedding with k chosen on the validation trials, median absolute position
error and R² on the test trials; per (engine, rat, split number, seed).

    CEBRA_SHARED_DATA=../shared/data python benchmarks/trial_protocol.py --engines cebra_core --seeds 0 1 2
    ... --summary                 # only print the tables of the results written so far

Fit settings: the paper's CEBRA-Behavior runs behind Table S2 and Fig. 2d (PAPER_FIT below).
One JSON file per (engine, rat, split, seed) under --out/<settings>/, written atomically; a run
skips the ones already there, so it can be stopped and started again (a cebra_core fit also
resumes from its checkpoint). The summary averages each seed over its split numbers, then gives
mean ± sd over seeds (numpy's sd, ddof=0, as the paper's Table S2 does).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from real_sessions import FILES, load_real  # noqa: E402

from cebra_core import CEBRA  # noqa: E402
from cebra_core.analysis.decoding import K_GRID, validated_decode  # noqa: E402
from cebra_core.analysis.splits import transform_runs  # noqa: E402
from cebra_core.analysis.trials import TRIAL_SPLITS, TrialSplit  # noqa: E402

# The CEBRA-Behavior fits behind the paper's Table S2 (and Fig. 2d): every row of
# AdaptiveMotorControlLab/cebra-figures data/results_v1/cebra-b.csv (read by src/Figure2.py) has
# these settings; its test_position_error for rat 0 (achilles), averaged over the 3 splits ("repeat")
# per seed, is 5.459 ± 0.201 cm over its 10 seeds (ddof=0) = Table S2's 5.46 ± 0.20
# (src/SupplTableS1S2.py prints that file's key cebra_10_b the same way).
PAPER_FIT = dict(model_architecture="offset10-model", output_dimension=3, num_hidden_units=64, batch_size=20000,
                 learning_rate=0.0020507814090484, temperature=1.265961498923956, max_iterations=1000,
                 time_offsets=10, distance="cosine", conditional="time_delta")
# The same file's means ± sd (ddof=0) over its 10 seeds, per rat: median error (cm), R² of
# position, and the k its decoders chose.
PAPER_SCORES = {"achilles": (5.459, 0.201, 0.875, 0.010, "1,4,9,16,25"),
                "buddy": (13.481, 0.236, 0.506, 0.023, "4,9,16,25")}
ENGINES = ("cebra_core", "cebra")


def fit_transform(engine: str, x: np.ndarray, y: np.ndarray, seed: int, fit: dict, device: str, checkpoint: Path):
    """Fit one encoder on (x, y); return its transform and final loss."""
    if engine == "cebra_core":
        model = CEBRA(**fit, device=device, seed=seed, checkpoint_path=str(checkpoint))
        model.fit(x, y)
        return model.transform, float(model.loss_history_[-1])
    import cebra  # CEBRA 0.6.1; it has no seed parameter and seeds its samplers from OS entropy

    torch.manual_seed(seed)
    np.random.seed(seed)
    model = cebra.CEBRA(**fit, device=device, verbose=False)
    model.fit(x, y)
    return model.transform, float(model.state_dict_["loss"][-1])


def run_one(engine, rat, x, y, split_no, seed, fit, k_grid, device, path: Path) -> dict:
    """Fit on the train trials, decode the test trials (k chosen on validation); write ``path``."""
    parts = TrialSplit(split_no).parts(y)
    train = parts == "train"
    started = time.perf_counter()
    transform, loss = fit_transform(engine, x[train], y[train], seed, fit, device, path.with_suffix(".ckpt.pt"))
    seconds = time.perf_counter() - started
    z = transform_runs(transform, x, parts)
    rows = {part: parts == part for part in ("train", "validation", "test")}
    result = validated_decode(z[rows["train"]], y[rows["train"], 0], z[rows["validation"]], y[rows["validation"], 0],
                              z[rows["test"]], y[rows["test"], 0], k_grid=k_grid)
    record = {"engine": engine, "rat": rat, "split": split_no, "seed": seed,
              "median_error_cm": 100 * result.test["median_abs_error"][0], "r2": result.test["r2"][0], "k": result.k,
              "validation_error_cm": {str(k): 100 * v for k, v in result.validation.items()},
              "n_train": int(rows["train"].sum()), "n_validation": int(rows["validation"].sum()),
              "n_test": int(rows["test"].sum()), "fit_seconds": seconds, "final_loss": loss,
              "threads": torch.get_num_threads(), "device": device}
    _write_atomically(path, record)
    path.with_suffix(".ckpt.pt").unlink(missing_ok=True)
    return record


def _write_atomically(path: Path, data: dict) -> None:
    """Write JSON so a reader (or a second run) never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def settings_dir(out: Path, fit: dict, k_grid) -> Path:
    """One folder per fit settings and k grid (results of other settings never mix)."""
    settings = {"fit": fit, "k_grid": list(k_grid)}
    tag = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    folder = out / f"it{fit['max_iterations']}-b{fit['batch_size']}-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder / "settings.json", settings)
    return folder


def _mean_sd(values, digits: int) -> str:
    """mean ± sd with numpy's sd (ddof=0, as the paper's Table S2); n/a for one value."""
    values = np.asarray(values, dtype=np.float64)
    sd = f"{values.std(ddof=0):.{digits}f}" if len(values) > 1 else "n/a"
    return f"{values.mean():.{digits}f} ± {sd}"


def summary_rows(folder: Path) -> list[list[str]]:
    """One row per (engine, rat): seeds x splits, median error and R² (mean ± sd over seeds, each
    seed averaged over its splits), the k chosen, minutes per fit; then the paper's rows."""
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*/*/*.json"))]
    rows = []
    for engine in ENGINES:
        for rat in sorted({r["rat"] for r in records}):
            mine = [r for r in records if r["engine"] == engine and r["rat"] == rat]
            if not mine:
                continue
            seeds = sorted({r["seed"] for r in mine})
            per_seed = [[r for r in mine if r["seed"] == s] for s in seeds]
            error = [np.mean([r["median_error_cm"] for r in rs]) for rs in per_seed]
            r2 = [np.mean([r["r2"] for r in rs]) for rs in per_seed]
            splits = sorted({r["split"] for r in mine})
            ks = ",".join(map(str, sorted({r["k"] for r in mine})))
            minutes = np.mean([r["fit_seconds"] for r in mine]) / 60
            rows.append([engine, rat, f"{len(seeds)} x {splits}", _mean_sd(error, 2), _mean_sd(r2, 3), ks,
                         f"{minutes:.1f}"])
    for rat, (error, error_sd, r2, r2_sd, ks) in PAPER_SCORES.items():
        rows.append(["paper (cebra-figures)", rat, "10 x [0, 1, 2]", f"{error:.2f} ± {error_sd:.2f}",
                     f"{r2:.3f} ± {r2_sd:.3f}", ks, ""])
    return rows


HEADER = ["engine", "rat", "seeds x splits", "median error (cm)", "R²", "k chosen", "min/fit"]


def print_tables(folder: Path) -> None:
    rows = summary_rows(folder)
    widths = [max(len(str(c)) for c in col) for col in zip(HEADER, *rows)]
    print(f"\nresults in {folder} (mean ± sd over seeds, ddof=0; each seed averaged over its splits)")
    for row in [HEADER, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print("\n| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rats", nargs="+", default=["achilles", "buddy"], choices=sorted(FILES))
    parser.add_argument("--engines", nargs="+", default=["cebra_core"], choices=ENGINES)
    parser.add_argument("--splits", type=int, nargs="+", default=list(range(TRIAL_SPLITS)))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iterations", type=int, default=PAPER_FIT["max_iterations"])
    parser.add_argument("--batch-size", type=int, default=PAPER_FIT["batch_size"])
    parser.add_argument("--k-grid", type=int, nargs="+", default=list(K_GRID))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/trial_protocol"))
    parser.add_argument("--summary", action="store_true", help="only print the tables of the results so far")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fit = {**PAPER_FIT, "max_iterations": args.iterations, "batch_size": args.batch_size}
    folder = settings_dir(args.out, fit, args.k_grid)
    if not args.summary:
        for rat in args.rats:
            x, y = load_real(rat)
            for engine in args.engines:
                for seed in args.seeds:
                    for split_no in args.splits:
                        path = folder / engine / rat / f"split{split_no}-seed{seed}.json"
                        if path.exists():
                            continue
                        path.parent.mkdir(parents=True, exist_ok=True)
                        r = run_one(engine, rat, x, y, split_no, seed, fit, args.k_grid, args.device, path)
                        print(f"{engine} {rat} split {split_no} seed {seed}: {r['median_error_cm']:.2f} cm, "
                              f"R² {r['r2']:.3f}, k {r['k']} ({r['fit_seconds']:.0f} s fit)", flush=True)
    print_tables(folder)


if __name__ == "__main__":
    main()
