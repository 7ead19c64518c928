"""Parameter sweeps (cebra_core.analysis.sweep): scores on the validation parts, the choice, the chosen
point's test scores kept apart, the config fragment, the figure."""

import numpy as np
import pandas as pd
import pytest
import yaml

from cebra_core.analysis.tables import embedding_frame
from cebra_core.figures.plots import SWEEP_MEASURES, plot_sweep
from cebra_core.analysis.splits import Split
from cebra_core.analysis.sweep import SCORES, SweepRun, choose, chosen_config, heldout_scores, part_view, sweep_table
from helpers import REPO, effective_config

SPLIT = Split(0, 1, test_fraction=0.2, validation_fraction=0.25)


def session_frame(name: str, noise: float, seed: int, n: int = 600, test_shift: float = 0.0,
                  context: bool | None = None) -> pd.DataFrame:
    """An embedding table of a rat running laps: z is the position on a circle plus ``noise``;
    ``test_shift`` adds noise to the test rows only (a model that fails exactly where nobody looked).
    ``context`` (not None): a discrete label column ``context`` too (0 / 1, drawn for every block
    of 10 bins), which the embedding's third dimension carries (True) or not (False)."""
    rng = np.random.default_rng(seed)
    position = 0.8 + 0.8 * np.sin(np.linspace(0, 12 * np.pi, n))  # six laps over 0..1.6 m
    angle = position / 1.6 * np.pi
    classes = np.repeat(rng.integers(0, 2, n // 10 + 1), 10)[:n]
    third = 2.0 * classes - 1 if context else np.zeros(n)
    z = np.column_stack([np.cos(angle), np.sin(angle), third]) + rng.normal(0, noise, (n, 3))
    parts = SPLIT.parts(n)
    z[parts == "test"] += rng.normal(0, test_shift, (int((parts == "test").sum()), 3))
    right = np.gradient(position) > 0
    labels = pd.DataFrame({"position": position, "right": right, "left": ~right}).astype(np.float32)
    if context is not None:
        labels["context"] = classes.astype(np.int64)
    return embedding_frame(name, z, labels, part=parts)


def make_run(point: str, noise: float, loss: float, seed: int, test_shift: float = 0.0, context: bool | None = None,
             **kw) -> SweepRun:
    frames = {rat: session_frame(rat, noise, seed=100 * seed + i, test_shift=test_shift, context=context)
              for i, rat in enumerate(["achilles", "buddy"])}
    parameters = {"temperature": {"good": 2.0, "bad": 0.1, "demo": 1.0, "blind": 0.5}[point]}
    return SweepRun(point, seed, parameters, frames, final_loss=loss, fit_seconds=1.0, **kw)


def test_part_view_drops_every_other_part_and_relabels():
    frame = session_frame("buddy", 0.1, 0)
    view = part_view(frame, ["train"], "validation")
    assert set(view["part"]) == {"train", "test"}
    assert (view["part"] == "test").sum() == (frame["part"] == "validation").sum() == 120  # 25 % of 480
    assert not view["time"].isin(frame.loc[frame["part"] == "test", "time"]).any()  # no test row
    both = part_view(frame, ["train", "validation"], "test")
    assert (both["part"] == "train").sum() == 480 and (both["part"] == "test").sum() == 120


def test_scores_follow_the_noise_of_the_embedding():
    clean_frames = {r: session_frame(r, 0.02, i) for i, r in enumerate(["a", "b"])}
    clean = heldout_scores(clean_frames, train=["train"], test="validation", n_neighbors=5, bins=30)
    noisy = heldout_scores({r: session_frame(r, 1.0, i) for i, r in enumerate(["a", "b"])},
                           train=["train"], test="validation", n_neighbors=5, bins=30)
    assert list(clean) == SCORES == ["decoding", "chance", "consistency", "coverage"]
    # decoding: the default (position, median_abs_error), in metres
    assert clean["decoding"] < 0.05 < 0.2 < noisy["decoding"]
    assert clean["chance"] > 0.2 and noisy["chance"] > 0.2  # shuffled labels: no better than a noisy code
    assert clean["consistency"] > noisy["consistency"] + 0.25
    assert 0 < clean["coverage"] <= 1
    r2 = heldout_scores(clean_frames, train=["train"], test="validation", n_neighbors=5, bins=30,
                        decode=("position", "r2"))
    assert r2["decoding"] > 0.9 and r2["chance"] < 0.2
    assert r2["consistency"] == clean["consistency"] and r2["coverage"] == clean["coverage"]
    one = heldout_scores({"a": session_frame("a", 0.02, 0)}, train=["train"], test="validation", n_neighbors=5, bins=30)
    assert np.isnan(one["consistency"]) and one["decoding"] < 0.05


def test_choice_follows_validation_not_training_loss():
    """The point with the lowest training loss (what CEBRA's GridSearch picks) decodes worse on the
    validation parts: the sweep chooses the other one."""
    table = pd.DataFrame({
        "point": ["low-loss", "low-loss", "good", "good", "mid", "mid"],
        "candidate": True,
        "final_loss": [5.1, 5.2, 6.3, 6.2, 5.8, 5.9],
        "validation_decoding": [0.30, 0.34, 0.08, 0.10, 0.12, 0.15],  # median_abs_error: lower is better
        "validation_consistency": [0.4, 0.5, 0.7, 0.6, 0.95, 0.9],
    })
    assert table.groupby("point")["final_loss"].mean().idxmin() == "low-loss"
    assert choose(table, ["validation_decoding"]) == "good"
    assert choose(table, ["validation_decoding"], "median_abs_error") == "good"  # the default metric
    assert choose(table, ["validation_consistency"]) == "mid"  # higher is better
    # both: mean ranks good (1 + 2) / 2 = 1.5, mid (2 + 1) / 2 = 1.5: a tie, the first measure decides
    assert choose(table, ["validation_decoding", "validation_consistency"]) == "good"
    assert choose(table, ["validation_consistency", "validation_decoding"]) == "mid"
    # a point that is not a candidate (the reference alone) is never chosen
    assert choose(table.assign(candidate=table["point"] != "good"), ["validation_decoding"]) == "mid"
    with pytest.raises(ValueError, match="final_loss"):
        choose(table, ["final_loss"])
    with pytest.raises(ValueError, match="validation_error_cm"):  # the old name is gone
        choose(table, ["validation_error_cm"])
    with pytest.raises(ValueError, match="consistency needs 2 or more sessions"):
        choose(table.assign(validation_consistency=np.nan), ["validation_consistency"])


def test_choice_by_decoding_follows_the_metrics_direction():
    """Accuracy, balanced accuracy and R²: the higher validation decoding is better; the median
    absolute error: the lower."""
    table = pd.DataFrame({
        "point": ["a", "a", "b", "b", "c", "c"],
        "candidate": True,
        "validation_decoding": [0.9, 0.8, 0.5, 0.6, 0.7, 0.7],
        "validation_consistency": [0.5, 0.5, 0.9, 0.9, 0.7, 0.7],
    })
    for metric in ("accuracy", "balanced_accuracy", "r2"):
        assert choose(table, ["validation_decoding"], metric) == "a"
    assert choose(table, ["validation_decoding"], "median_abs_error") == "b"
    # With consistency (higher is better): for accuracy the ranks are a (1, 3), b (3, 1), c (2, 2), a
    # tie of means that the first measure (decoding, by accuracy) decides; for the error b ranks first twice.
    assert choose(table, ["validation_decoding", "validation_consistency"], "accuracy") == "a"
    assert choose(table, ["validation_consistency", "validation_decoding"], "accuracy") == "b"
    assert choose(table, ["validation_decoding", "validation_consistency"], "median_abs_error") == "b"


def test_sweep_table_chooses_on_validation_and_reports_the_test_part_separately():
    """'bad' has the lowest training loss and the worst validation error; 'good' fails on its test
    parts only (noise there alone): it is still chosen, since the choice never reads the test
    part, and its test error is reported apart from (and much worse than) the validation error."""
    runs = [make_run("bad", noise=0.8, loss=5.0, seed=s) for s in (0, 1)]
    runs += [make_run("good", noise=0.02, loss=6.5, seed=s, test_shift=1.5) for s in (0, 1)]
    runs += [make_run("demo", noise=0.3, loss=6.0, seed=s, candidate=False, reference=True) for s in (0, 1)]
    table = sweep_table(runs, select_by=["validation_decoding"], n_neighbors=5, bins=30)
    assert list(table.columns) == [
        "point", "temperature", "seed", "candidate", "reference", "chosen", "final_loss",
        "validation_decoding", "validation_chance", "validation_consistency", "validation_coverage",
        "test_decoding", "test_chance", "test_consistency", "test_coverage", "fit_seconds"]
    assert table.loc[table["chosen"], "point"].unique().tolist() == ["good"]
    means = table.groupby("point").mean(numeric_only=True)
    assert means["final_loss"].idxmin() == "bad"  # a choice by training loss would have taken it
    # validation decoding: the position's median absolute error (metres), beside its chance level
    assert means.loc["good", "validation_decoding"] < 0.05 < means.loc["bad", "validation_decoding"]
    assert (table["validation_chance"] > 0.2).all()
    # test scores: the chosen point and the reference only; the chosen point's test part is bad
    tests = ["test_decoding", "test_chance", "test_consistency", "test_coverage"]
    assert table.loc[table["point"] == "bad", tests].isna().all().all()
    assert table.loc[table["point"] != "bad", tests].notna().all().all()
    assert means.loc["good", "test_decoding"] > 4 * means.loc["good", "validation_decoding"]
    assert means.loc["demo", "test_decoding"] < means.loc["good", "test_decoding"]

    # the test rows never reach the choice: shuffling them changes test scores only
    for run in runs:
        for frame in run.frames.values():
            test = frame["part"] == "test"
            frame.loc[test, ["z0", "z1", "z2"]] = frame.loc[test, ["z0", "z1", "z2"]].to_numpy()[::-1]
    again = sweep_table(runs, select_by=["validation_decoding"], n_neighbors=5, bins=30)
    validation = [c for c in table.columns if not c.startswith("test_")]
    pd.testing.assert_frame_equal(again[validation], table[validation])
    assert not np.allclose(again.loc[again["chosen"], "test_decoding"], table.loc[table["chosen"], "test_decoding"])


def test_sweep_on_a_discrete_label_chooses_the_highest_accuracy():
    """decode = (context, accuracy): the point whose embedding carries the context is chosen (higher
    accuracy is better), not the one with the lower training loss; chance is about 1 / 2."""
    runs = [make_run("blind", noise=0.05, loss=5.0, seed=s, context=False) for s in (0, 1)]
    runs += [make_run("good", noise=0.05, loss=6.0, seed=s, context=True) for s in (0, 1)]
    table = sweep_table(runs, select_by=["validation_decoding"], n_neighbors=5, bins=30,
                        decode=("context", "accuracy"))
    assert table.loc[table["chosen"], "point"].unique().tolist() == ["good"]
    means = table.groupby("point").mean(numeric_only=True)
    assert means.loc["good", "validation_decoding"] > 0.95
    assert means.loc["blind", "validation_decoding"] == pytest.approx(0.5, abs=0.15)
    assert means["validation_chance"].to_numpy() == pytest.approx([0.5, 0.5], abs=0.15)
    assert means.loc["good", "test_decoding"] > 0.95 and np.isnan(means.loc["blind", "test_decoding"])
    # The scores are those of the named column and metric of the decoding table.
    frames = runs[2].frames
    scores = heldout_scores(frames, train=["train"], test="validation", n_neighbors=5, bins=30,
                            decode=("context", "accuracy"))
    assert (scores["decoding"], scores["chance"]) == tuple(table.loc[2, ["validation_decoding", "validation_chance"]])
    blind = heldout_scores(runs[0].frames, train=["train"], test="validation", n_neighbors=5, bins=30,
                           decode=("context", "balanced_accuracy"))
    assert blind["decoding"] != table.loc[0, "validation_decoding"]  # another metric, another number
    with pytest.raises(ValueError, match=r"label column 'position' has no metric 'accuracy' "
                                         r"\(it has \['median_abs_error', 'r2'\]\)"):
        heldout_scores(frames, train=["train"], test="validation", n_neighbors=5, bins=30, decode=("position", "accuracy"))


def test_chosen_parameters_are_a_config_file_the_schema_accepts(tmp_path):
    table = pd.DataFrame({"point": ["a", "b"], "temperature": [0.5, 2.0], "output_dimension": [8, 3],
                          "chosen": [False, True]})
    chosen = chosen_config(table, ["temperature", "output_dimension"])
    assert chosen == {"cebra": {"temperature": 2.0, "output_dimension": 3}}
    assert type(chosen["cebra"]["output_dimension"]) is int  # numpy scalars do not survive yaml.safe_dump
    path = tmp_path / "chosen.yaml"
    path.write_text(yaml.safe_dump(chosen))
    config = effective_config(REPO / "config/sample.yaml", path)  # validated against the schema
    assert config["cebra"]["temperature"] == 2.0 and config["cebra"]["output_dimension"] == 3
    assert config["cebra"]["batch_size"] == 256  # the rest from the config it is merged over


def test_sweep_figure_has_a_panel_per_parameter_and_measure():
    rng = np.random.default_rng(0)
    rows = []
    for i, (t, d) in enumerate([(t, d) for t in (0.1, 1.0, 2.0) for d in (3, 8)]):
        for seed in (0, 1):
            rows.append({"point": f"p{i}", "temperature": t, "output_dimension": d, "seed": seed, "candidate": True,
                         "chosen": i == 3, "final_loss": 6 + rng.normal(), "validation_decoding": 0.2 + 0.01 * rng.normal(),
                         "validation_consistency": 0.5 + 0.1 * rng.normal()})
    figure = plot_sweep(pd.DataFrame(rows), ["temperature", "output_dimension"])
    assert len(figure.axes) == 3 * 2
    assert figure.axes[0].get_xscale() == "log" and figure.axes[1].get_xscale() == "linear"  # 0.1 .. 2: log
    assert len(figure.axes[0].get_legend().get_texts()) == 2  # one line per output dimension
    assert [ax.get_ylabel() for ax in figure.axes[::2]] == list(SWEEP_MEASURES.values())
