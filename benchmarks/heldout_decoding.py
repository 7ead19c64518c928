"""Held-out position decoding on one real session, as CEBRA's decoding demo scores it: encoder
fitted on the first 80 % of the session (contiguous), kNN decoder (k = 36, cosine) fitted on that
part's embedding, median absolute error on the last 20 %, for several seeds; optionally CEBRA 0.6.1
on the same split with the same settings.

    CEBRA_SHARED_DATA=../shared/data python benchmarks/heldout_decoding.py --dims 3 32 --seeds 0 1 2
    ... --cebra      # also CEBRA 0.6.1 (needs `pip install cebra==0.6.1` in this environment)

The paper's Table S2 (achilles, CEBRA-Behavior, 10 seeds x 3 splits): 5.46 +- 0.20 cm.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cebra_core import CEBRA
from cebra_core.analysis.decoding import N_NEIGHBORS, cross_decode
from cebra_core.analysis.splits import Split, transform_parts
from cebra_core.analysis.stats import mean_sd
from real_sessions import FILES, load_real



def score(transform, neural, labels, split) -> float:
    """Median error (cm) on the test part, decoder fitted on the train part's embedding."""
    z, parts = transform_parts(transform, neural, split)
    train, test = parts == "train", parts == "test"
    return cross_decode(z[train], labels[train, 0], z[test], labels[test, 0], n_neighbors=N_NEIGHBORS).median_error * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--session", default="achilles", choices=sorted(FILES))
    parser.add_argument("--dims", type=int, nargs="+", default=[3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iterations", type=int, default=15000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cebra", action="store_true", help="also CEBRA 0.6.1 on the same split")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    neural, labels = load_real(args.session)
    split = Split(fold=0, folds=1, test_fraction=0.2)
    train = ~split.test_mask(len(neural))
    settings = dict(batch_size=512, learning_rate=3e-4, temperature=1.0, max_iterations=args.iterations,
                    distance="cosine", conditional="time_delta", time_offsets=10)
    for dim in args.dims:
        for name in ("cebra_core", "CEBRA 0.6.1") if args.cebra else ("cebra_core",):
            errors = []
            for seed in args.seeds:
                started = time.perf_counter()
                if name == "cebra_core":
                    model = CEBRA(model_architecture="offset10-model", output_dimension=dim, device="cpu", seed=seed, **settings)
                    model.fit(neural[train], labels[train])
                else:
                    import cebra

                    torch.manual_seed(seed)
                    np.random.seed(seed)
                    model = cebra.CEBRA(model_architecture="offset10-model", output_dimension=dim, device="cpu",
                                        verbose=False, **settings)
                    model.fit(neural[train], labels[train])
                errors.append(score(model.transform, neural, labels, split))
                print(f"{args.session} {name} {dim}-D seed {seed}: {errors[-1]:.2f} cm "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
            mean, sd = mean_sd(errors)
            print(f"== {args.session} {name} {dim}-D, {args.iterations} iterations, seeds {args.seeds}: "
                  f"median error {mean:.2f} +- {sd:.2f} cm (last 20 % held out)", flush=True)


if __name__ == "__main__":
    main()
