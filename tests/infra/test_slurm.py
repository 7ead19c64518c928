"""Cluster execution through Snakemake's SLURM executor plugin (profiles/slurm).

* Without SLURM (only the plugin): one dry run of the sample workflow and the example sweep with
  the SLURM profile and a site's environment variables: every fit asks for one GPU, the per-site
  settings reach the right jobs; the profile without those variables leaves them out.
* On a real cluster: a throwaway one-node SLURM cluster on this machine (tests/helpers/slurm_cluster.py: a
  private munged, slurmctld and slurmd, stopped by PID afterwards), then what only SLURM shows, on
  a tiny config (two rats, one seed, a few iterations): a job's GPU and torch's CPU fallback
  (srun); one Snakemake run of the workflow and a two-point sweep as real `sbatch` jobs with
  profiles/slurm plus the CI overrides of tests/slurm/profile (a GPU job per fit with the
  profile's resources, the `data` and `post` group jobs, sweep fits side by side); and a fit killed by its time limit and one preempted (SIGTERM), each resubmitted by
  the profile's retry with twice the time, resumed from its checkpoint on the shared file system,
  bit-identical to an uninterrupted local fit. The local sample run (tests/workflow/test_sample_run.py,
  tests/workflow/test_workflow.py) checks every output and every job's conda environment; these tests check
  what only SLURM shows, with the jobs in this Python environment (--export=ALL).

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

import pandas as pd
import pytest
import yaml

from helpers import (REPO, config_file, effective_config, expected_fits, job_counts, plan_for, run_snakemake,
                      skip_or_fail, state_digest, write_config)

from helpers import slurm_cluster as onenode

PROFILE = REPO / "profiles" / "slurm"
CI_PROFILE = REPO / "tests" / "slurm" / "profile"
SAMPLE = REPO / "config" / "sample.yaml"
SWEEP_EXAMPLE = REPO / "config" / "sweep.example.yaml"
SAMPLE_CONFIG = effective_config(SAMPLE)
SWEEP_POINTS = 12            # config/sweep.example.yaml: 4 temperatures x 3 output dimensions
GPU_TYPE = "cigpu"           # the test node's GPU model (GRES type); the run asks for it by name
RUN_TIMEOUT = 600            # seconds for one Snakemake run on the test cluster
SITE_VARS = ("CEBRA_SLURM_ACCOUNT", "CEBRA_SLURM_PARTITION", "CEBRA_SLURM_GPU_PARTITION",
             "CEBRA_SLURM_GPU_MODEL", "CEBRA_SLURM_QOS")
SITE = {"CEBRA_SLURM_ACCOUNT": "lab42", "CEBRA_SLURM_PARTITION": "short", "CEBRA_SLURM_GPU_PARTITION": "gpu",
        "CEBRA_SLURM_GPU_MODEL": "a100", "CEBRA_SLURM_QOS": "normal"}
# The real-cluster runs: two rats at the sample scale, one seed, no new-session target.
TINY = dict(sessions=["achilles", "buddy"], seeds=[0], new_session={"held_out": None},
            cebra={"batch_size": 128, "max_iterations": 20, "checkpoint_every": 10})
# Its targets on the cluster: the fits of both kinds, whole sessions and held out, the post group's
# tables (the local sample run makes and checks the figures), and the sweep.
TINY_TARGETS = ("results/tables/consistency.csv", "sweep")


def user_profile(environ: dict | None = None) -> dict:
    """profiles/slurm as Snakemake reads it (YTE), with ``environ`` (default: this process's) as os.environ."""
    import yte

    with open(PROFILE / "config.yaml") as stream:
        if environ is None:
            return yte.process_yaml(stream, require_use_yte=True)
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(environ)
        try:
            return yte.process_yaml(stream, require_use_yte=True)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def profile_gpu_rules() -> set[str]:
    """The rules profiles/slurm gives a GPU (its set-resources entries with gpu)."""
    return {rule for rule, res in user_profile().get("set-resources", {}).items() if res.get("gpu")}


GPU_RULES = profile_gpu_rules()


def plugin_missing() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return None


def clean_env(base: dict | None = None, **site) -> dict:
    """``base`` (default: this process's environment) without the caller's own CEBRA_SLURM_*
    settings, plus ``site``; the venv's python first on PATH (the jobs inherit it: --export=ALL)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in SITE_VARS}
    env.update(site)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    return env


def job_resources(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) for every job of a dry run, group members included; a fit's resources
    get its split under the key 'split' (from its wildcards)."""
    jobs, rule, split = [], None, None
    for line in stdout.splitlines():
        m = re.match(r"\s*(?:local)?rule (\w+):$", line)
        if m:
            rule, split = m.group(1), None
        m = re.match(r"\s*wildcards: .*\bsplit=([^,\s]+)", line)
        if m:
            split = m.group(1)
        m = re.match(r"\s*resources: (.*)$", line)
        if m and rule:
            res = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
            jobs.append((rule, {**res, "split": split} if split else res))
            rule = None
    return jobs


def group_rules(stdout: str) -> dict[str, set[str]]:
    """{group: its rules} from a dry run's 'Group job <name>' blocks (each until the next time stamp)."""
    blocks = re.split(r"^\[[^\]]+\] ", stdout, flags=re.M)
    return {m.group(1): set(re.findall(r"^\s+rule (\w+):", block, re.M))
            for block in blocks if (m := re.match(r"Group job (\w+)", block))}


# ------------------------------------------------------------------------------ no SLURM needed


def test_slurm_profile_dry_run(tmp_path):
    """The cheap check, without any SLURM: one dry run of the sample workflow and the example sweep
    through the user profile with every site variable set; each job's resources."""
    if plugin_missing():
        skip_or_fail(plugin_missing(), "CEBRA_REQUIRE_SLURM")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "all", "sweep", "--snakefile", str(REPO / "Snakefile"),
         "--workflow-profile", str(PROFILE), "--configfile", str(SAMPLE), str(SWEEP_EXAMPLE)],
        cwd=tmp_path, env=clean_env(**SITE), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "workflow specific profile" in proc.stderr and str(PROFILE) in proc.stderr
    jobs = job_resources(proc.stdout)
    counts = job_counts(proc.stdout)
    fits = [res for rule, res in jobs if rule in GPU_RULES]
    light = [(rule, res) for rule, res in jobs if rule not in GPU_RULES and rule not in ("all", "sweep")]
    seeds = len(SAMPLE_CONFIG["seeds"])
    sweep_fits = [res for res in fits if res.get("split", "").startswith("sweep/")]
    assert counts["fit"] == len(expected_fits(plan_for(config_file(SAMPLE)))) + len(sweep_fits)
    assert counts["adapt_session"] == seeds
    # the sweep: every grid point x seed is its own job of the one fit rule (so a GPU job)
    assert len(sweep_fits) == SWEEP_POINTS * seeds and len({r["split"] for r in sweep_fits}) == SWEEP_POINTS
    assert len(fits) == sum(counts.get(rule, 0) for rule in GPU_RULES), jobs
    assert len(light) == counts["total"] - len(fits) - 2, jobs
    assert {"sweep_table", "plot_sweep", "align", "decoding"} <= {rule for rule, _ in light}
    for res in fits:
        assert res["gpu"] == "1" and res["runtime"] == "180" and res["mem_mb"] == "16000", res
        assert res["cpus_per_task"] == "1"  # follows `threads` (fit_threads, default 1)
        assert (res["gpu_model"], res["slurm_partition"]) == ("a100", "gpu"), res
        assert (res["slurm_account"], res["qos"]) == ("lab42", "normal"), res
    for rule, res in light:
        assert "gpu" not in res and "gpu_model" not in res, rule
        assert (res["runtime"], res["mem_mb"], res["cpus_per_task"]) == ("30", "2000", "1"), (rule, res)
        assert (res["slurm_partition"], res["slurm_account"], res["qos"]) == ("short", "lab42", "normal"), (rule, res)
    # the small rules go out as two group jobs (the sweep's join the post group), the fits one by one
    groups = group_rules(proc.stdout)
    assert sorted(groups) == ["data", "post"] and groups["data"] | groups["post"] == {rule for rule, _ in light}
    assert groups["data"] == {"simulate_session", "check_sessions"}, groups


def test_slurm_profile_leaves_unset_site_variables_out():
    """Without the site variables the profile sets no partition, account, QOS or GPU model, so
    SLURM's defaults apply; with only CEBRA_SLURM_PARTITION the fits use it too."""
    bare = user_profile(clean_env())
    resources = [bare["default-resources"], *bare["set-resources"].values()]
    for res in resources:
        assert not {"slurm_partition", "slurm_account", "qos", "gpu_model"} & set(res), res
    assert {rule: res["gpu"] for rule, res in bare["set-resources"].items()} == {r: 1 for r in GPU_RULES}
    one = user_profile(clean_env(CEBRA_SLURM_PARTITION="short"))
    assert one["default-resources"]["slurm_partition"] == "short"
    assert all(res["slurm_partition"] == "short" for res in one["set-resources"].values())


def test_profile_gives_a_gpu_to_the_workflows_gpu_rules(tmp_path):
    """profiles/slurm asks a GPU for exactly the rules the workflow itself marks as GPU rules
    (resources gpu=1 with `gpu: true`): a new training rule cannot silently land on a CPU job."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--snakefile", str(REPO / "Snakefile"),
         "--workflow-profile", "none", "--configfile", str(SAMPLE), "--config", "gpu=True", "--", "all", "online"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    workflow_gpu_rules = {rule for rule, res in job_resources(proc.stdout) if res.get("gpu") == "1"}
    assert {"fit", "adapt_session", "online_session"} <= workflow_gpu_rules
    assert GPU_RULES == workflow_gpu_rules


def test_ci_profile_keeps_the_user_profiles_resources():
    """The test cluster's overrides are executor settings only, so the real runs below exercise
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
        skip_or_fail(reason, "CEBRA_REQUIRE_SLURM")
    # Six fake GPUs of model GPU_TYPE, so the fits run at once as on a GPU partition; the node is
    # declared big enough for the user profile's requests (bookkeeping only, nothing enforced).
    cluster = onenode.OneNodeSlurm(gpus=6, gpu_type=GPU_TYPE, cpus=12, mem_mb=128000, start_timeout=60)
    try:
        cluster.start()
    except onenode.SlurmUnavailable as exc:
        skip_or_fail(f"the one-node SLURM cluster did not start:\n{exc}", "CEBRA_REQUIRE_SLURM")
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
    code = ("import os, torch; from cebra_core.engine.estimator import resolve_device; "
            "print(os.environ.get('CUDA_VISIBLE_DEVICES'), resolve_device('cuda_if_available'), torch.cuda.is_available())")
    proc = subprocess.run(
        ["srun", f"--gpus={GPU_TYPE}:1", "--mem=1000", "--time=5", sys.executable, "-c", code],
        env=clean_env(slurm_cluster.env()), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    visible, device, cuda = proc.stdout.split()
    assert visible == "0" and device == ("cuda" if cuda == "True" else "cpu")


def run_on_slurm(cluster, work: Path, *args: str, during=None) -> tuple[str, list[dict[str, str]], float]:
    """``snakemake *args`` through profiles/slurm (plus the CI overrides) from ``work``: (its output,
    the sbatch jobs it submitted, wall seconds); fails unless it succeeded. ``during(cluster)`` runs
    while Snakemake does (to interfere with its jobs)."""
    env = clean_env(cluster.env(), CEBRA_SLURM_PARTITION=onenode.PARTITION, CEBRA_SLURM_GPU_MODEL=GPU_TYPE)
    env.pop("PYTHONPATH", None)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--profile", str(PROFILE), "--workflow-profile", str(CI_PROFILE), *args]
    log = work / "snakemake-slurm.log"
    earlier = {j["JobId"] for j in slurm_jobs(cluster)}  # e.g. the srun test's job
    start = time.monotonic()
    with open(log, "w") as out:  # run from the work folder: the plugin submits jobs with -D <cwd>
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if during is not None:
                during(cluster)
            returncode = proc.wait(timeout=max(1, RUN_TIMEOUT - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # snakemake cancels its SLURM jobs on SIGTERM
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    wall = time.monotonic() - start
    jobs = [j for j in slurm_jobs(cluster) if j["JobId"] not in earlier]
    output = log.read_text(errors="replace")
    assert returncode is not None, (f"the SLURM run did not finish within {RUN_TIMEOUT} s\n{output[-4000:]}\n"
                                    f"{jobs_table(jobs, work)}\n{cluster.diagnostics()}")
    assert returncode == 0, (f"snakemake failed ({returncode})\n{output[-6000:]}\n{jobs_table(jobs, work)}\n"
                             f"{cluster.diagnostics()}")
    return output, jobs, wall


def check_gpu_job(job: dict[str, str], attempt: int = 1) -> None:
    """A GPU rule's sbatch job: one GPU of the test model, the profile's time (180 min x attempt) and memory."""
    assert job.get("TresPerJob") == f"gres:gpu:{GPU_TYPE}:1", job
    assert job["TimeLimit"] == f"{3 * attempt:02d}:00:00", job
    assert job["MinMemoryNode"] == "16000M" and job["Partition"] == onenode.PARTITION, job


@pytest.mark.slow
def test_workflow_and_sweep_on_slurm(slurm_cluster, tmp_path, capsys):
    """The tiny workflow's consistency table and a two-point sweep in one Snakemake run, as real
    sbatch jobs through profiles/slurm: a GPU job per fit, the data and post groups as one job each,
    the sweep's fits side by side, torch on the CPU in the GPU jobs."""
    work = tmp_path / "work"
    work.mkdir()
    config = write_config(tmp_path / "tiny.yaml", **TINY, sweep={"grid": {"temperature": [1.0, 2.0]}})
    output, jobs, wall = run_on_slurm(slurm_cluster, work, *TINY_TARGETS, "--configfile", str(config))
    table = jobs_table(jobs, work)
    with capsys.disabled():
        print(f"\n\ntiny workflow + sweep through SLURM ({len(jobs)} sbatch jobs): {wall:.0f} s wall, "
              f"cluster up in {slurm_cluster.startup_seconds:.1f} s\n{table}\n")
    assert all(j["JobState"] == "COMPLETED" for j in jobs), table
    assert len(list((work / ".snakemake/slurm_logs").rglob("*.log"))) == len(jobs)
    counts = job_counts(output)
    # 3 fits on whole sessions + 2 grid points (temperature 1.0 is the reference)
    assert counts["fit"] == 5, output[-3000:]
    gpu_jobs = [j for j in jobs if job_rule(j.get("Comment", "")) in GPU_RULES]
    assert len(gpu_jobs) == counts["fit"], table
    for job in gpu_jobs:
        check_gpu_job(job)
        assert fit_device(work, job["Comment"]).startswith("cpu, "), table  # cuda_if_available, no CUDA
    others = [j for j in jobs if j not in gpu_jobs]
    assert all("gpu" not in j.get("TresPerJob", "") and j["Partition"] == onenode.PARTITION for j in others), table
    assert sorted(job_rule(j["Comment"]).split("_")[0] for j in others) == ["data", "post"], table
    sweep = [j for j in gpu_jobs if "sweep" in j["Comment"]]
    assert len(sweep) == 2 and max(j["StartTime"] for j in sweep) < min(j["EndTime"] for j in sweep), \
        "the grid's fit jobs ran one after another, not side by side\n" + table
    for target in (*TINY_TARGETS[:-1], "results/tables/sweep.csv", "results/figures/sweep.png",
                   "results/sweep/chosen.yaml"):
        assert (work / target).stat().st_size > 0, target
    assert len(pd.read_csv(work / "results/tables/sweep.csv")) == 2


def running_job(cluster, key: str) -> dict[str, str] | None:
    """The running SLURM job whose plugin comment holds the wildcard values ``key`` (separators dropped)."""
    for job in slurm_jobs(cluster):
        if job["JobState"] == "RUNNING" and re.sub(r"[^A-Za-z0-9]", "", job.get("Comment", "")).endswith(key):
            return job
    return None


def training_pids(cluster, job_id: str) -> list[int]:
    """The job's processes that run the fit script (``scontrol listpids``: every process of the job)."""
    proc = subprocess.run(["scontrol", "listpids", job_id], env=cluster.env(), capture_output=True, text=True,
                          timeout=30)
    pids = []
    for line in proc.stdout.splitlines()[1:]:
        pid = int(line.split()[0])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmdline.rstrip("\0").endswith(".fit.py") or ".fit.py\0" in cmdline:
            pids.append(pid)
    return pids


@pytest.mark.slow
def test_fits_killed_by_slurm_resume_from_their_checkpoints(slurm_cluster, tmp_path, capsys):
    """Two fits as SLURM jobs, each killed part-way by SLURM itself once it has a checkpoint:
    achilles by its time limit (lowered to 1 minute with `scontrol update`, the fit held with
    SIGSTOP so that it outlives the limit on any machine), buddy preempted (`scancel
    --signal=TERM`: SIGTERM to the job's processes). The profile's retry resubmits each with twice
    the time (runtime 180 * attempt); each resumes from its checkpoint beside its model
    (the shared work folder, where the resubmitted job finds it) and ends bit-identical to an
    uninterrupted local fit of the same seed."""
    retries = user_profile()["retries"]
    assert retries >= 1
    work, reference = tmp_path / "work", tmp_path / "reference"
    work.mkdir()
    iterations, every = 200, 20
    config = write_config(tmp_path / "tiny.yaml", **{**TINY, "cebra": {
        "batch_size": 128, "max_iterations": iterations, "checkpoint_every": every}})
    fits = {"single/achilles": "timelimit", "single/buddy": "preempted"}
    targets = [f"results/fits/all/seed0/{fit}/embedding.parquet" for fit in fits]
    checkpoint = {fit: work / f"results/fits/all/seed0/{fit}/checkpoint.pt" for fit in fits}
    killed: dict[str, dict] = {}

    def interfere(cluster):
        deadline = time.monotonic() + 300
        while len(killed) < len(fits):
            assert time.monotonic() < deadline, f"no checkpoint of {set(fits) - set(killed)} after 300 s"
            for fit, how in fits.items():
                if fit in killed or not checkpoint[fit].exists():
                    continue
                job = running_job(cluster, "all0" + re.sub(r"[^A-Za-z0-9]", "", fit))
                assert job is not None, f"{fit} has a checkpoint but no running job\n{slurm_jobs(cluster)}"
                if how == "timelimit":
                    pids = training_pids(cluster, job["JobId"])
                    assert pids, f"no fit process in job {job['JobId']}"
                    for pid in pids:
                        os.kill(pid, signal.SIGSTOP)
                    subprocess.run(["scontrol", "update", f"JobId={job['JobId']}", "TimeLimit=1"],
                                   env=cluster.env(), check=True, timeout=30)
                else:
                    subprocess.run(["scancel", "--signal=TERM", job["JobId"]], env=cluster.env(), check=True,
                                   timeout=30)
                killed[fit] = {"job": job["JobId"], "at": time.monotonic()}
            time.sleep(0.05)
        # meanwhile (SLURM's time-limit check runs every 30 s), the same fits uninterrupted, locally
        run_snakemake(reference, *targets, configfile=config)

    output, jobs, wall = run_on_slurm(slurm_cluster, work, *targets, "--retries", str(retries),
                                      "--configfile", str(config), during=interfere)
    table = jobs_table(jobs, work)
    with capsys.disabled():
        print(f"\n\nfits killed by SLURM and resubmitted ({len(jobs)} sbatch jobs): {wall:.0f} s wall\n{table}\n")
    for fit, how in fits.items():
        key = "all0" + re.sub(r"[^A-Za-z0-9]", "", fit)
        attempts = [j for j in jobs if re.sub(r"[^A-Za-z0-9]", "", j.get("Comment", "")).endswith(key)]
        assert [j["JobId"] for j in attempts[:1]] == [killed[fit]["job"]] and len(attempts) == 2, table
        first, second = attempts
        if how == "timelimit":
            assert (first["JobState"], first["Reason"], first["TimeLimit"]) == ("TIMEOUT", "TimeLimit", "00:01:00"), table
        else:
            assert first["JobState"] in ("FAILED", "CANCELLED"), table
        assert second["JobState"] == "COMPLETED", table
        check_gpu_job(second, attempt=2)  # the retry: twice the profile's time
        log = (work / f"logs/fits/all/seed0/{fit}.log").read_text()
        found = re.search(r"resuming from checkpoint (\S+) at iteration (\d+) of (\d+)", log)
        assert found, log[-2000:]
        assert found.group(1) == str(checkpoint[fit].relative_to(work)) and found.group(3) == str(iterations)
        assert every <= int(found.group(2)) < iterations and int(found.group(2)) % every == 0, log[-2000:]
        for name in ("model.pt", "loss.parquet", "embedding.parquet"):
            got, want = (w / f"results/fits/all/seed0/{fit}/{name}" for w in (work, reference))
            same = state_digest(got) == state_digest(want) if name == "model.pt" else got.read_bytes() == want.read_bytes()
            assert same, f"{fit}/{name} differs from the uninterrupted fit"
    assert not list(work.rglob("*.pt.*.part")) and not list((work / "results").rglob("checkpoint.pt"))
