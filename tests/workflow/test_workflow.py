"""The Snakemake workflow through its CLI: lint and snakefmt, dry runs that the DAG is the plan's, bad
sessions caught by the check job, the trial protocol, a continuous session, sweeps, and a real-data run on achilles + buddy from the shared data folder (without conda)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cebra_core.sessions.rats import PUBLISHED
from helpers import (REPO, SAMPLE_RUN, assert_not_blank, config_file, effective_config, expected_fits, fit_dir, job_counts,
                     plan_for, run_snakemake, shared_file, snakemake_command, write_config)

SAMPLE = effective_config(*SAMPLE_RUN)  # the config of the suite's sample run
RATS = list(PUBLISHED)  # the four rats, in the demo's order


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


@pytest.mark.slow
def test_trial_protocol_end_to_end(tmp_path):
    """evaluation.protocol trials on two simulated rats: the held-out fits of split numbers 0-2 train
    on exactly their train trials (CEBRA's rows, in time order), every row is marked with its part,
    and the decoder's k comes from the grid, chosen on the validation trials."""
    from cebra_core import CEBRA
    from cebra_core.sessions.data import read_session
    from cebra_core.analysis.splits import fit_rows
    from cebra_core.analysis.trials import TrialSplit

    rats = ["cicero", "gatsby"]
    config = write_config(tmp_path / "trials.yaml", sessions=rats, seeds=[0], data={"simulate": {"scale": 0.3}},
                          evaluation={"protocol": "trials"}, new_session={"held_out": None},
                          cebra={"batch_size": 128, "max_iterations": 40, "checkpoint_every": 40})
    work = tmp_path / "work"
    run_snakemake(work, "results/tables/decoding.csv", configfile=config)
    decoding = pd.read_parquet(work / "results/tables/decoding.parquet")
    assert sorted(set(decoding["split"])) == ["fold0", "fold1", "fold2"] and len(decoding) == 2 * 3 * 4 * 6
    assert set(decoding["k"]) <= {1, 4, 9, 16, 25} and np.isfinite(decoding["value"]).all()
    # one k per (fit, fold, pair, column), chosen on the validation rows, for both metrics
    assert (decoding.groupby(["kind", "split", "train", "test", "column"])["k"].nunique() == 1).all()
    for split_no in range(3):
        model = CEBRA.load(fit_dir(work, "multi", f"fold{split_no}") / "model.pt")
        embedding = pd.read_parquet(fit_dir(work, "multi", f"fold{split_no}") / "embedding.parquet")
        for rat, trained in zip(rats, model._extra_state["trained_continuous"]):
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
    assert (f"session 'tiny' ({paths['tiny']}): the kNN decoder is fitted on the first 9 of its 12 time bins "
            "(evaluation.test_fraction=0.2)" in out)
    assert "session 'long'" not in out and not (tmp_path / "work/results/data/checks.tsv").exists()


@pytest.mark.slow
def test_a_continuous_session_end_to_end(tmp_path):
    """Two sample rats given as files, one of them z-scored (a calcium-like continuous signal, negative
    values) and declared `continuous`: checked, imported, fitted single and multi, aligned and scored
    (the sample run draws the figures from the same tables)."""
    from cebra_core.sessions.simulate import simulate_session

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
    assert (f"session 'two' ({tmp_path / 'bad.npz'}): label column(s) ['position', 'right', 'left'] (the labels key) "
            "are missing; found ['spikes']") in out
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
    measures = ["final_loss", "validation_decoding", "validation_chance", "validation_consistency", "fit_seconds"]
    assert np.isfinite(table[measures]).all().all()
    chosen = table[table["chosen"]]  # select_by validation_decoding: the position error (m), lowest wins
    assert len(chosen) == 1 and chosen["point"].iloc[0] == table.loc[table["validation_decoding"].idxmin(), "point"]
    scored = table["chosen"] | table["reference"]
    assert table.loc[scored, "test_decoding"].notna().all() and table.loc[~scored, "test_decoding"].isna().all()
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
