"""The workflow on behaviour of other shapes, as a lab brings its own sessions: `.npz` files through
`data.local` with their label columns declared (`labels`), run through `snakemake figures evaluation`:

- three mice in an open field seen through calcium imaging (declared `continuous` signals), labels
  x, y (continuous) and context (discrete), consistency on the (x, y) grid, figures coloured by angle;
- two monkeys reaching to 8 targets, one discrete label (target), consistency per target.

Each run checks that every label column decodes clearly above its chance level (the same decoder on
shuffled training labels), that multi-session consistency is not below single-session, and that
the figures are written. The sample configs (config/sample_openfield.yaml,
config/sample_reaching.yaml) simulate the same shapes; their plans are checked here too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cebra_core.sessions.simulate_openfield import simulate_openfield
from cebra_core.sessions.simulate_reaching import simulate_reaching
from helpers import REPO, assert_not_blank, config_file, plan_for, run_snakemake, write_config

FIT = {"batch_size": 256, "max_iterations": 1000, "checkpoint_every": 500}  # as the sample configs
# Clearly above chance, on the test parts of held-out fits: a continuous column's median error at most
# this fraction of its chance level's, a discrete column's accuracy at least chance plus this.
CONTINUOUS_AT_MOST, DISCRETE_ABOVE = 0.5, 0.3


def write_npz(folder, name: str, neural: np.ndarray, labels: pd.DataFrame) -> str:
    """A lab's session file: `neural` (T, N) and one 1-D array per label column."""
    path = folder / f"{name}.npz"
    np.savez(path, neural=neural, **{column: labels[column].to_numpy() for column in labels.columns})
    return str(path)


def check_run(work, columns: dict[str, str]) -> pd.DataFrame:
    """Every label column decodes above chance, multi-session consistency is not below single-session's,
    and the figures are there; returns the within-session decoding means."""
    decoding = pd.read_parquet(work / "results/tables/decoding.parquet")
    assert set(decoding["column"]) == set(columns)
    within = decoding[decoding["train"] == decoding["test"]]
    means = within.groupby(["kind", "column", "metric"])[["value", "chance"]].mean()
    print("\nwithin-session decoding (mean over sessions):\n" + means.to_string(float_format="%.3f"))
    for (kind, column, metric), row in means.iterrows():
        if metric == "median_abs_error":
            assert row["value"] <= CONTINUOUS_AT_MOST * row["chance"], (kind, column, row.to_dict())
        elif metric == "accuracy":
            assert row["value"] >= row["chance"] + DISCRETE_ABOVE, (kind, column, row.to_dict())
    consistency = pd.read_parquet(work / "results/tables/consistency.parquet").groupby("kind")["score"].mean()
    print(f"consistency: single {consistency['single']:.3f}, multi {consistency['multi']:.3f}")
    assert consistency["multi"] >= consistency["single"]
    for figure in ("embeddings", "consistency", "summary"):
        assert_not_blank(work / f"results/figures/{figure}.png")
    return means


@pytest.mark.slow
def test_open_field_mice_with_calcium_and_a_context(tmp_path):
    mice = ["m1", "m2", "m3"]
    files = {}
    for name in mice:
        sim = simulate_openfield(name, seed=3)
        files[name] = write_npz(tmp_path, name, sim.neural, sim.labels)
    config = write_config(
        tmp_path / "mice.yaml", base=None, sessions=mice, seeds=[0],
        data={"source": "local", "local": files}, labels={"continuous": ["x", "y"], "discrete": ["context"]},
        signals={name: "continuous" for name in mice}, analysis={"consistency_label": ["x", "y"]},
        figures={"colour_by": ["x", "y"]}, evaluation={"score": {"column": "x", "metric": "median_abs_error"}},
        cebra={**FIT, "output_dimension": 8}, new_session={"held_out": None}, device="cpu")
    run_snakemake(tmp_path / "work", "figures", "evaluation", configfile=config)
    check_run(tmp_path / "work", {"x": "continuous", "y": "continuous", "context": "discrete"})
    table = pd.read_parquet(tmp_path / "work/results/data/sessions/m1.parquet")
    assert table["context"].dtype == np.int64 and table[["x", "y"]].dtypes.eq(np.float32).all()


@pytest.mark.slow
def test_reaching_monkeys_with_a_discrete_target(tmp_path):
    monkeys = ["k1", "k2"]
    files = {name: write_npz(tmp_path, name, *(lambda s: (s.neural, s.labels))(simulate_reaching(name, seed=1, scale=0.5)))
             for name in monkeys}
    config = write_config(
        tmp_path / "monkeys.yaml", base=None, sessions=monkeys, seeds=[0],
        data={"source": "local", "local": files}, labels={"continuous": [], "discrete": ["target"]},
        analysis={"consistency_label": "target"}, figures={"colour_by": "target"},
        evaluation={"score": {"column": "target", "metric": "accuracy"}}, cebra=FIT, new_session={"held_out": None},
        device="cpu")
    run_snakemake(tmp_path / "work", "figures", "evaluation", configfile=config)
    check_run(tmp_path / "work", {"target": "discrete"})


@pytest.mark.parametrize("sample", ["sample_openfield.yaml", "sample_reaching.yaml"])
def test_the_sample_configs_plan_their_simulated_shapes(sample):
    """The sample configs of the new shapes are valid and plan the notebook's job and the evaluation."""
    plan = plan_for(config_file(REPO / "config" / sample))
    assert plan.source == "simulate" and plan.config["data"]["simulate"]["kind"] in ("openfield", "reaching")
    assert plan.labels.columns and not plan.labels.is_rat_track
    assert set(plan.figure_targets() + plan.evaluation_targets()) <= set(plan.final_targets())
