"""Shared test helpers (plain functions and classes; the fixtures are in tests/conftest.py): the
repository root, the real sessions (via CEBRA_SHARED_DATA), the config and plan as the workflow sees
them, running the workflow's CLI in a temporary working directory, the conda stand-in, a local HTTP
server, and the checks of a finished sample run."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cebra_core.sessions.rats import RAT_SHAPES
from cebra_core.sessions.simulate import MIN_BINS

REPO = Path(__file__).resolve().parents[2]
SHARED_ENV = "CEBRA_SHARED_DATA"
# The suite's sample run: config/sample.yaml, then tests/sample_run.yaml over it (fewer iterations).
SAMPLE_RUN = (REPO / "config/sample.yaml", REPO / "tests/sample_run.yaml")

def shared_file(name: str) -> Path:
    """A file of the project's shared data folder, or skip the test with the reason."""
    root = os.environ.get(SHARED_ENV)
    if not root:
        pytest.skip(f"{SHARED_ENV} is not set (point it at shared/data to run tests on the real sessions)")
    path = Path(root) / "rat_hippocampus" / name
    if not path.is_file():
        pytest.skip(f"{path} not found ({SHARED_ENV}={root})")
    return path


SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


def plan_for(config: dict):
    """The workflow's plan for ``config`` merged over config/config.yaml, assembled as the workflow
    assembles it (`cebra_workflow.config.assemble`: MD5s, schema and its defaults), in process."""
    from snakemake.utils import validate

    from cebra_workflow.config import assemble, deep_merge

    return assemble(deep_merge(config_file(REPO / "config/config.yaml"), config), validate, SCHEMA)


def effective_config(*files: Path) -> dict:
    """The config a run sees: config/config.yaml, then ``files`` merged over it, checked and completed."""
    from cebra_workflow.config import deep_merge

    config: dict = {}
    for path in files:
        config = deep_merge(config, config_file(path))
    return plan_for(config).config


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


def write_config(path: Path, base: str | None = "sample.yaml", **overrides) -> Path:
    """A config file: ``config/<base>`` with ``overrides`` merged in (nested dicts merge)."""
    from cebra_workflow.config import deep_merge

    config = config_file(REPO / "config" / base) if base else {}
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


def kill_at_checkpoint(workdir: Path, *targets: str, configfile: ConfigFiles, checkpoints: Path, pattern: str = "checkpoint.pt",
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


# --------------------------------------------------------------------- outputs of a run


@lru_cache(maxsize=None)
def sample_config() -> dict:
    """The config of the suite's sample run (SAMPLE_RUN), checked and completed."""
    return effective_config(*SAMPLE_RUN)


def fit_dir(work, fit: str, split: str = "all", seed: int = 0) -> Path:
    """The folder of a fit's files in a run's work folder."""
    from cebra_workflow.paths import FIT_FOLDER, fill

    return work / fill(FIT_FOLDER, split=split, seed=seed, fit=fit)


def sample_length(rat: str) -> int:
    """Time bins of a simulated rat in the sample run."""
    return max(MIN_BINS, round(RAT_SHAPES[rat][0] * sample_config()["data"]["simulate"]["scale"]))


def check_embedding_table(table: pd.DataFrame, rats: list[str], parts: set[str] = {"all"}):
    """An embedding table of the sample run: its columns, rows and parts, unit-norm embeddings."""
    assert list(table.columns) == ["session", "time", "part", "z0", "z1", "z2", "position", "right", "left"]
    assert table["session"].unique().tolist() == rats
    for rat in rats:
        rows = table[table["session"] == rat]
        assert rows["time"].tolist() == list(range(sample_length(rat)))
        assert set(rows["part"]) == parts
        if parts == {"train", "test"}:  # the test part is the session's last test_fraction
            n_test = round(sample_length(rat) * sample_config()["evaluation"]["test_fraction"])
            assert rows["part"].tolist() == ["train"] * (len(rows) - n_test) + ["test"] * n_test
    z = table[["z0", "z1", "z2"]].to_numpy()
    assert np.isfinite(z).all()
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-4)  # normalised model outputs
    flags = table[["right", "left"]].to_numpy()
    assert set(np.unique(flags)) == {0.0, 1.0} and (flags.sum(axis=1) == 1).all()  # one-hot running direction
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


def state_digest(value, digest=None) -> str:
    """SHA-256 of what a torch file holds (every tensor's dtype, shape and bytes, every plain value),
    in a fixed order. A model file's own bytes differ from run to run: torch.save names the archive
    inside after the temporary file it writes (files.atomic_output), whose name is unique."""
    import torch

    top = digest is None
    digest = digest or hashlib.sha256()
    if isinstance(value, (str, os.PathLike)) and top:
        value = torch.load(value, map_location="cpu", weights_only=True)
    if isinstance(value, torch.Tensor):
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        digest.update(value.contiguous().numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(repr(key).encode())
            state_digest(value[key], digest)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            state_digest(item, digest)
    else:
        digest.update(repr(value).encode())
    return digest.hexdigest() if top else ""




def count_steps(monkeypatch, sampler=None, fail_at: int | None = None) -> list[int]:
    """Count training steps (one batch is sampled per step; ``sampler`` the sampler class, default
    the single-session one); optionally crash at step ``fail_at``."""
    from cebra_core.engine import sampling

    sampler = sampling.SingleSessionSampler if sampler is None else sampler
    calls = []
    original = sampler.sample

    def counting(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyboardInterrupt  # a crash mid-fit
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sampler, "sample", counting)
    return calls
