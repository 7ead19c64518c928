"""Faults made for real on a tiny workflow, and what must hold after each: nothing half-written is
left, a plain rerun completes, and the results equal those of an uninterrupted run.

* A full disk part-way: the work folder on a small tmpfs (``mount -t tmpfs -o size=...``) that
  holds the sessions and one checkpoint of the first fit but not its second; the error names the
  disk and the file, only whole files remain, and after ``mount -o remount,size=...`` the rerun
  resumes that fit from its checkpoint and completes.
* A killed workflow: ``kill -9`` of Snakemake and every job (its whole process group) while the
  fits run; README "Interrupted runs" (``--unlock``, then ``--rerun-incomplete``) resumes the fits
  that were running from their checkpoints.

The tiny workflow: two simulated rats at the sample scale, one seed, 100 iterations with a
checkpoint every 20, no new-session target, up to the consistency table (9 jobs). One
uninterrupted run of it per module is the reference. Mounting needs root (CAP_SYS_ADMIN); where
it is not allowed the disk test skips with the reason, and fails instead when
CEBRA_REQUIRE_TMPFS=1 (CI).
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from cebra_core.sessions.files import md5sum
from helpers import kill_at_checkpoint, run_snakemake, skip_or_fail, state_digest, write_config

TARGETS = ("results/tables/consistency.csv",)
ITERATIONS, CHECKPOINT_EVERY = 60, 20
TINY = dict(
    sessions=["achilles", "buddy"],
    seeds=[0],
    cebra={"batch_size": 128, "max_iterations": ITERATIONS, "checkpoint_every": CHECKPOINT_EVERY},
    new_session={"held_out": None},
)
FITS = ("single/achilles", "single/buddy", "multi")  # the whole-session fits consistency.csv needs
RESUMED = re.compile(r"resuming from checkpoint (\S+) at iteration (\d+) of (\d+)")


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("tiny") / "tiny.yaml", **TINY)


@pytest.fixture(scope="module")
def tiny_reference(tiny_config, tmp_path_factory) -> Path:
    """The tiny workflow run once, uninterrupted: the results every fault's rerun must equal."""
    work = tmp_path_factory.mktemp("reference")
    start = time.monotonic()
    run_snakemake(work, *TARGETS, configfile=tiny_config)
    print(f"\nthe tiny workflow, uninterrupted: {time.monotonic() - start:.0f} s")
    return work


def results_of(work: Path) -> dict[str, str]:
    """A checksum of every table and model of a run: MD5 of the CSV tables and the fits' parquet
    files, `state_digest` of the fits' models."""
    fits = work / "results/fits"
    sums = {f: md5sum(f) for f in [*(work / "results/tables").glob("*.csv"), *fits.rglob("*.parquet")]}
    sums.update({f: state_digest(f) for f in fits.rglob("*.pt")})
    return {str(f.relative_to(work)): value for f, value in sums.items()}


def assert_same_results(work: Path, reference: Path) -> None:
    got, want = results_of(work), results_of(reference)
    assert got.keys() == want.keys() and len(want) == 1 + 3 * len(FITS), (sorted(got), sorted(want))
    assert got == want, {name: (got[name], want[name]) for name in want if got[name] != want[name]}
    pd.testing.assert_frame_equal(pd.read_csv(work / TARGETS[0]), pd.read_csv(reference / TARGETS[0]))


def resumed_from(work: Path, fit: str) -> int | None:
    """The iteration a whole-session fit's log says it resumed from, or None."""
    found = RESUMED.search((work / f"logs/fits/all/seed0/{fit}.log").read_text())
    if found is None:
        return None
    assert found.group(1) == f"results/fits/all/seed0/{fit}/checkpoint.pt" and int(found.group(3)) == ITERATIONS
    return int(found.group(2))


def assert_only_whole_files(work: Path) -> None:
    """No temporary file of an atomic write is left, and every model, checkpoint and table there reads."""
    assert not list(work.rglob("*.part")), list(work.rglob("*.part"))
    for path in work.rglob("*.pt"):
        torch.load(path, map_location="cpu", weights_only=True)
    for path in work.rglob("*.parquet"):
        pd.read_parquet(path)


def test_resume_is_logged_with_its_iteration(tmp_path, caplog, monkeypatch):
    """The line the fault tests read, from the training loop itself: a 10-iteration fit with a
    checkpoint every 4 iterations, crashed in its 10th step, resumes at iteration 8; a fresh fit
    logs no such line."""
    from cebra_core import CEBRA
    from cebra_core.engine import sampling
    from cebra_core.sessions.simulate import simulate_session

    data = simulate_session("s", shape=(300, 12), seed=0)
    params = dict(batch_size=32, max_iterations=10, checkpoint_every=4, seed=1, device="cpu",
                  checkpoint_path=tmp_path / "c.pt")
    original, calls = sampling.SingleSessionSampler.sample, []

    def crash_in_step_10(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sampling.SingleSessionSampler, "sample", crash_in_step_10)
    with caplog.at_level(logging.INFO, logger="cebra_core.engine.training"):
        with pytest.raises(KeyboardInterrupt):
            CEBRA(**params).fit(data.neural, data.labels)
        assert not RESUMED.search(caplog.text)  # it started afresh
        calls.append(1)  # past the crash
        CEBRA(**params).fit(data.neural, data.labels)
    assert RESUMED.search(caplog.text).groups() == (str(tmp_path / "c.pt"), "8", "10")


# ------------------------------------------------------------------------------ a full disk


def mount_tmpfs(folder: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` at ``folder``; skip (fail under CEBRA_REQUIRE_TMPFS=1) where not allowed."""
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs here (needs root): {proc.stderr.strip() or proc.returncode}"
        skip_or_fail(reason, "CEBRA_REQUIRE_TMPFS")


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = []

    def mount(size: str) -> Path:
        mount_tmpfs(folder, size)
        mounted.append(folder)
        return folder

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=30)


# The tiny run's first fit (multi, 2 sessions; --cores 1 runs the longest fit first) saves a
# 392 kB checkpoint every 20 iterations, through a temporary file beside it. Before it the data
# jobs write about 200 kB (sessions, checks, logs, Snakemake's metadata). 800 kB holds the data and
# one checkpoint, but not the second one's temporary file next to the first.
DISK_SIZE = "800k"


@pytest.mark.slow
def test_full_disk_part_way_then_rerun_after_it_grows(small_disk, tiny_config, tiny_reference, capsys):
    work = small_disk(DISK_SIZE) / "work"
    start = time.monotonic()
    proc = run_snakemake(work, *TARGETS, "--cores", "1", configfile=tiny_config, check=False)
    failed_after = time.monotonic() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    failed = re.findall(r"(results/fits/all/seed0/(\S+)/checkpoint\.pt): the disk is full", output)
    assert failed, output[-6000:]
    checkpoint, fit = failed[0]
    assert "No space left on device" in output, output[-6000:]
    # nothing half-written: the failed write's temporary file is gone, the outputs of the failed
    # fit were never made, and the checkpoint it saved before is whole
    assert_only_whole_files(work)
    assert sorted(p.name for p in (work / f"results/fits/all/seed0/{fit}").iterdir()) == ["checkpoint.pt"]
    assert torch.load(work / checkpoint, weights_only=True)["iteration"] == CHECKPOINT_EVERY
    assert not (work / TARGETS[0]).exists()

    subprocess.run(["mount", "-o", "remount,size=64m", str(work.parent)], check=True, timeout=30)
    start = time.monotonic()
    run_snakemake(work, *TARGETS, configfile=tiny_config)
    with capsys.disabled():
        print(f"\nfull disk ({DISK_SIZE}): the run failed after {failed_after:.0f} s writing {checkpoint}; "
              f"the rerun after the disk grew took {time.monotonic() - start:.0f} s")
    assert resumed_from(work, fit) == CHECKPOINT_EVERY
    assert_only_whole_files(work)
    assert not list((work / "results").rglob("checkpoint.pt"))
    assert_same_results(work, tiny_reference)


# ------------------------------------------------------------------------------ a killed workflow


def live_group_members(pgid: int) -> list[int]:
    """PIDs of the processes of a process group that still run (zombies, which wait for their new
    parent to reap them, do not)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow
def test_killed_workflow_resumes_every_running_fit(tiny_config, tiny_reference, tmp_path, capsys):
    """kill -9 of Snakemake and all its jobs once the fits have checkpoints; the README's commands
    resume them, and every table and model equals the uninterrupted run's."""
    work = tmp_path / "work"
    fits = work / "results/fits/all/seed0"
    start = time.monotonic()
    proc = kill_at_checkpoint(work, *TARGETS, configfile=tiny_config, checkpoints=fits, timeout=600)
    killed_after = time.monotonic() - start
    killed = {str(p.parent.relative_to(fits)) for p in fits.rglob("checkpoint.pt")}
    assert killed, "no fit was running"
    for fit in killed:  # they were mid-way: no outputs yet
        assert not (work / f"results/fits/all/seed0/{fit}/model.pt").exists(), fit
    deadline = time.monotonic() + 10
    while live_group_members(proc.pid):  # the whole group is gone, jobs included
        assert time.monotonic() < deadline, f"still running after kill -9: {live_group_members(proc.pid)}"
        time.sleep(0.1)

    # README "Interrupted runs"
    start = time.monotonic()
    run_snakemake(work, "--unlock", configfile=tiny_config)
    run_snakemake(work, *TARGETS, "--rerun-incomplete", configfile=tiny_config)
    resumed = {fit: resumed_from(work, fit) for fit in killed}
    with capsys.disabled():
        print(f"\nkill -9 after {killed_after:.0f} s, fits running: {sorted(killed)}; unlock and rerun took "
              f"{time.monotonic() - start:.0f} s, resumed at iterations {resumed}")
    for fit in killed:
        assert resumed[fit] is not None and resumed[fit] >= CHECKPOINT_EVERY, fit
    assert_only_whole_files(work)
    assert_same_results(work, tiny_reference)
