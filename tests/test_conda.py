"""``snakemake --use-conda``, end to end, through the conda stand-in (tests/conda/bin/conda).

The whole sample workflow runs with ``--use-conda`` and a conda prefix shared by the test session
(conftest.py, ``conda_standin``): Snakemake builds every env from envs/*.yaml exactly as it would with
a real conda (the same commands, the env file copied into the prefix, the pip section run from
there), then runs each job after ``source <conda_prefix>/bin/activate <env>``. Every output is
checked (tests/test_workflow.py, ``check_sample_outputs``). This run is the test session's one
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

import pandas as pd
import pytest

from conftest import REPO, SAMPLE_RUN, job_counts, kill_at_checkpoint, run_snakemake, write_config
from test_conda_envs import IMPORT_TO_CONDA, rule_steps
from test_workflow import fit_dir


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
    from test_workflow import check_sample_outputs

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
    checkpoints = tmp_path / "results/checkpoints/all/seed0/single"
    kill_at_checkpoint(tmp_path, target, configfile=SAMPLE_RUN, checkpoints=checkpoints, pattern="cicero.pt")
    assert not (tmp_path / target).exists(), "the fit finished before it could be killed"

    run_snakemake(tmp_path, "--unlock", configfile=SAMPLE_RUN)
    run_snakemake(tmp_path, target, "--rerun-incomplete", configfile=SAMPLE_RUN)
    assert "resuming from checkpoint" in (tmp_path / "logs/fits/all/seed0/single/cicero.log").read_text()
    for name in ("embedding.parquet", "loss.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(fit_dir(tmp_path, "single/cicero") / name),
            pd.read_parquet(fit_dir(sample_run[0], "single/cicero") / name),
        )
    assert not list(checkpoints.glob("*.pt"))


@pytest.mark.slow
def test_a_changed_analysis_key_reruns_the_check_never_a_fit(sample_run, conda_standin, tmp_path):
    """Every fit depends on results/data/checks.tsv (test_dry_run_builds_the_plans_dag), through
    ancient(): on the finished sample run, a changed analysis key reruns the check, never a fit."""
    changed = write_config(tmp_path / "changed.yaml", base=None, analysis={"decoding_neighbors": 20})
    target = "results/fits/all/seed0/single/buddy/model.pt"
    proc = run_snakemake(sample_run[0], *conda_standin.args, "--dry-run", target, configfile=(*SAMPLE_RUN, changed),
                         env=conda_standin.env)
    assert job_counts(proc.stdout) == {"check_sessions": 1, "total": 1}, proc.stdout
