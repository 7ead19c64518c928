"""The Snakemake workflow through its CLI: lint and snakefmt, dry runs that the DAG is the plan's, the
checks of every output of a sample run (``check_sample_outputs``: tests/test_conda.py runs them on
the session's sample run), bad sessions caught by the check job, the trial protocol, a continuous
session, sweeps, and a real-data run on achilles + buddy from the shared data folder (without conda)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cebra_core.planning import Plan
from cebra_core.rats import RAT_SHAPES
from cebra_core.simulate import MIN_BINS
from conftest import (REPO, SAMPLE_RUN, config_file, effective_config, expected_fits, job_counts, plan_for,
                      run_snakemake, shared_file, snakemake_command, write_config)

SAMPLE = effective_config(*SAMPLE_RUN)  # the config of the suite's sample run
RATS = ["achilles", "buddy", "cicero", "gatsby"]


def fit_dir(work, fit: str, split: str = "all", seed: int = 0) -> Path:
    return work / Plan.fit_file("", split, str(seed), fit)


def dry_run_fits(stdout: str) -> dict[tuple[str, str, str], int]:
    """{(split, seed, fit): priority} of every fit job a dry run lists."""
    fits = {}
    for block in stdout.split("\n\n"):
        if re.search(r"^\s*rule fit:", block, re.M):
            m = re.search(r"wildcards: (.*)", block)
            wildcards = dict(kv.split("=", 1) for kv in m[1].split(", "))
            fits[wildcards["split"], wildcards["seed"], wildcards["fit"]] = int(re.search(r"priority: (\d+)", block)[1])
            assert "results/data/checks.tsv" in block  # every fit waits for the session checks
    return fits


def test_lint(tmp_path):
    proc = run_snakemake(tmp_path, "--lint")
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_snakefmt_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Snakemake's own process with os.sched_getaffinity removed (as on macOS), asked for 4 cores.
WITHOUT_AFFINITY = ("import os, sys; del os.sched_getaffinity; from snakemake.cli import main; "
                    "sys.argv[0] = 'snakemake'; main()")


def test_dry_run_builds_the_plans_dag(tmp_path):
    """One dry run of the sample config with the example sweep, `all` and `sweep` together, where the
    platform has no sched_getaffinity and --cores asks for more CPUs than there are: the fit jobs are
    exactly the plan's, longest first, each after the session checks; no GPU asked for; the cores
    capped at the CPU count."""
    config = write_config(tmp_path / "sweep.yaml", sweep=yaml.safe_load((REPO / "config/sweep.example.yaml").read_text())["sweep"])
    cmd = snakemake_command(tmp_path / "work", "all", "sweep", "--dry-run", configfile=config)
    cmd[1:3] = ["-c", WITHOUT_AFFINITY]
    cmd[cmd.index("--cores") + 1] = str(os.cpu_count() + 2)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"--cores {os.cpu_count() + 2} is more than the {os.cpu_count()} CPUs" in proc.stdout + proc.stderr
    plan = plan_for(config_file(config))
    expected = expected_fits(plan)
    expected.update({(f"sweep/{run['point']}", str(run["seed"]), "multi"): 4 for run in plan.sweep_runs()})
    assert dry_run_fits(proc.stdout) == expected
    assert job_counts(proc.stdout)["adapt_session"] == len(plan.seeds) and "gpu=" not in proc.stdout


def test_dry_run_default_config(tmp_path):
    proc = run_snakemake(tmp_path, "--dry-run")
    counts = job_counts(proc.stdout)
    assert counts["download_session"] == 4 and counts["import_session"] == 4
    # one seed: 4 single + 1 multi on whole sessions, the same on the train parts, + leave-one-out
    assert counts["fit"] == 11 and counts["align"] == 2
    assert counts["adapt_session"] == 1  # gatsby, the last session, on its train part
    assert counts["score_new_session"] == 1 and counts["plot_new_session"] == 1
    assert counts["decoding"] == 1 and counts["statistics"] == 1 and counts["plot_summary"] == 1
    assert "results/fits/fold0/seed0/multi_without/gatsby/model.pt" in proc.stdout
    assert "results/fits/all/seed0/multi/model.pt" in proc.stdout
    assert counts["plot_embeddings_3d"] == 4  # one interactive page per rat
    assert counts["check_sessions"] == 1
    assert counts["total"] == 37


@pytest.mark.parametrize("target, fits", [
    ("figures", {("all", "0", f) for f in [*(f"single/{r}" for r in RATS), "multi"]}),
    ("evaluation", {(s, "0", f) for s in ("all", "fold0") for f in [*(f"single/{r}" for r in RATS), "multi"]}),
    ("new_session", {("fold0", "0", f) for f in [*(f"single/{r}" for r in RATS), "multi", "multi_without/gatsby"]}),
])
def test_named_targets_run_only_their_part(tmp_path, target, fits):
    """`snakemake figures` is the notebook's job (5 fits, alignment, consistency, two figures);
    `evaluation` adds the held-out fits; `new_session` the leave-one-out fit and adapt."""
    proc = run_snakemake(tmp_path, target, "--dry-run")
    counts = job_counts(proc.stdout)
    assert set(dry_run_fits(proc.stdout)) == fits
    assert ("adapt_session" in counts) == (target == "new_session")
    assert ("plot_consistency" in counts) == (target == "figures")
    assert ("decoding" in counts) == (target == "evaluation")


def test_gpu_config_declares_gpu_resource(tmp_path):
    config = write_config(tmp_path / "gpu.yaml", gpu=True)
    proc = run_snakemake(tmp_path / "work", "--dry-run", "--resources", "gpu=1", configfile=config)
    fits = [block for block in proc.stdout.split("\n\n") if re.search(r"rule (fit|adapt_session):", block)]
    assert len(fits) == len(dry_run_fits(proc.stdout)) + len(SAMPLE["seeds"]) and all("gpu=1" in block for block in fits)


# ---------------------------------------------------------------------------------------- sample run


def sample_length(rat: str) -> int:
    return max(MIN_BINS, round(RAT_SHAPES[rat][0] * SAMPLE["data"]["simulate"]["scale"]))


def check_embedding_table(table: pd.DataFrame, rats: list[str], parts: set[str] = {"all"}):
    assert list(table.columns) == ["session", "time", "part", "z0", "z1", "z2", "position", "direction"]
    assert table["session"].unique().tolist() == rats
    for rat in rats:
        rows = table[table["session"] == rat]
        assert rows["time"].tolist() == list(range(sample_length(rat)))
        assert set(rows["part"]) == parts
        if parts == {"train", "test"}:  # the test part is the session's last test_fraction
            n_test = round(sample_length(rat) * SAMPLE["evaluation"]["test_fraction"])
            assert rows["part"].tolist() == ["train"] * (len(rows) - n_test) + ["test"] * n_test
    z = table[["z0", "z1", "z2"]].to_numpy()
    assert np.isfinite(z).all()
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-4)  # normalised model outputs
    assert set(table["direction"]) == {"left", "right"}
    assert table["position"].between(0, 1.6).all()


def assert_not_blank(png):
    """A real, non-blank PNG, and its vector twin (a PDF) beside it."""
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert (pixels.min(axis=2) < 0.9).mean() > 0.01  # more than 1% of the pixels are not white
    assert pixels.std() > 0.05
    pdf = png.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5_000


def check_heldout_fits_saw_no_test_rows(work, seed: int):
    """The held-out multi-session fits trained on exactly the train rows of each session: the labels
    the model stores for its training data equal the session's labels without its test part."""
    from cebra_core import CEBRA
    from cebra_core.data import read_session

    held_out = SAMPLE["new_session"]["held_out"]
    for fit, rats in (("multi", RATS), (f"multi_without/{held_out}", [r for r in RATS if r != held_out])):
        model = CEBRA.load(fit_dir(work, fit, "fold0", seed) / "model.pt")
        for rat, trained in zip(rats, model._extra_state["trained_labels"]):
            _, labels = read_session(work / f"results/data/sessions/{rat}.parquet")
            n_test = round(len(labels) * SAMPLE["evaluation"]["test_fraction"])
            np.testing.assert_array_equal(trained.numpy(), labels[: len(labels) - n_test])


def check_sample_outputs(work, *snakemake_args: str, env: dict | None = None):
    """Every output of a finished sample run in ``work`` (also used by the SLURM and conda tests);
    ``snakemake_args`` and ``env`` are those of the run (e.g. --use-conda), for the final dry run."""
    from cebra_core import CEBRA

    seeds = SAMPLE["seeds"]
    for rat in RATS:
        table = pd.read_parquet(work / f"results/data/sessions/{rat}.parquet")
        assert table.shape == (sample_length(rat), RAT_SHAPES[rat][1] + 3)
        assert np.isfinite(table.to_numpy()).all()

    for seed in seeds:
        for split, parts in (("all", {"all"}), ("fold0", {"train", "test"})):
            for rat in RATS:
                fit = fit_dir(work, f"single/{rat}", split, seed)
                check_embedding_table(pd.read_parquet(fit / "embedding.parquet"), [rat], parts)
                loss = pd.read_parquet(fit / "loss.parquet")
                assert list(loss.columns[:4]) == ["fit", "seed", "split", "iteration"]
                assert {"pos", "neg", "total"} <= set(loss.columns) and (loss["seed"] == seed).all()
                assert len(loss) == SAMPLE["cebra"]["max_iterations"] and np.isfinite(loss["total"]).all()
                assert loss["total"].iloc[-20:].mean() < loss["total"].iloc[:20].mean()  # it learned
                model = CEBRA.load(fit / "model.pt")
                assert model.num_sessions_ is None and model.max_iterations == SAMPLE["cebra"]["max_iterations"]
                assert model.seed == seed
                assert (work / f"results/benchmarks/fit/{split}/seed{seed}/single/{rat}.tsv").is_file()
            check_embedding_table(pd.read_parquet(fit_dir(work, "multi", split, seed) / "embedding.parquet"), RATS, parts)
            assert CEBRA.load(fit_dir(work, "multi", split, seed) / "model.pt").num_sessions_ == 4
        for kind in ("single", "multi"):
            check_embedding_table(pd.read_parquet(work / f"results/alignment/seed{seed}/{kind}.parquet"), RATS)
        check_heldout_fits_saw_no_test_rows(work, seed)
    # different seeds, different fits
    a, b = (pd.read_parquet(fit_dir(work, "multi", "all", seed) / "embedding.parquet") for seed in seeds[:2])
    assert not np.allclose(a[["z0", "z1", "z2"]], b[["z0", "z1", "z2"]])

    consistency = pd.read_parquet(work / "results/tables/consistency.parquet")
    assert list(consistency.columns) == ["kind", "seed", "split", "source", "target", "score"]
    for kind in ("single", "multi"):
        for seed in seeds:
            part = consistency[(consistency["kind"] == kind) & (consistency["seed"] == seed)]
            assert sorted(zip(part["source"], part["target"])) == sorted((a, b) for a in RATS for b in RATS if a != b)
            assert np.isfinite(part["score"]).all() and part["score"].le(1).all()
    means = consistency.groupby("kind")["score"].mean()
    print(f"\nsample consistency: single {means['single']:.3f}, multi {means['multi']:.3f}")
    assert means["multi"] > means["single"]

    decoding = pd.read_parquet(work / "results/tables/decoding.parquet")
    assert list(decoding.columns) == ["kind", "seed", "split", "encoder", "train", "test", "r2", "median_error_cm",
                                      "n_train", "n_test", "test_coverage", "flagged", "k"]
    assert (decoding["k"] == SAMPLE["analysis"]["decoding_neighbors"]).all()  # the contiguous protocol's fixed k
    assert len(decoding) == 2 * len(seeds) * len(RATS) ** 2 and np.isfinite(decoding["median_error_cm"]).all()
    assert (decoding["split"] == "fold0").all() and set(decoding["seed"]) == set(seeds)
    within = decoding[decoding["train"] == decoding["test"]]
    assert within["n_test"].tolist() == [round(sample_length(r) * 0.2) for r in RATS] * 2 * len(seeds)
    assert (decoding["flagged"] == (decoding["test_coverage"] < SAMPLE["evaluation"]["min_coverage"])).all()

    statistics = pd.read_parquet(work / "results/tables/statistics.parquet")
    test = statistics[statistics["measure"] == "consistency_paired_test"]
    assert len(test) == 1 and test["n"].iloc[0] == 12 and 0 <= test["p_value"].iloc[0] <= 1
    runs = statistics[statistics["measure"] == "runs_consistency"]
    assert len(runs) == 2 * len(RATS) and runs["mean"].between(-1, 1).all() and (runs["n"] == len(seeds)).all()
    errors = statistics[statistics["measure"] == "decoding_error_cm"]
    assert len(errors) == 2 * len(RATS) and (errors["n"] == len(seeds)).all() and (errors["sd"] >= 0).all()
    print("\nsample statistics:\n" + statistics[statistics["measure"].isin(
        ["consistency", "consistency_paired_test", "runs_consistency"])].to_string(index=False))

    consistency, errors = check_new_session(work, SAMPLE["new_session"]["held_out"], RATS, seeds)
    # The adapted rat lands in the trained rats' space: far above its untrained encoder, close to
    # full multi-session training, and a decoder from the other rats transfers to its test part.
    assert consistency["adapted"] > consistency["random"] + 0.3
    assert consistency["adapted"] > consistency["multi"] - 0.1
    assert errors["adapted"] < errors["random"] / 2

    for figure in ("embeddings", "consistency", "loss", "summary", "new_session_gatsby"):
        assert_not_blank(work / f"results/figures/{figure}.png")
    for rat in RATS:
        page = work / f"results/figures/embeddings_3d/{rat}.html"
        html = page.read_text()
        assert f'<div id="embeddings-3d-{rat}"' in html and f"Single-{rat}" in html and f"Multi-{rat}" in html
        assert '<script src="http' not in html and 3_000_000 < len(html) < 10_000_000
    report = (work / "report.html").read_text(errors="replace")
    assert len(report) > 100_000 and "Consistency of the embeddings across rats" in report
    assert "Interactive version of the embedding figure" in report  # the pages are in the report
    assert "A new, unseen rat" in report and "new_session_gatsby.csv" in report and "statistics.csv" in report

    logs = sorted(p.relative_to(work / "logs").as_posix() for p in (work / "logs").rglob("*.log"))
    jobs = job_counts(run_snakemake(work, "--dry-run", "--forceall", configfile=SAMPLE_RUN).stdout)
    assert len(logs) == jobs["total"] - 1  # every job but `all` wrote its log
    assert not list((work / "results").rglob("*.part")) and not list((work / "results/checkpoints").rglob("*.pt"))
    proc = run_snakemake(work, *snakemake_args, "--dry-run", configfile=SAMPLE_RUN, env=env)
    assert "Nothing to be done" in proc.stdout + proc.stderr


NEW_SESSION_KINDS = ["random", "single", "multi", "adapted"]


def check_new_session(work, held_out: str, rats: list[str], seeds: list[int]) -> tuple[dict[str, float], dict[str, float]]:
    """The new-session outputs: the leave-one-out fit, the adapted model and embeddings, the table
    (complete, finite); returns the mean consistency and the median decoding error (cm) per kind,
    averaged over seeds."""
    from cebra_core import CEBRA

    trained = [r for r in rats if r != held_out]
    for seed in seeds:
        model = CEBRA.load(fit_dir(work, f"multi_without/{held_out}", "fold0", seed) / "model.pt")
        assert model.num_sessions_ == len(trained)
        folder = work / f"results/new_session/fold0/seed{seed}/{held_out}"
        adapted = CEBRA.load(folder / "model.pt")
        assert adapted.num_sessions_ == len(rats) and adapted.n_features_in_[:-1] == model.n_features_in_
        embedding = pd.read_parquet(folder / "embedding.parquet")
        assert embedding["session"].unique().tolist() == rats and np.isfinite(embedding[["z0", "z1", "z2"]]).all().all()
        assert set(embedding["part"]) == {"train", "test"}
        trained_part = embedding[embedding["session"].isin(trained)].reset_index(drop=True)
        pd.testing.assert_frame_equal(  # the trained rats keep their own encoders' embeddings
            trained_part, pd.read_parquet(fit_dir(work, f"multi_without/{held_out}", "fold0", seed) / "embedding.parquet"),
            atol=1e-6)
        assert (work / f"results/benchmarks/adapt_session/fold0/seed{seed}/{held_out}.tsv").is_file()

    table = pd.read_parquet(work / f"results/tables/new_session_{held_out}.parquet")
    assert list(table.columns) == ["seed", "split", "kind", "measure", "source", "target", "value", "test_coverage", "flagged"]
    assert set(table["seed"]) == set(seeds) and (table["split"] == "fold0").all()
    assert table["kind"].unique().tolist() == NEW_SESSION_KINDS and np.isfinite(table["value"]).all()
    pooled = "+".join(trained)
    for (seed, kind), part in table.groupby(["seed", "kind"]):
        pairs = part[part["measure"] == "consistency"]
        assert sorted(pairs["source"]) == sorted(trained) and (pairs["target"] == held_out).all()
        assert pairs["value"].le(1).all()
        mean = part[part["measure"] == "consistency_mean"]
        assert mean[["source", "target"]].values.tolist() == [[pooled, held_out]]
        assert mean["value"].iloc[0] == pytest.approx(pairs["value"].mean())
        decoding = part[part["measure"].isin(["r2", "median_error_cm"])]
        assert decoding["measure"].tolist() == ["r2", "median_error_cm"]
        assert set(decoding["source"]) == {held_out if kind == "single" else pooled}
        assert (decoding["target"] == held_out).all()
    assert (work / f"results/tables/new_session_{held_out}.csv").read_text().startswith("seed,split,kind,measure")

    value = table.groupby(["kind", "measure"])["value"].mean()
    numbers = {kind: value[(kind, "consistency_mean")] for kind in NEW_SESSION_KINDS}
    errors = {kind: value[(kind, "median_error_cm")] for kind in NEW_SESSION_KINDS}
    print(f"\nnew session {held_out}: consistency " + ", ".join(f"{k} {v:.3f}" for k, v in numbers.items())
          + "; median decoding error (cm) " + ", ".join(f"{k} {v:.1f}" for k, v in errors.items()))
    return numbers, errors


@pytest.mark.slow
def test_trial_protocol_end_to_end(tmp_path):
    """evaluation.protocol trials on two simulated rats: the held-out fits of split numbers 0-2 train
    on exactly their train trials (CEBRA's rows, in time order), every row is marked with its part,
    and the decoder's k comes from the grid, chosen on the validation trials."""
    from cebra_core import CEBRA
    from cebra_core.data import read_session
    from cebra_core.splits import fit_rows
    from cebra_core.trials import TrialSplit

    rats = ["cicero", "gatsby"]
    config = write_config(tmp_path / "trials.yaml", sessions=rats, seeds=[0], data={"simulate": {"scale": 0.3}},
                          evaluation={"protocol": "trials"}, new_session={"held_out": None},
                          cebra={"batch_size": 128, "max_iterations": 40, "checkpoint_every": 40})
    work = tmp_path / "work"
    run_snakemake(work, "results/tables/decoding.csv", configfile=config)
    decoding = pd.read_parquet(work / "results/tables/decoding.parquet")
    assert sorted(set(decoding["split"])) == ["fold0", "fold1", "fold2"] and len(decoding) == 2 * 3 * 4
    assert set(decoding["k"]) <= {1, 4, 9, 16, 25} and np.isfinite(decoding["median_error_cm"]).all()
    for split_no in range(3):
        model = CEBRA.load(fit_dir(work, "multi", f"fold{split_no}") / "model.pt")
        embedding = pd.read_parquet(fit_dir(work, "multi", f"fold{split_no}") / "embedding.parquet")
        for rat, trained in zip(rats, model._extra_state["trained_labels"]):
            _, labels = read_session(work / f"results/data/sessions/{rat}.parquet")
            parts = TrialSplit(split_no).parts(labels)
            np.testing.assert_array_equal(trained.numpy(), labels[fit_rows(parts)])
            assert embedding.loc[embedding["session"] == rat, "part"].tolist() == parts.tolist()


# ------------------------------------------------------------------------------------ real data


@pytest.mark.slow
def test_real_data_smoke(tmp_path):
    """achilles + buddy from the shared folder through the local-sessions example config: the
    notebook's job (the sample run covers the other targets; buddy adapted into an achilles model is
    measured by benchmarks/bench_adapt.py --data real, at the iterations it needs)."""
    shared_file("buddy.jl"), shared_file("achilles_reconstructed.npz")
    run_snakemake(tmp_path / "work", "figures", "results/figures/loss.png",
                  configfile=REPO / "config/local.example.yaml")
    work = tmp_path / "work"
    for rat, shape in (("achilles", (10178, 120)), ("buddy", (6577, 48))):
        table = pd.read_parquet(work / f"results/data/sessions/{rat}.parquet")
        assert table.shape == (shape[0], shape[1] + 3)
    consistency = pd.read_parquet(work / "results/tables/consistency.parquet")
    assert len(consistency) == 4
    means = consistency.groupby("kind")["score"].mean()
    print(f"\nreal-data consistency: single {means['single']:.3f}, multi {means['multi']:.3f}")
    assert means["multi"] > means["single"]
    for figure in ("embeddings", "consistency", "loss"):
        assert_not_blank(work / f"results/figures/{figure}.png")


def test_sessions_checked_before_any_fit(tmp_path):
    """A 12-row session (decoding failed after every fit) and a batch larger than a session
    (effectively hung): the check job names both, one line each."""
    rng = np.random.default_rng(0)
    paths = {}
    for name, length in (("long", 600), ("tiny", 12)):
        labels = np.column_stack([np.linspace(0, 1.6, length), np.ones(length), np.zeros(length)])
        np.savez(tmp_path / f"{name}.npz", spikes=rng.poisson(0.5, (length, 9)), position=labels)
        paths[name] = str(tmp_path / f"{name}.npz")
    config = write_config(tmp_path / "local.yaml", base="local.example.yaml", sessions=["long", "tiny"],
                          data={"local": paths}, cebra={"batch_size": 512})
    proc = run_snakemake(tmp_path / "work", "results/data/checks.tsv", configfile=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (f"session 'tiny' ({paths['tiny']}): cebra.batch_size=512 is more than the session's 12 time bins" in out)
    assert (f"session 'tiny' ({paths['tiny']}): the position decoder is fitted on the first 9 of its 12 time bins "
            "(evaluation.test_fraction=0.2)" in out)
    assert "session 'long'" not in out and not (tmp_path / "work/results/data/checks.tsv").exists()


@pytest.mark.slow
def test_a_continuous_session_end_to_end(tmp_path):
    """Two sample rats given as files, one of them z-scored (a calcium-like continuous signal, negative
    values) and declared `continuous`: checked, imported, fitted single and multi, aligned and scored
    (the sample run draws the figures from the same tables)."""
    from cebra_core.simulate import simulate_session

    paths = {}
    for rat in ("buddy", "gatsby"):
        sim = simulate_session(rat, scale=0.05, seed=3)
        neural = sim.neural
        if rat == "gatsby":
            neural = (neural - neural.mean(0)) / (neural.std(0) + 1e-6)  # z-scored per neuron
        paths[rat] = str(tmp_path / f"{rat}.npz")
        np.savez(paths[rat], neural=neural, labels=sim.labels)
    config = write_config(tmp_path / "calcium.yaml", base=None, sessions=list(paths), seeds=[0],
                          data={"source": "local", "local": paths}, signals={"gatsby": "continuous"},
                          cebra={"batch_size": 128, "max_iterations": 60, "checkpoint_every": 60}, device="cpu")
    work = tmp_path / "work"
    run_snakemake(work, "results/tables/consistency.csv", configfile=config)
    checks = pd.read_csv(work / "results/data/checks.tsv", sep="\t")
    assert checks["signal"].tolist() == ["counts", "continuous"]
    gatsby = pd.read_parquet(work / "results/data/sessions/gatsby.parquet")
    assert (gatsby.filter(regex=r"^n\d+$").to_numpy() < 0).any()  # imported as it is, negative values kept
    consistency = pd.read_parquet(work / "results/tables/consistency.parquet")
    assert len(consistency) == 2 * 2 and np.isfinite(consistency["score"]).all()

    counts = write_config(tmp_path / "counts.yaml", base=None, **{**config_file(config), "signals": {}})
    proc = run_snakemake(tmp_path / "again", "results/data/checks.tsv", configfile=counts, check=False)
    assert proc.returncode != 0  # undeclared, the z-scored session is refused as spike counts
    assert "session 'gatsby'" in proc.stdout + proc.stderr and "must not be negative" in proc.stdout + proc.stderr


def test_bad_local_session_fails_with_a_clear_message(tmp_path):
    rng = np.random.default_rng(0)
    good = {"spikes": rng.poisson(0.2, (300, 9)), "position": np.column_stack(
        [np.linspace(0, 1.6, 300), np.ones(300), np.zeros(300)])}
    np.savez(tmp_path / "good.npz", **good)
    np.savez(tmp_path / "bad.npz", spikes=good["spikes"])
    config = write_config(tmp_path / "local.yaml", base="local.example.yaml", sessions=["one", "two"],
                          data={"local": {"one": str(tmp_path / "good.npz"), "two": str(tmp_path / "bad.npz")}})
    proc = run_snakemake(tmp_path / "work", "results/data/sessions/two.parquet", configfile=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"session 'two' ({tmp_path / 'bad.npz'}): missing key(s) position or labels" in out
    assert not (tmp_path / "work/results/data/sessions/two.parquet").exists()


@pytest.mark.parametrize("source", ["published", "simulate", "local"])
def test_report_credits_the_published_data_only_when_used(source):
    """The report's text (workflow/report/workflow.rst) as Snakemake renders it with the config."""
    import jinja2

    config = dict(effective_config(), data={"source": source})
    text = jinja2.Template((REPO / "workflow/report/workflow.rst").read_text()).render(
        snakemake=type("Snakemake", (), {"config": config}))
    assert ("Grosmark & Buzsáki (2016)" in text) == (source == "published")
    assert ("simulated place cells" in text) == (source == "simulate")
    assert ("the\nuser's own session files" in text) == (source == "local")
# ---------------------------------------------------------------------------------------- sweeps

SWEEP_EXAMPLE = REPO / "config/sweep.example.yaml"


CHEAP_SWEEP_ITERATIONS = 30
CHEAP_GRID = {"temperature": [0.5, 1.0], "output_dimension": [3, 5]}  # the reference (1.0, 3) is a point


def cheap_sweep_configs(tmp_path) -> tuple[Path, ...]:
    """The example sweep on a 2 x 2 grid on the sample rats, one seed and 30 iterations to stay cheap."""
    config = write_config(tmp_path / "cheap.yaml", base=None, seeds=[0], sweep={"grid": CHEAP_GRID},
                          cebra={"max_iterations": CHEAP_SWEEP_ITERATIONS})
    return REPO / "config/sample.yaml", SWEEP_EXAMPLE, config


def check_sweep_outputs(work: Path, files: tuple[Path, ...]):
    """Every output of the cheap sweep in ``work``: the table, the figure, the report
    (``sweep.html``), the chosen config; chosen on validation, tested apart."""
    table = pd.read_parquet(work / "results/tables/sweep.parquet")
    assert len(table) == 4 and table["candidate"].all() and table["reference"].sum() == 1
    assert sorted(zip(table["temperature"], table["output_dimension"])) == [
        (t, d) for t in CHEAP_GRID["temperature"] for d in CHEAP_GRID["output_dimension"]]
    reference = table[table["reference"]].iloc[0]
    assert (reference["temperature"], reference["output_dimension"]) == (1.0, 3)
    assert np.isfinite(table[["final_loss", "validation_error_cm", "validation_consistency", "fit_seconds"]]).all().all()
    chosen = table[table["chosen"]]
    assert len(chosen) == 1 and chosen["point"].iloc[0] == table.loc[table["validation_error_cm"].idxmin(), "point"]
    scored = table["chosen"] | table["reference"]
    assert table.loc[scored, "test_error_cm"].notna().all() and table.loc[~scored, "test_error_cm"].isna().all()
    for point in table["point"]:
        loss = pd.read_parquet(work / f"results/fits/sweep/{point}/seed0/multi/loss.parquet")
        assert len(loss) == CHEAP_SWEEP_ITERATIONS and loss["split"].iloc[0] == f"sweep/{point}"
        assert loss["total"].iloc[-1] == pytest.approx(table.loc[table["point"] == point, "final_loss"].iloc[0])
        embedding = pd.read_parquet(work / f"results/fits/sweep/{point}/seed0/multi/embedding.parquet")
        buddy = embedding[embedding["session"] == "buddy"]["part"].tolist()  # 329 rows: 66 test, 53 validation
        assert buddy == ["train"] * 210 + ["validation"] * 53 + ["test"] * 66
    assert_not_blank(work / "results/figures/sweep.png")
    report = (work / "sweep.html").read_text(errors="replace")
    assert "Parameter sweep" in report and "sweep.csv" in report

    text = (work / "results/sweep/chosen.yaml").read_text()
    assert text.startswith("# The parameters `snakemake sweep` chose")
    merged = effective_config(*files, work / "results/sweep/chosen.yaml")  # the schema accepts it
    assert merged["cebra"]["temperature"] == chosen["temperature"].iloc[0]
    assert merged["cebra"]["output_dimension"] == chosen["output_dimension"].iloc[0]


@pytest.mark.slow
def test_sweep_runs_and_chooses_on_validation(tmp_path):
    """The cheap sweep, run locally: every output checked; fits are not computed twice."""
    files = cheap_sweep_configs(tmp_path)
    work = tmp_path / "work"
    run_snakemake(work, "sweep", "--configfile", *map(str, files))
    run_snakemake(work, "sweep", "--report", "sweep.html", "--configfile", *map(str, files))
    check_sweep_outputs(work, files)

    # nothing is fitted twice: with the chosen parameters as the config's (the reference is then
    # the chosen point), or a smaller grid (one temperature), every sweep fit already exists
    for extra in (work / "results/sweep/chosen.yaml",
                  write_config(tmp_path / "smaller.yaml", base=None, sweep={"grid": {"temperature": [0.5]}})):
        proc = run_snakemake(work, "--dry-run", "sweep", "--configfile", *map(str, files), str(extra))
        assert "fit" not in job_counts(proc.stdout), proc.stdout[-3000:]
