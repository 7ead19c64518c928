"""Shared test helpers: the repository root, the real sessions (via CEBRA_SHARED_DATA), running the
workflow through the `snakemake` CLI in a temporary working directory, the conda stand-in and the
sample run made with it, and a local HTTP server."""

from __future__ import annotations

import copy
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_ENV = "CEBRA_SHARED_DATA"
# The suite's sample run: config/sample.yaml, then tests/sample_run.yaml over it (fewer iterations).
SAMPLE_RUN = (REPO / "config/sample.yaml", REPO / "tests/sample_run.yaml")

# Under pytest-xdist the workers share the machine's cores: one thread each for torch, OpenMP and
# BLAS (inherited by the workflow runs the tests start), or their spinning thread pools slow each
# other down several times over. Set before any test module imports torch.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")


def shared_file(name: str) -> Path:
    """A file of the project's shared data folder, or skip the test with the reason."""
    root = os.environ.get(SHARED_ENV)
    if not root:
        pytest.skip(f"{SHARED_ENV} is not set (point it at shared/data to run tests on the real sessions)")
    path = Path(root) / "rat_hippocampus" / name
    if not path.is_file():
        pytest.skip(f"{path} not found ({SHARED_ENV}={root})")
    return path


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def effective_config(*files: Path) -> dict:
    """The config a run sees: config/config.yaml, then ``files`` merged over it, then the schema's defaults."""
    from snakemake.utils import validate

    config: dict = {}
    for path in (REPO / "config/config.yaml", *files):
        config = deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"), set_default=True)
    return config


def plan_for(config: dict):
    """The workflow's plan (cebra_core.planning) for a config as Snakemake sees it: config/config.yaml
    with ``config`` merged over it, the MD5s checked, then the schema (defaults filled), in process."""
    from snakemake.utils import validate

    from cebra_core import planning

    schema = str(REPO / "workflow/schemas/config.schema.yaml")
    merged = deep_merge(yaml.safe_load((REPO / "config/config.yaml").read_text()), config)
    planning.check_md5s(merged)
    validate(merged, schema, set_default=True)
    return planning.Plan(merged, validate=lambda candidate: validate(candidate, schema, set_default=False))


def expected_fits(plan) -> dict[tuple[str, str, str], int]:
    """{(split, seed, fit): priority} of every fit a full run makes (not the sweep's): per seed,
    each single-session fit and the multi-session fit on whole sessions and on every held-out fold,
    and the leave-one-out fit on every fold; the more sessions a fit trains on, the earlier it starts."""
    return {(split, seed, fit): plan.fit_priority(fit)
            for seed in plan.seeds for split in plan.splits
            for fit in plan.fits if split != "all" or not fit.startswith("multi_without/")}


def config_file(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text()) or {}


def job_counts(stdout: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (rule -> number of jobs)."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stdout, re.M)}


def skip_or_fail(reason: str, require: str):
    """Skip with the reason, or fail when the environment variable ``require`` is set (CI sets it
    for what it installs, so a missing service is never a silent skip there)."""
    if os.environ.get(require, "") not in ("", "0"):
        pytest.fail(f"{require} is set, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    faster on a shared 2-core machine, and the same in a SIGKILL child."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_config(path: Path, base: str | None = "sample.yaml", **overrides) -> Path:
    """A config file: ``config/<base>`` with ``overrides`` merged in (nested dicts merge)."""
    config = yaml.safe_load((REPO / "config" / base).read_text()) if base else {}
    path.write_text(yaml.safe_dump(deep_merge(config, overrides), sort_keys=False))
    return path


ConfigFiles = Path | tuple[Path, ...] | None


def snakemake_command(workdir: Path, *args: str, configfile: ConfigFiles = None) -> list[str]:
    """``configfile``: one file or several, merged in order (later files win)."""
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(workdir), "--cores", "2", *args]
    if configfile is not None:  # last: --configfile takes several values
        cmd += ["--configfile", *map(str, configfile if isinstance(configfile, tuple) else (configfile,))]
    return cmd


def run_snakemake(workdir: Path, *args: str, configfile: ConfigFiles = None, check: bool = True,
                  timeout: float = 1800, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run the workflow's CLI, by default from the repository root (so the default profile applies)."""
    if cwd != REPO:
        args = ("--snakefile", str(REPO / "Snakefile"), *args)
    proc = subprocess.run(
        snakemake_command(workdir, *args, configfile=configfile),
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def kill_at_checkpoint(workdir: Path, *targets: str, configfile: ConfigFiles, checkpoints: Path, pattern: str = "*.pt",
                       timeout: float = 300) -> subprocess.Popen:
    """Run the workflow's CLI in a session of its own and kill -9 the whole process group (Snakemake
    and its jobs) as soon as a checkpoint matching ``pattern`` appears below ``checkpoints``."""
    proc = subprocess.Popen(snakemake_command(workdir, *targets, configfile=configfile), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not list(checkpoints.rglob(pattern)):
            assert proc.poll() is None, "snakemake ended before writing a checkpoint"
            assert time.monotonic() < deadline, f"no checkpoint after {timeout:.0f} s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc


class CondaStandIn:
    """``snakemake --use-conda`` through the conda stand-in (tests/conda/bin/conda), all runs of a test
    session sharing one ``--conda-prefix``, so each environment is built once per session.

    ``args`` go on the snakemake command line, ``env`` is its environment: the stand-in first on
    PATH, and CONDA_STANDIN_TRACE, where every Python process of an environment leaves a record
    (see the stand-in's docstring). PYTHONPATH is dropped, so nothing but an environment's own
    packages and the checkout's src/ (put first by workflow/scripts/common) reach the jobs.

    A real conda environment holds compiled bytecode (conda compiles at install). The stand-in
    installs without it (pip --no-compile: a minute less per build), so the jobs cache bytecode as
    they import, under one PYTHONPYCACHEPREFIX outside the environments and the checkout, even where
    PYTHONDONTWRITEBYTECODE is set: otherwise every job compiles torch, pandas and matplotlib anew,
    which doubled the sample run's CPU time.
    """

    BIN = REPO / "tests" / "conda" / "bin"

    def __init__(self, root: Path):
        self.prefix = root / "envs"
        self.trace = root / "trace"
        self.args = ("--use-conda", "--conda-prefix", str(self.prefix))
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
        self.env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        self.env["PATH"] = os.pathsep.join([str(self.BIN), str(Path(sys.executable).parent), self.env.get("PATH", "")])
        self.env["CONDA_STANDIN_TRACE"] = str(self.trace)
        self.env.setdefault("MPLBACKEND", "Agg")

    def create_envs(self, workdir: Path, timeout: float = 1800) -> str:
        """Build every env of the sample workflow now, if not yet built (snakemake --conda-create-envs-only)."""
        proc = run_snakemake(workdir, *self.args, "--conda-create-envs-only",
                             configfile=REPO / "config" / "sample.yaml", env=self.env, timeout=timeout)
        return proc.stdout + proc.stderr

    def envs(self) -> dict[str, Path]:
        """envs/<name>.yaml -> the environment built from it (Snakemake keeps a copy of the file beside it)."""
        sources = {p.read_text(): p.name for p in (REPO / "envs").glob("*.yaml")}
        return {sources.get(saved.read_text(), saved.name): saved.with_suffix("")
                for saved in self.prefix.glob("*.yaml") if saved.with_suffix("").is_dir()}


@pytest.fixture(scope="session")
def conda_standin(tmp_path_factory) -> CondaStandIn:
    return CondaStandIn(tmp_path_factory.mktemp("conda"))


@pytest.fixture(scope="session")
def sample_run(conda_standin, tmp_path_factory) -> tuple[Path, str, int]:
    """The mission's command on the sample data (``snakemake --use-conda``, through the stand-in), run
    once per test session, then its report: (work folder, snakemake's output, envs it built).

    Every test of the finished sample run uses this one run (tests/test_conda.py checks every output
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


class FileServer:
    """An HTTP server on 127.0.0.1 serving in-memory files; can truncate the first N responses."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate_first = 0
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                body = server.files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.truncate_first > 0:  # a full Content-Length, then half the body
                    server.truncate_first -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


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
LONG_FIRST = ["test_conda.py", "test_slurm.py", "test_workflow.py", "test_faults.py"]


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
