"""Cluster execution through Snakemake's SLURM executor plugin (profiles/slurm).

* A dry run with the SLURM profile (no SLURM needed, only the plugin): the fits ask for one GPU
  and the per-site environment variables reach the right jobs.
* A real run: a throwaway one-node SLURM cluster on this machine (tests/slurm/onenode.py: a
  private munged, slurmctld and slurmd, stopped by PID afterwards), the whole sample workflow
  through real `sbatch` jobs with profiles/slurm plus the CI overrides of tests/slurm/profile,
  then every output checked as the local sample run's test does; then `snakemake sweep` (12 grid
  points, side by side as GPU jobs), its outputs checked as the local sweep's test does.

Without the SLURM binaries (apt-get install slurmctld slurmd slurm-client munge), root, or the
plugin, the real-cluster tests skip with the reason; with CEBRA_REQUIRE_SLURM=1 (CI) they fail
instead. Every wait has a timeout; a cluster that cannot start is reported with its daemon logs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, effective_config, run_snakemake
from test_workflow import fit_count

sys.path.insert(0, str(REPO / "tests" / "slurm"))
import onenode  # noqa: E402

REQUIRE = os.environ.get("CEBRA_REQUIRE_SLURM", "") not in ("", "0")
PROFILE = REPO / "profiles" / "slurm"
CI_PROFILE = REPO / "tests" / "slurm" / "profile"
SAMPLE = REPO / "config" / "sample.yaml"
SAMPLE_CONFIG = effective_config(SAMPLE)
GPU_TYPE = "cigpu"           # the test node's GPU model (GRES type); the run asks for it by name
RUN_TIMEOUT = 1200           # seconds for the whole sample workflow on the test cluster
SITE_VARS = ("CEBRA_SLURM_ACCOUNT", "CEBRA_SLURM_PARTITION", "CEBRA_SLURM_GPU_PARTITION",
             "CEBRA_SLURM_GPU_MODEL", "CEBRA_SLURM_QOS")


def profile_gpu_rules() -> set[str]:
    """The rules profiles/slurm gives a GPU (its set-resources entries with gpu)."""
    import yte

    with open(PROFILE / "config.yaml") as stream:
        profile = yte.process_yaml(stream, require_use_yte=True)
    return {rule for rule, res in profile.get("set-resources", {}).items() if res.get("gpu")}


GPU_RULES = profile_gpu_rules()


def job_counts(stdout: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (rule -> number of jobs)."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stdout, re.M)}


def plugin_missing() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return None


def skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(f"CEBRA_REQUIRE_SLURM is set, but {reason}", pytrace=False)
    pytest.skip(reason)


def clean_env(base: dict | None = None, **site) -> dict:
    """``base`` (default: this process's environment) without the caller's own CEBRA_SLURM_*
    settings, plus ``site``; the venv's python first on PATH (the jobs inherit it: --export=ALL)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in SITE_VARS}
    env.update(site)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    return env


def job_resources(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) for every job of a dry run, group members included."""
    jobs, rule = [], None
    for line in stdout.splitlines():
        m = re.match(r"\s*(?:local)?rule (\w+):$", line)
        if m:
            rule = m.group(1)
        m = re.match(r"\s*resources: (.*)$", line)
        if m and rule:
            jobs.append((rule, dict(kv.split("=", 1) for kv in m.group(1).split(", "))))
            rule = None
    return jobs


# ------------------------------------------------------------------------------ no SLURM needed


@pytest.mark.parametrize("site", [{}, {"CEBRA_SLURM_ACCOUNT": "lab42", "CEBRA_SLURM_PARTITION": "short",
                                      "CEBRA_SLURM_GPU_PARTITION": "gpu", "CEBRA_SLURM_GPU_MODEL": "a100"}],
                         ids=["no-site-vars", "site-vars"])
def test_slurm_profile_dry_run(tmp_path, site):
    """The cheap check: the user profile's resources, per job, without any SLURM."""
    if plugin_missing():
        skip_or_fail(plugin_missing())
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--snakefile", str(REPO / "Snakefile"),
         "--workflow-profile", str(PROFILE), "--configfile", str(SAMPLE)],
        cwd=tmp_path, env=clean_env(**site), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "workflow specific profile" in proc.stderr and str(PROFILE) in proc.stderr
    jobs = job_resources(proc.stdout)
    counts = job_counts(proc.stdout)
    fits = [res for rule, res in jobs if rule in GPU_RULES]
    light = [(rule, res) for rule, res in jobs if rule not in GPU_RULES and rule != "all"]
    assert counts["fit"] == fit_count(SAMPLE_CONFIG) and counts["adapt_session"] == len(SAMPLE_CONFIG["seeds"])
    assert len(fits) == sum(counts.get(rule, 0) for rule in GPU_RULES) >= 5, jobs
    assert len(light) == counts["total"] - len(fits) - 1, jobs
    for res in fits:
        assert res["gpu"] == "1" and res["runtime"] == "180" and res["mem_mb"] == "16000", res
        assert res["cpus_per_task"] == "1"  # follows `threads` (fit_threads, default 1)
        assert res.get("gpu_model") == site.get("CEBRA_SLURM_GPU_MODEL")
        assert res.get("slurm_partition") == site.get("CEBRA_SLURM_GPU_PARTITION")
        assert res.get("slurm_account") == site.get("CEBRA_SLURM_ACCOUNT")
    for rule, res in light:
        assert "gpu" not in res and "gpu_model" not in res, rule
        assert (res["runtime"], res["mem_mb"], res["cpus_per_task"]) == ("30", "2000", "1"), (rule, res)
        assert res.get("slurm_partition") == site.get("CEBRA_SLURM_PARTITION")
        assert res.get("slurm_account") == site.get("CEBRA_SLURM_ACCOUNT")
    # the small rules go out as two group jobs, the fits one by one
    assert "Group job data" in proc.stdout and "Group job post" in proc.stdout


def test_profile_gives_a_gpu_to_the_workflows_gpu_rules(tmp_path):
    """profiles/slurm asks a GPU for exactly the rules the workflow itself marks as GPU rules
    (resources gpu=1 with `gpu: true`): a new training rule cannot silently land on a CPU job."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--snakefile", str(REPO / "Snakefile"),
         "--workflow-profile", "none", "--configfile", str(SAMPLE), "--config", "gpu=True"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    workflow_gpu_rules = {rule for rule, res in job_resources(proc.stdout) if res.get("gpu") == "1"}
    assert {"fit", "adapt_session"} <= workflow_gpu_rules
    assert GPU_RULES == workflow_gpu_rules


def test_sweep_fits_are_gpu_jobs_of_the_fit_rule(tmp_path):
    """`snakemake sweep` through profiles/slurm: every grid point x seed is its own fit job with a
    GPU (the one fit rule, so the profile's list of GPU rules covers it); the rest joins the post group."""
    if plugin_missing():
        skip_or_fail(plugin_missing())
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "sweep", "--snakefile", str(REPO / "Snakefile"),
         "--workflow-profile", str(PROFILE), "--configfile", str(SAMPLE), str(REPO / "config/sweep.example.yaml")],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = job_resources(proc.stdout)
    fits = [res for rule, res in jobs if rule == "fit"]
    assert len(fits) == 12 * len(SAMPLE_CONFIG["seeds"]) == job_counts(proc.stdout)["fit"]
    assert all(res["gpu"] == "1" and res["mem_mb"] == "16000" for res in fits), fits
    assert {rule for rule, _ in jobs} == {"fit", "simulate_session", "check_sessions", "sweep_table", "plot_sweep", "sweep"}
    assert "Group job post" in proc.stdout


def test_ci_profile_keeps_the_user_profiles_resources():
    """The test cluster's overrides are executor settings only, so the real run below exercises
    the resources users get (gpu=1 for the fits, runtime, memory, groups)."""
    ci = yaml.safe_load((CI_PROFILE / "config.yaml").read_text())
    assert set(ci) <= {"jobs", "latency-wait", "retries", "slurm-status-command", "slurm-no-account",
                       "slurm-init-seconds-before-status-checks", "slurm-keep-successful-logs"}, set(ci)
    assert ci["slurm-status-command"] == "squeue"  # no slurmdbd: sacct fails, then hangs


def test_cluster_failure_is_reported_and_cleaned_up(monkeypatch):
    """A daemon that dies at start gives a clear error with its logs, quickly, and nothing is left running."""
    if onenode.missing_binaries() or os.geteuid() != 0:
        pytest.skip("needs the SLURM binaries and root")
    real_which = onenode._which
    monkeypatch.setattr(onenode, "_which", lambda name: "/bin/false" if name == "slurmd" else real_which(name))
    cluster = onenode.OneNodeSlurm(start_timeout=30)
    pids = []
    real_spawn = cluster._spawn

    def spawn(name, argv, **kw):
        real_spawn(name, argv, **kw)
        pids.append(cluster.procs[name].pid)

    cluster._spawn = spawn
    start = time.monotonic()
    try:
        with pytest.raises(onenode.SlurmUnavailable, match=r"slurmd exited with code 1[\s\S]*slurmctld"):
            cluster.start()
    finally:
        cluster.cleanup()
    assert time.monotonic() - start < 30
    assert len(pids) == 3 and not cluster.procs
    for pid in pids:  # munged, slurmctld, slurmd: all reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# ------------------------------------------------------------------------------ a real cluster


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = plugin_missing()
    missing = onenode.missing_binaries()
    if not reason and missing:
        reason = (f"SLURM binaries not found: {', '.join(missing)} "
                  "(apt-get install --no-install-recommends slurmctld slurmd slurm-client munge)")
    if not reason and os.geteuid() != 0:
        reason = "the one-node SLURM test cluster needs root"
    if reason:
        skip_or_fail(reason)
    # Six fake GPUs of model GPU_TYPE, so the fits run at once as on a GPU partition; the node is
    # declared big enough for the user profile's requests (bookkeeping only, nothing enforced).
    cluster = onenode.OneNodeSlurm(gpus=6, gpu_type=GPU_TYPE, cpus=12, mem_mb=128000, start_timeout=60)
    try:
        cluster.start()
    except onenode.SlurmUnavailable as exc:
        skip_or_fail(f"the one-node SLURM cluster did not start:\n{exc}")
    try:
        yield cluster
    finally:
        cluster.cleanup()


def slurm_jobs(cluster) -> list[dict[str, str]]:
    """Every job the test cluster has seen (finished ones stay visible: MinJobAge=3600)."""
    proc = subprocess.run(["scontrol", "show", "job", "-o"], env=cluster.env(), capture_output=True,
                          text=True, timeout=30)
    jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in proc.stdout.splitlines() if line.startswith("JobId=")]
    return sorted(jobs, key=lambda j: int(j["JobId"]))


def job_rule(comment: str) -> str:
    """The rule (or group) of a SLURM job from the plugin's comment 'rule_<name>[_wildcards_<w>]'."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def fit_device(work: Path, comment: str) -> str:
    """'cpu, fit 8.1 s' from a GPU rule's log ('... done on cpu in 8.1 s ...'), '' for other jobs.

    The job's log is found by its wildcards: the plugin's comment 'rule_<name>_wildcards_<values>'
    and the log's path hold the same values (compared without separators and fixed words)."""
    m = re.match(r"rule_(\w+?)_wildcards_(.+)$", comment)
    if not m or m.group(1) not in GPU_RULES:
        return ""
    key = re.sub(r"[^A-Za-z0-9]", "", m.group(2))
    for log in [*(work / "logs/fits").rglob("*.log"), *(work / "logs/new_session").rglob("*.log")]:
        parts = log.relative_to(work / "logs").with_suffix("").parts[1:]
        if re.sub(r"[^A-Za-z0-9]|seed|adapt", "", "".join(parts)) == key:
            found = re.search(r" on (cpu|cuda\S*) in ([\d.]+) s", log.read_text())
            return f"{found.group(1)}, {found.group(2)} s" if found else ""
    return ""


def jobs_table(jobs: list[dict[str, str]], work: Path) -> str:
    rows = [("job", "snakemake job (rule_<name|group>_...)", "partition", "cpus", "mem", "time limit",
             "gpus", "node", "state", "ran", "torch device, fit")]
    for j in jobs:
        rows.append((j["JobId"], j.get("Comment", "")[:48], j.get("Partition", ""), j.get("NumCPUs", ""),
                     j.get("MinMemoryNode", ""), j.get("TimeLimit", ""),
                     j.get("TresPerJob", "").replace("gres:", "") or "-", j.get("NodeList", ""),
                     j.get("JobState", ""), j.get("RunTime", ""), fit_device(work, j.get("Comment", ""))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def test_gpu_job_sees_its_gpu_and_torch_falls_back_to_cpu(slurm_cluster):
    """What a fit job sees: CUDA_VISIBLE_DEVICES from SLURM; without CUDA, cuda_if_available -> cpu."""
    code = ("import os, torch; from cebra_core.estimator import resolve_device; "
            "print(os.environ.get('CUDA_VISIBLE_DEVICES'), resolve_device('cuda_if_available'), torch.cuda.is_available())")
    proc = subprocess.run(
        ["srun", f"--gpus={GPU_TYPE}:1", "--mem=1000", "--time=5", sys.executable, "-c", code],
        env=clean_env(slurm_cluster.env()), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    visible, device, cuda = proc.stdout.split()
    assert visible == "0" and device == ("cuda" if cuda == "True" else "cpu")


def run_on_slurm(cluster, conda, work: Path, *args: str) -> tuple[str, list[dict[str, str]], float]:
    """``snakemake *args`` through profiles/slurm (plus the CI overrides) with --use-conda from
    ``work``: (its output, the sbatch jobs it submitted, wall seconds); fails unless it succeeded."""
    env = clean_env(cluster.env(), CEBRA_SLURM_PARTITION=onenode.PARTITION, CEBRA_SLURM_GPU_MODEL=GPU_TYPE)
    env.pop("PYTHONPATH", None)
    env.update(PATH=f"{conda.BIN}{os.pathsep}{env['PATH']}", CONDA_STANDIN_TRACE=str(conda.trace))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *conda.args,
           "--profile", str(PROFILE), "--workflow-profile", str(CI_PROFILE), *args]
    log = work / "snakemake-slurm.log"
    earlier = {j["JobId"] for j in slurm_jobs(cluster)}  # e.g. the srun test's job
    start = time.monotonic()
    with open(log, "w") as out:  # run from the work folder: the plugin submits jobs with -D <cwd>
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # snakemake cancels its SLURM jobs on SIGTERM
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            returncode = None
    wall = time.monotonic() - start
    jobs = [j for j in slurm_jobs(cluster) if j["JobId"] not in earlier]
    output = log.read_text(errors="replace")
    assert returncode is not None, (f"the SLURM run did not finish within {RUN_TIMEOUT} s\n{output[-4000:]}\n"
                                    f"{cluster.diagnostics()}")
    assert returncode == 0, f"snakemake failed ({returncode})\n{output[-6000:]}\n{cluster.diagnostics()}"
    assert all(j["JobState"] == "COMPLETED" for j in jobs), jobs_table(jobs, work)
    assert "Creating conda environment" not in output  # built before, shared with tests/test_conda.py
    return output, jobs, wall


def check_gpu_jobs(jobs: list[dict[str, str]], counts: dict[str, int], work: Path) -> list[str]:
    """Every job of a GPU rule was its own sbatch job with one GPU of the test model, the profile's
    time and memory; the other jobs had no GPU. Returns the groups the other jobs ran as."""
    table = jobs_table(jobs, work)
    gpu_jobs = [j for j in jobs if job_rule(j.get("Comment", "")) in GPU_RULES]
    assert len(gpu_jobs) == sum(counts.get(rule, 0) for rule in GPU_RULES) >= 5, table
    for j in jobs:
        gpu = j.get("TresPerJob", "")
        if j in gpu_jobs:
            assert gpu == f"gres:gpu:{GPU_TYPE}:1" and j["TimeLimit"] == "03:00:00", j
            assert j["MinMemoryNode"] == "16000M" and j["Partition"] == onenode.PARTITION, j
        else:
            assert "gpu" not in gpu and j["Partition"] == onenode.PARTITION, j
    assert len(list((work / ".snakemake/slurm_logs").rglob("*.log"))) == len(jobs)
    return sorted(job_rule(j.get("Comment", "")).split("_")[0] for j in jobs if j not in gpu_jobs)


@pytest.mark.slow
def test_sample_workflow_on_slurm(slurm_cluster, conda_standin, tmp_path, capsys):
    """The whole sample workflow as real sbatch jobs through profiles/slurm with --use-conda (the
    conda stand-in and the envs of tests/test_conda.py, built once per session), every output
    checked, every job run in its env."""
    work = tmp_path / "work"
    work.mkdir()
    conda_standin.create_envs(tmp_path / "envs")  # outside RUN_TIMEOUT; nothing to do when already built
    output, jobs, wall = run_on_slurm(slurm_cluster, conda_standin, work, "--configfile", str(SAMPLE))
    with capsys.disabled():
        print(f"\n\nsample workflow through SLURM ({len(jobs)} sbatch jobs): {wall:.0f} s wall, "
              f"cluster up in {slurm_cluster.startup_seconds:.1f} s\n{jobs_table(jobs, work)}\n")

    # every job went through sbatch: one per GPU-rule job (on a GPU), the data and post groups
    counts = job_counts(output)
    assert check_gpu_jobs(jobs, counts, work) == ["data", "post"], jobs_table(jobs, work)

    # the outputs: the same checks as the local sample run (tests/test_workflow.py)
    run_snakemake(work, *conda_standin.args, "--report", "report.html", configfile=SAMPLE, env=conda_standin.env)
    from test_conda import check_jobs_ran_in_envs
    from test_workflow import check_sample_outputs

    check_sample_outputs(work, *conda_standin.args, env=conda_standin.env)
    check_jobs_ran_in_envs(conda_standin, work, counts)


@pytest.mark.slow
def test_sweep_on_slurm(slurm_cluster, conda_standin, tmp_path, capsys):
    """`snakemake sweep` (the example's 12 grid points, cheap) as real sbatch jobs: every grid point
    is its own GPU fit job, run side by side; the table, figure, report and chosen config as locally."""
    from test_workflow import check_sweep_outputs, cheap_sweep_configs

    work = tmp_path / "work"
    work.mkdir()
    conda_standin.create_envs(tmp_path / "envs")
    files = cheap_sweep_configs(tmp_path)
    output, jobs, wall = run_on_slurm(slurm_cluster, conda_standin, work, "sweep", "--configfile", *map(str, files))
    with capsys.disabled():
        print(f"\n\nsweep through SLURM ({len(jobs)} sbatch jobs): {wall:.0f} s wall\n{jobs_table(jobs, work)}\n")
    counts = job_counts(output)
    assert counts["fit"] == 12 and set(check_gpu_jobs(jobs, counts, work)) <= {"data", "post"}
    fits = [j for j in jobs if job_rule(j.get("Comment", "")) == "fit"]
    starts = sorted(j["StartTime"] for j in fits)
    ends = sorted(j["EndTime"] for j in fits)
    assert starts[1] < ends[0], "the grid's fit jobs ran one after another, not side by side"

    run_snakemake(work, *conda_standin.args, "sweep", "--report", "sweep.html", "--configfile", *map(str, files),
                  env=conda_standin.env)
    check_sweep_outputs(work, files)
