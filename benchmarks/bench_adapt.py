"""Benchmark: ways of adapting a new rat into a trained multi-session space (`CEBRA.adapt`), held out.

For each data set and seed: a multi-session model without the new rat ("trained"), the new rat
adapted into it by each method, and the target, a multi-session fit of all rats ("multi"). The new
rat is split in time: every encoder that sees it is fit on its first 80 % (train part) only.

Data:
- `sim`: simulated achilles, buddy, cicero (the project's tuning) trained; the new rat is simulated
  unlike them (`UNLIKE`, chosen with `--unlike`): other field widths, density of fields along the
  track, firing rates and neuron count.
- `real`: achilles trained (a multi-session model of one session); buddy is the new rat
  (`$CEBRA_SHARED_DATA/rat_hippocampus`, see its README).

Scores of the new rat (means over seeds ± sd; each seed also draws the simulated data):
- `cons_all`: mean consistency (`consistency_score`, 100 position bins, both directions) with the
  trained rats, over the new rat's whole session (train + test part) against their whole sessions;
- `cons_test`: the same over its test part only, every rat restricted to the test part's position range;
- `err_pooled`: median position error (cm) on its test part, kNN decoder (k=36, cosine) fit on the
  trained rats' embeddings; `err_own`: the decoder fit on its own train part instead.

    PYTHONPATH=src python benchmarks/bench_adapt.py [--data sim real] [--seeds 0 1 2] [--unlike NAME ...]
        [--iterations 1000] [--real-iterations 2000] [--adapt-iterations N] [--json out.json]

With --json, a data set and seed already in that file are not run again: a stopped run resumes.
The tables of docs/evaluation.md ("A new, unseen session") came from (1 torch thread each):
    --data sim --iterations 1000 --scale 0.15 --methods "all layers, regression init (the default)"
        "all layers, regression init, lr x3, 3x iterations" --json unlike.json    (~6 min per rat and seed)
    --data sim --unlike wide-weak --iterations 1000 --scale 0.15 --methods <the first six but "lr x10">
    --data real --real-iterations 2000 --methods <first layer random init, all layers x random/regression, regression only>  (~60 min)
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cebra_core import CEBRA
from cebra_core.engine.adaptation import new_session_encoder
from cebra_core.analysis.decoding import knn_decode, pooled_decode
from cebra_core.analysis.metrics import consistency_score
from cebra_core.engine.model import embed_sequence
from cebra_core.sessions.rats import RAT_SHAPES
from cebra_core.sessions.simulate import Tuning, simulate_session
from real_sessions import load_real

TRAIN_FRACTION = 0.8
# The new rat (its length gatsby's at --scale, or --new-bins): name -> (tuning, neurons). `like-55` is
# tuned like the trained rats (`Tuning()`: 10-30 cm fields uniform on the track, 5-20 Hz peaks);
# the others unlike them.
UNLIKE = {
    "like-55": (Tuning(), 55),
    "wide-weak": (Tuning(sigma=(0.25, 0.5), peak_rate=(1.0, 4.0), background=(0.5, 2.0)), 66),
    "narrow-ends": (Tuning(sigma=(0.02, 0.06), peak_rate=(10.0, 40.0), background=(0.01, 0.1),
                           center_beta=(0.5, 0.5)), 150),
    "few-start": (Tuning(sigma=(0.1, 0.3), peak_rate=(2.0, 8.0), background=(0.1, 1.0), center_beta=(2.0, 5.0)), 30),
}
SIM_TRAINED, SIM_NEW = ("achilles", "buddy", "cicero"), "gatsby"
REAL_TRAINED, REAL_NEW = ("achilles",), "buddy"
# name -> CEBRA.adapt keywords ("iterations_factor" multiplies the adapt iterations)
METHODS = {
    "first layer, random init": dict(layers="first", init="random"),
    "first layer, random init, 2x iterations": dict(layers="first", init="random", iterations_factor=2),
    "first layer, random init, lr x10": dict(layers="first", init="random", learning_rate_factor=10),
    "first layer, regression init": dict(layers="first", init="regression"),
    "all layers, random init": dict(layers="all", init="random"),
    "all layers, regression init (the default)": dict(layers="all", init="regression"),
    "all layers, regression init, own negatives": dict(layers="all", init="regression", own_negatives=True),
    "all layers, regression init, own negatives, 2x iterations": dict(layers="all", init="regression",
                                                                      own_negatives=True, iterations_factor=2),
    "all layers, regression init, 2x iterations": dict(layers="all", init="regression", iterations_factor=2),
    "all layers, regression init, lr x3, 3x iterations": dict(layers="all", init="regression",
                                                              learning_rate_factor=3, iterations_factor=3),
    "regression init only (0 iterations)": dict(layers="all", init="regression", iterations_factor=0),
}
MEASURES = ("cons_all", "cons_test", "err_pooled", "err_own")


def sim_data(seed: int, scale: float, unlike: str, new_bins: int | None = None) -> tuple[dict, str]:
    """{rat: (X, y)} of the simulated rats, the new one tuned as `UNLIKE[unlike]`, ``new_bins`` long
    (default: gatsby's length at ``scale``)."""
    data = {r: simulate_session(r, scale=scale, seed=seed) for r in SIM_TRAINED}
    tuning, neurons = UNLIKE[unlike]
    shape = (RAT_SHAPES[SIM_NEW][0] if new_bins is None else new_bins, neurons)
    data[SIM_NEW] = simulate_session(SIM_NEW, scale=scale if new_bins is None else 1.0, seed=seed, shape=shape,
                                     tuning=tuning)
    return {r: (s.neural, s.labels) for r, s in data.items()}, SIM_NEW


def real_data() -> tuple[dict, str]:
    return {r: load_real(r) for r in (*REAL_TRAINED, REAL_NEW)}, REAL_NEW


def _mean_with_new(scores, pairs, new: str) -> float:
    return float(np.mean([s for s, p in zip(scores, pairs) if new in p]))


def score(embeddings: dict, data: dict, new: str) -> dict:
    """The new rat's scores (see the module docstring) from {rat: embedding of its whole session}."""
    names = list(data)
    trained = [r for r in names if r != new]
    position = {r: data[r][1][:, 0] for r in names}
    split = int(len(position[new]) * TRAIN_FRACTION)
    scores, pairs, _ = consistency_score([embeddings[r] for r in names], [position[r] for r in names], dataset_ids=names)
    out = {"cons_all": _mean_with_new(scores, pairs, new)}
    test = position[new][split:]
    keep = {r: (position[r] >= test.min()) & (position[r] <= test.max()) for r in trained}
    z = [embeddings[r][keep[r]] for r in trained] + [embeddings[new][split:]]
    y = [position[r][keep[r]] for r in trained] + [test]
    scores, pairs, _ = consistency_score(z, y, dataset_ids=trained + [new])
    out["cons_test"] = _mean_with_new(scores, pairs, new)
    pooled = pooled_decode([embeddings[r] for r in trained], [position[r] for r in trained],
                           embeddings[new], position[new], train_fraction=TRAIN_FRACTION)
    out["err_pooled"] = 100 * pooled.median_error  # cm
    out["err_own"] = knn_decode(embeddings[new], position[new], train_fraction=TRAIN_FRACTION).median_error * 100
    return out


def run_seed(data: dict, new: str, seed: int, iterations: int, adapt_iterations: int, batch_size: int,
             methods: dict) -> list[dict]:  # fmt: skip
    """Fits, adaptations and scores of one seed: one row per method (and the references)."""
    names = list(data)
    trained = [r for r in names if r != new]
    X_new, y_new = data[new]
    split = int(len(X_new) * TRAIN_FRACTION)
    params = dict(batch_size=batch_size, max_iterations=iterations, seed=seed, device="cpu")
    rows = []

    def add(method: str, embeddings: dict, seconds: float) -> None:
        rows.append({"method": method, "seed": seed, "seconds": round(seconds, 1), **score(embeddings, data, new)})
        print(f"  seed {seed} {method}: " + ", ".join(f"{k} {rows[-1][k]:.3f}" for k in MEASURES), flush=True)

    start = time.perf_counter()
    multi = CEBRA(**params).fit([data[r][0] for r in trained] + [X_new[:split]], [data[r][1] for r in trained] + [y_new[:split]])
    add("multi-session, all rats (target)", {r: multi.transform(data[r][0], session_id=i) for i, r in enumerate(names)},
        time.perf_counter() - start)
    start = time.perf_counter()
    model = CEBRA(**params).fit([data[r][0] for r in trained], [data[r][1] for r in trained])
    fit_seconds = time.perf_counter() - start
    z_trained = {r: model.transform(data[r][0], session_id=i) for i, r in enumerate(trained)}
    untrained = new_session_encoder(model.model_[0], X_new.shape[1], seed=1000 + seed)
    floor = embed_sequence(untrained, torch.from_numpy(X_new), model.offset_).numpy()
    add("untrained first layer (floor)", {**z_trained, new: floor}, fit_seconds)
    for method, options in methods.items():
        options = dict(options)
        steps = int(adapt_iterations * options.pop("iterations_factor", 1))
        if "learning_rate_factor" in options:
            options["learning_rate"] = model.learning_rate * options.pop("learning_rate_factor")
        adapted = copy.deepcopy(model)
        start = time.perf_counter()
        new_id = adapted.adapt(X_new[:split], y_new[:split], max_iterations=steps, **options)
        seconds = time.perf_counter() - start
        for i, r in enumerate(trained):  # adapt never changes a trained encoder
            assert np.array_equal(adapted.transform(data[r][0], session_id=i), z_trained[r])
        add(method, {**z_trained, new: adapted.transform(X_new, session_id=new_id)}, seconds)
    return rows


def summary(rows: list[dict]) -> str:
    """Markdown table: mean ± sd over seeds per data set and method, and the gap to the target."""
    lines = ["| data | method | cons_all | cons_test | err_pooled (cm) | err_own (cm) | gap cons_all | gap cons_test | s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for data in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == data]
        target = {m: np.mean([r[m] for r in mine if r["method"].startswith("multi-session")]) for m in MEASURES}
        for method in dict.fromkeys(r["method"] for r in mine):
            sel = [r for r in mine if r["method"] == method]
            cells = []
            for m in MEASURES:
                v = np.array([r[m] for r in sel])
                cells.append(f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}" if m.startswith("cons")
                             else f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0:.1f}")
            gaps = [f"{np.mean([r[m] for r in sel]) - target[m]:+.3f}" for m in ("cons_all", "cons_test")]
            seconds = np.mean([r["seconds"] for r in sel])
            lines.append(f"| {data} (n={len(sel)}) | {method} | " + " | ".join(cells + gaps) + f" | {seconds:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=["sim", "real"], choices=["sim", "real"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=1000, help="fit iterations, simulated data")
    parser.add_argument("--real-iterations", type=int, default=2000, help="fit iterations, real data")
    parser.add_argument("--adapt-iterations", type=int, default=None, help="adapt iterations (default: the fit's)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--scale", type=float, default=0.15, help="simulated session length, fraction of the real")
    parser.add_argument("--new-bins", type=int, default=None, help="the simulated new rat's length (default: gatsby's "
                        "at --scale)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--unlike", nargs="+", default=[n for n in UNLIKE if n != "like-55"], choices=list(UNLIKE),
                        help="new rats, sim data")
    parser.add_argument("--json", type=Path, default=None, help="also write all rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    methods = {m: METHODS[m] for m in args.methods}
    rows = []
    done = json.loads(args.json.read_text()) if args.json is not None and args.json.is_file() else []
    for kind in args.data:
        iterations = args.iterations if kind == "sim" else args.real_iterations
        adapt_iterations = iterations if args.adapt_iterations is None else args.adapt_iterations
        print(f"{kind}: fits {iterations}, adapt {adapt_iterations} iterations, batch {args.batch_size}", flush=True)
        for name in args.unlike if kind == "sim" else ["real"]:
            label = f"sim {name}" if kind == "sim" else kind
            for seed in args.seeds:
                finished = [r for r in done if r["data"] == label and r["seed"] == seed]
                if finished:  # resume: a data set and seed already in --json
                    rows += finished
                    continue
                data, new = sim_data(seed, args.scale, name, args.new_bins) if kind == "sim" else real_data()
                for row in run_seed(data, new, seed, iterations, adapt_iterations, args.batch_size, methods):
                    rows.append({"data": label, **row})
                if args.json is not None:
                    args.json.write_text(json.dumps(rows, indent=1))
    print(summary(rows))


if __name__ == "__main__":
    main()
