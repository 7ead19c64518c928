"""Fixtures and session-wide settings of the test suite; the helpers they use are in tests/helpers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from helpers import SAMPLE_RUN, CondaStandIn, FileServer, run_snakemake

# Under pytest-xdist the workers share the machine's cores: one thread each for torch, OpenMP and
# BLAS (inherited by the workflow runs the tests start), or their spinning thread pools slow each
# other down several times over. Set before any test module imports torch.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    faster on a shared 2-core machine, and the same in a SIGKILL child."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def conda_standin(tmp_path_factory) -> CondaStandIn:
    return CondaStandIn(tmp_path_factory.mktemp("conda"))


@pytest.fixture(scope="session")
def sample_run(conda_standin, tmp_path_factory) -> tuple[Path, str, int]:
    """The mission's command on the sample data (``snakemake --use-conda``, through the stand-in), run
    once per test session, then its report: (work folder, snakemake's output, envs it built).

    Every test of the finished sample run uses this one run (tests/workflow/test_sample_run.py checks every output
    and env, resumes a killed fit against it and dry-runs a changed config on it). The plain route
    (no conda) runs end to end in the real-data smoke run and the sweep run."""
    work = tmp_path_factory.mktemp("sample")
    start = time.monotonic()
    proc = run_snakemake(work, *conda_standin.args, configfile=SAMPLE_RUN, env=conda_standin.env)
    wall = time.monotonic() - start
    output = proc.stdout + proc.stderr
    run_snakemake(work, *conda_standin.args, "--report", "report.html", configfile=SAMPLE_RUN, env=conda_standin.env)
    print(f"\nsample workflow with --use-conda (stand-in): {wall:.0f} s wall")
    return work, output, output.count("Creating conda environment")


@pytest.fixture
def file_server():
    with FileServer() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a server that is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/data/"


# Test files that run for minutes (end to end), longest first: with two workers they start at once,
# one each, and the short files fill in around them (pyproject.toml's pytest options).
LONG_FIRST = ["test_sample_run.py", "test_slurm.py", "test_workflow.py", "test_faults.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order otherwise


def pytest_terminal_summary(terminalreporter):
    """Name the screenshots tests took (``record_property("screenshot", path)``), passed or not,
    so that a CI log says where to look."""
    paths = dict.fromkeys(
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "screenshot"
    )
    if paths:
        terminalreporter.write_sep("-", "screenshots")
        for path in paths:
            terminalreporter.write_line(path)
