"""``snakemake --use-conda``, end to end, through the conda stand-in (tests/conda/bin/conda).

The whole sample workflow runs with ``--use-conda`` and a conda prefix shared by the test session
(conftest.py, ``conda_standin``): Snakemake builds every env from envs/*.yaml exactly as it would with
a real conda (the same commands, the env file copied into the prefix, the pip section run from
there), then runs each job after ``source <conda_prefix>/bin/activate <env>``. Every output is
checked (``check_sample_outputs``, below). This run is the test session's one
sample run (conftest.py, ``sample_run``).

Proof that the jobs ran inside their envs: each env's Python leaves a record per process
(sys.prefix, argv, the file of each top-level module). For every job: its interpreter is its
rule's env, every scientific package it loaded (also the ones loaded indirectly, such as pandas'
parquet engine) comes from that env and not from the host's site-packages that Snakemake appends to
sys.path, and cebra_core comes from this checkout's src/. A second, small run from an unrelated
working folder (``--snakefile``/``--directory``) reuses the built envs. A fit killed mid-way and
resumed without conda gives this run's numbers, and a changed analysis key reruns the session
check but no fit. The tests share the sample run, so they live in one file: pytest-xdist's --dist
loadfile runs them on one worker.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import (REPO, SAMPLE_RUN, assert_not_blank, check_embedding_table, fit_dir, job_counts, kill_at_checkpoint,
                     run_snakemake, sample_config, sample_length, write_config)
from cebra_core.sessions.rats import RAT_SHAPES

RATS = sample_config()["sessions"]
from helpers.conda import IMPORT_TO_CONDA, rule_steps


def job_records(conda, work: Path) -> list[dict]:
    """The stand-in's records of the workflow scripts run for ``work`` (Snakemake runs a script as
    ``python <work>/.snakemake/scripts/tmpXXXX.<script>.py``)."""
    records = []
    for path in sorted(conda.trace.glob("*.json")):
        record = json.loads(path.read_text())
        argv0 = record["argv"][0] if record["argv"] else ""
        if argv0.startswith(str(work / ".snakemake" / "scripts")):
            record["script"] = Path(argv0).name.split(".", 1)[1]
            records.append(record)
    return records


def installed_package(path: Path) -> str | None:
    """The top-level package a module file belongs to when it lies in a site-packages folder."""
    parts = path.parts
    if "site-packages" not in parts:
        return None
    return parts[parts.index("site-packages") + 1].split(".")[0]


def check_jobs_ran_in_envs(conda, work: Path, counts: dict[str, int]) -> dict[str, set[str]]:
    """Every job of ``counts`` (rule -> jobs) ran in its rule's env, with that env's packages.
    Returns, per env, the top-level modules its jobs took from outside the env (for the report)."""
    steps = rule_steps()
    envs = conda.envs()
    script_env = {script: env for env, script in steps.values() if script}
    expected = Counter()
    for rule, n in counts.items():
        if rule in steps and steps[rule][1]:
            expected[steps[rule][1]] += n
    records = job_records(conda, work)
    assert Counter(r["script"] for r in records) == expected, "one record per job, each from an env's python"
    stdlib = Path(sys.base_prefix).resolve()
    outside: dict[str, set[str]] = {}
    problems = []
    for record in records:
        env = envs[script_env[record["script"]]].resolve()
        where = f"{record['script']} (env {script_env[record['script']]})"
        if Path(record["prefix"]).resolve() != env:
            problems.append(f"{where} ran with sys.prefix {record['prefix']}")
        if "cebra_core" not in record["modules"]:
            problems.append(f"{where} did not import cebra_core")
        for top, path in record["modules"].items():
            path = Path(path).resolve()
            package = installed_package(path) or top  # extension modules register odd names (scipy's _ni_label)
            if top == "cebra_core":
                if not path.is_relative_to(REPO / "src"):
                    problems.append(f"{where} loaded cebra_core from {path}")
            elif path.is_relative_to(env) or path.is_relative_to(REPO) or (
                    path.is_relative_to(stdlib) and "site-packages" not in path.parts):
                continue
            elif package in IMPORT_TO_CONDA:
                problems.append(f"{where} loaded {package} from {path}, not from its env")
            else:
                outside.setdefault(script_env[record["script"]], set()).add(package)
    assert not problems, "\n".join(sorted(set(problems)))
    return outside


@pytest.mark.slow
def test_sample_workflow_with_conda(sample_run, conda_standin, capsys):
    work, output, built = sample_run
    envs = conda_standin.envs()
    assert set(envs) == {env for env, _ in rule_steps().values() if env}, envs  # one per env file, all used
    assert built in (0, len(envs))  # 0: another test of this session built them first
    assert output.count("Activating conda environment") > 0
    check_sample_outputs(work, *conda_standin.args, env=conda_standin.env)
    outside = check_jobs_ran_in_envs(conda_standin, work, job_counts(output))
    with capsys.disabled():
        print(f"\nmodules the jobs took from outside their env (Snakemake's preamble): {outside}")


@pytest.mark.slow
def test_conda_run_from_another_folder(sample_run, conda_standin, tmp_path):
    """From an unrelated working folder, with --snakefile and --directory: the built envs are reused
    and the jobs still find this checkout's cebra_core."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work = tmp_path / "work"
    target = "results/data/sessions/buddy.parquet"
    proc = run_snakemake(work, *conda_standin.args, target, configfile=SAMPLE_RUN, env=conda_standin.env, cwd=elsewhere)
    output = proc.stdout + proc.stderr
    assert "Creating conda environment" not in output
    assert (work / target).is_file() and not (elsewhere / "results").exists()
    check_jobs_ran_in_envs(conda_standin, work, job_counts(output))


@pytest.mark.slow
def test_killed_fit_resumes_and_matches(sample_run, tmp_path):
    """SIGKILL the whole snakemake process group once a checkpoint exists; the rerun resumes and
    gives the same numbers as the uninterrupted sample run (made with --use-conda: so the conda route
    and the plain route compute the same fit)."""
    target = "results/fits/all/seed0/single/cicero/embedding.parquet"
    checkpoints = fit_dir(tmp_path, "single/cicero")
    kill_at_checkpoint(tmp_path, target, configfile=SAMPLE_RUN, checkpoints=checkpoints)
    assert not (tmp_path / target).exists(), "the fit finished before it could be killed"

    run_snakemake(tmp_path, "--unlock", configfile=SAMPLE_RUN)
    run_snakemake(tmp_path, target, "--rerun-incomplete", configfile=SAMPLE_RUN)
    assert "resuming from checkpoint" in (tmp_path / "logs/fits/all/seed0/single/cicero.log").read_text()
    for name in ("embedding.parquet", "loss.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(fit_dir(tmp_path, "single/cicero") / name),
            pd.read_parquet(fit_dir(sample_run[0], "single/cicero") / name),
        )
    assert not (checkpoints / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_changed_analysis_key_reruns_the_check_never_a_fit(sample_run, conda_standin, tmp_path):
    """Every fit depends on results/data/checks.tsv (test_dry_run_builds_the_plans_dag), through
    ancient(): on the finished sample run, a changed analysis key reruns the check, never a fit."""
    changed = write_config(tmp_path / "changed.yaml", base=None, analysis={"decoding_neighbors": 20})
    target = "results/fits/all/seed0/single/buddy/model.pt"
    proc = run_snakemake(sample_run[0], *conda_standin.args, "--dry-run", target, configfile=(*SAMPLE_RUN, changed),
                         env=conda_standin.env)
    assert job_counts(proc.stdout) == {"check_sessions": 1, "total": 1}, proc.stdout


# ------------------------------------------------------------- every output of the sample run


def check_heldout_fits_saw_no_test_rows(work, seed: int):
    """The held-out multi-session fits trained on exactly the train rows of each session: the labels
    the model stores for its training data equal the session's labels without its test part."""
    from cebra_core import CEBRA
    from cebra_core.sessions.data import read_session

    held_out = sample_config()["new_session"]["held_out"]
    for fit, rats in (("multi", RATS), (f"multi_without/{held_out}", [r for r in RATS if r != held_out])):
        model = CEBRA.load(fit_dir(work, fit, "fold0", seed) / "model.pt")
        for rat, trained in zip(rats, model._extra_state["trained_continuous"]):
            _, labels = read_session(work / f"results/data/sessions/{rat}.parquet")
            n_test = round(len(labels) * sample_config()["evaluation"]["test_fraction"])
            np.testing.assert_array_equal(trained.numpy(), labels[: len(labels) - n_test])


def check_sample_outputs(work, *snakemake_args: str, env: dict | None = None):
    """Every output of a finished sample run in ``work`` (also used by the SLURM and conda tests);
    ``snakemake_args`` and ``env`` are those of the run (e.g. --use-conda), for the final dry run."""
    from cebra_core import CEBRA

    seeds = sample_config()["seeds"]
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
                assert len(loss) == sample_config()["cebra"]["max_iterations"] and np.isfinite(loss["total"]).all()
                assert loss["total"].iloc[-20:].mean() < loss["total"].iloc[:20].mean()  # it learned
                model = CEBRA.load(fit / "model.pt")
                assert model.num_sessions_ is None and model.max_iterations == sample_config()["cebra"]["max_iterations"]
                assert model.seed == seed
                assert (work / f"results/benchmarks/fit/{split}/seed{seed}/single/{rat}.tsv").is_file()
            check_embedding_table(pd.read_parquet(fit_dir(work, "multi", split, seed) / "embedding.parquet"), RATS, parts)
            assert CEBRA.load(fit_dir(work, "multi", split, seed) / "model.pt").num_sessions_ == 4
        for kind in ("single", "multi"):
            aligned = pd.read_parquet(work / f"results/alignment/seed{seed}/{kind}.parquet")
            assert (aligned["kind"] == kind).all() and (aligned["seed"] == seed).all()
            check_embedding_table(aligned.drop(columns=["kind", "seed"]), RATS)
        check_heldout_fits_saw_no_test_rows(work, seed)
    # different seeds, different fits
    a, b = (pd.read_parquet(fit_dir(work, "multi", "all", seed) / "embedding.parquet") for seed in seeds[:2])
    assert not np.allclose(a[["z0", "z1", "z2"]], b[["z0", "z1", "z2"]])

    consistency = pd.read_parquet(work / "results/tables/consistency.parquet")
    assert list(consistency.columns) == ["kind", "seed", "split", "label", "source", "target", "score"]
    assert (consistency["label"] == "position").all()
    for kind in ("single", "multi"):
        for seed in seeds:
            part = consistency[(consistency["kind"] == kind) & (consistency["seed"] == seed)]
            assert sorted(zip(part["source"], part["target"])) == sorted((a, b) for a in RATS for b in RATS if a != b)
            assert np.isfinite(part["score"]).all() and part["score"].le(1).all()
    means = consistency.groupby("kind")["score"].mean()
    print(f"\nsample consistency: single {means['single']:.3f}, multi {means['multi']:.3f}")
    assert means["multi"] > means["single"]

    decoding = pd.read_parquet(work / "results/tables/decoding.parquet")
    assert list(decoding.columns) == ["kind", "seed", "split", "encoder", "train", "test", "column", "metric", "value",
                                      "chance", "n_train", "n_test", "test_coverage", "flagged", "k"]
    assert (decoding["k"] == sample_config()["analysis"]["decoding_neighbors"]).all()  # the contiguous protocol's fixed k
    # Every label column (position and the two direction flags, continuous as CEBRA trains them) by both metrics.
    metrics = [(c, m) for c in ("position", "right", "left") for m in ("median_abs_error", "r2")]
    assert len(decoding) == 2 * len(seeds) * len(RATS) ** 2 * len(metrics)
    assert sorted(set(zip(decoding["column"], decoding["metric"]))) == sorted(metrics)
    assert np.isfinite(decoding[["value", "chance"]]).all().all()
    assert (decoding["split"] == "fold0").all() and set(decoding["seed"]) == set(seeds)
    within = decoding[(decoding["train"] == decoding["test"]) & (decoding["column"] == "position")
                      & (decoding["metric"] == "median_abs_error")]
    assert within["n_test"].tolist() == [round(sample_length(r) * 0.2) for r in RATS] * 2 * len(seeds)
    assert (decoding["flagged"] == (decoding["test_coverage"] < sample_config()["evaluation"]["min_coverage"])).all()
    # Position (metres) within each rat: far better than the same decoder on shuffled training labels.
    assert within["value"].mean() < 0.5 * within["chance"].mean()

    statistics = pd.read_parquet(work / "results/tables/statistics.parquet")
    test = statistics[statistics["measure"] == "consistency_paired_test"]
    assert len(test) == 1 and test["n"].iloc[0] == 12 and 0 <= test["p_value"].iloc[0] <= 1
    runs = statistics[statistics["measure"] == "runs_consistency"]
    assert len(runs) == 2 * len(RATS) and runs["mean"].between(-1, 1).all() and (runs["n"] == len(seeds)).all()
    for measure in ("decoding_median_abs_error", "chance_median_abs_error", "decoding_r2", "chance_r2"):
        rows = statistics[statistics["measure"] == measure]
        assert len(rows) == 2 * len(RATS) * 3 and set(rows["label"]) == {"position", "right", "left"}, measure
        assert (rows["n"] == len(seeds)).all() and (rows["sd"] >= 0).all()
    print("\nsample statistics:\n" + statistics[statistics["measure"].isin(
        ["consistency", "consistency_paired_test", "runs_consistency"])].to_string(index=False))

    consistency, errors = check_new_session(work, sample_config()["new_session"]["held_out"], RATS, seeds)
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
    assert not list((work / "results").rglob("*.part")) and not list((work / "results").rglob("checkpoint.pt"))
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
    assert list(table.columns) == ["seed", "split", "kind", "measure", "column", "source", "target", "value", "chance",
                                   "test_coverage", "flagged"]
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
        decoding = part[part["measure"].isin(["median_abs_error", "r2"])]
        assert sorted(zip(decoding["column"], decoding["measure"])) == sorted(
            (c, m) for c in ("position", "right", "left") for m in ("median_abs_error", "r2"))
        assert np.isfinite(decoding["chance"]).all()
        assert set(decoding["source"]) == {held_out if kind == "single" else pooled}
        assert (decoding["target"] == held_out).all()
    assert (work / f"results/tables/new_session_{held_out}.csv").read_text().startswith("seed,split,kind,measure")

    value = table.groupby(["kind", "column", "measure"])["value"].mean()
    numbers = {kind: value[(kind, "position", "consistency_mean")] for kind in NEW_SESSION_KINDS}
    errors = {kind: value[(kind, "position", "median_abs_error")] * 100 for kind in NEW_SESSION_KINDS}
    print(f"\nnew session {held_out}: consistency " + ", ".join(f"{k} {v:.3f}" for k, v in numbers.items())
          + "; median decoding error (cm) " + ", ".join(f"{k} {v:.1f}" for k, v in errors.items()))
    return numbers, errors


@pytest.mark.slow
def test_online_adapts_the_held_out_rat_and_streams_it(sample_run, conda_standin):
    """`snakemake online` on the finished sample run: the causal leave-one-out fit and its centred twin
    are trained (nothing else reruns), the held-out rat is adapted from each of online.seconds and
    its rest streamed; the streamed decoding beats chance, and more seconds decode better."""
    from cebra_core import CEBRA

    work, config = sample_run[0], sample_config()
    held_out, seconds = config["new_session"]["held_out"], config["online"]["seconds"]
    dry = run_snakemake(work, *conda_standin.args, "--dry-run", "online", configfile=SAMPLE_RUN, env=conda_standin.env)
    assert {rule: n for rule, n in job_counts(dry.stdout).items() if rule != "total"} == {
        "fit": 2, "online_session": 1, "plot_online": 1, "online": 1}, dry.stdout
    run_snakemake(work, *conda_standin.args, "online", configfile=SAMPLE_RUN, env=conda_standin.env)
    causal = CEBRA.load(fit_dir(work, f"multi_without/{held_out}", "online") / "model.pt")
    centred = CEBRA.load(fit_dir(work, f"multi_without/{held_out}", "all") / "model.pt")
    assert causal.causal and not centred.causal and causal.num_sessions_ == centred.num_sessions_ == len(RATS) - 1
    table = pd.read_csv(work / f"results/tables/online_{held_out}.csv")
    pd.testing.assert_frame_equal(table, pd.read_parquet(work / f"results/tables/online_{held_out}.parquet"),
                                  check_exact=False, rtol=1e-3, atol=1e-4)  # the csv keeps 4 decimals
    print("\nonline:\n" + table.to_string(index=False))
    assert table["seconds"].tolist() == seconds and (table["session"] == held_out).all()
    bins = [round(s / config["online"]["bin_seconds"]) for s in seconds]
    assert table["bins"].tolist() == bins
    assert (table["streamed_bins"] == sample_length(held_out) - table["bins"]).all()
    assert (table["column"] == "position").all() and (table["metric"] == "median_abs_error").all()
    assert (table["latency_median_ms"] > 0).all() and (table["latency_p99_ms"] >= table["latency_median_ms"]).all()
    assert (table["value"] < 0.6 * table["chance"]).all()  # metres; measured 0.27 and 0.11 vs chance 0.60, 0.58
    assert table["value"].iloc[-1] < table["value"].iloc[0]
    assert np.isfinite(table["offline_value"]).all()
    assert_not_blank(work / f"results/figures/online_{held_out}.png")
