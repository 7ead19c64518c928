"""The fit and check_sessions scripts, in process with a stand-in for Snakemake's `snakemake` object:
signal kinds from the rule's params, and the device checked before any data are read."""

from __future__ import annotations

import logging
import runpy
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from cebra_core.data import write_session
from cebra_core.simulate import simulate_session
from conftest import REPO

SCRIPTS = REPO / "workflow" / "scripts"
NEEDS = dict(batch_size=32, time_offsets=10, consistency_bins=10, decoding_neighbors=3, train_fraction=0.8,
             alignment_top_k=5)


class Files(list):
    """A Snakemake input/output list: positional, and by name."""

    def __init__(self, items=(), **named):
        super().__init__(list(items) + [v for v in named.values() if not isinstance(v, list)])
        for key, value in named.items():
            setattr(self, key, value)


def run_script(name: str, tmp_path, **job) -> None:
    """Run workflow/scripts/<name> as Snakemake would, with `job`'s input, output, params, wildcards, threads."""
    snakemake = SimpleNamespace(**{"log": [str(tmp_path / f"{name}.log")], "threads": 1, "wildcards": None} | job)
    stderr, path = sys.stderr, list(sys.path)
    sys.path.append(str(SCRIPTS))  # after the standard library: workflow/scripts has a statistics.py
    try:
        runpy.run_path(str(SCRIPTS / name), init_globals={"snakemake": snakemake}, run_name="__main__")
    finally:
        sys.stderr.close() if sys.stderr is not stderr else None
        sys.stderr, sys.path[:] = stderr, path


@pytest.fixture()
def tables(tmp_path):
    """Two session tables: 'a' spike counts, 'z' z-scored (a continuous signal)."""
    paths = {}
    for i, name in enumerate(("a", "z")):
        sim = simulate_session(name, shape=(400, 8), seed=40 + i)
        neural = sim.neural if name == "a" else (sim.neural - sim.neural.mean(0)) / (sim.neural.std(0) + 1e-3)
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_session(paths[name], neural, sim.labels, session=name, signal="counts" if name == "a" else "continuous")
    return paths


def check_job(tables, tmp_path, signals=None):
    return dict(
        input=Files(tables.values()),
        output=Files([str(tmp_path / "checks.tsv")]),
        params=SimpleNamespace(sessions=list(tables), needs=NEEDS, sources=tables, signals=signals or {}),
    )


def test_check_sessions_takes_the_signal_kinds(tables, tmp_path):
    run_script("check_sessions.py", tmp_path, **check_job(tables, tmp_path, signals={"z": "continuous"}))
    summary = pd.read_csv(tmp_path / "checks.tsv", sep="\t")
    assert summary["signal"].tolist() == ["counts", "continuous"]
    assert summary["spikes_per_bin"].isna().tolist() == [False, True]


def test_check_sessions_checks_unnamed_sessions_as_counts(tables, tmp_path, caplog):
    """signals: {} (the default): every session is counts, so the z-scored one fails."""
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        run_script("check_sessions.py", tmp_path, **check_job(tables, tmp_path))
    assert exit_.value.code == 1 and not (tmp_path / "checks.tsv").exists()
    assert f"session 'z' ({tables['z']}): neural data are spike counts and must not be negative" in caplog.text
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit):
        run_script("check_sessions.py", tmp_path, **check_job(tables, tmp_path, signals={"q": "continuous"}))
    assert "signals: 'q' is not in sessions (a, z)" in caplog.text


def fit_job(tables, tmp_path, device="cpu", signals=None):
    out = {k: str(tmp_path / f"{k}.parquet") for k in ("loss", "embedding")} | {"model": str(tmp_path / "model.pt")}
    cebra = dict(batch_size=32, max_iterations=3, learning_rate=1e-3, temperature=1.0, output_dimension=3,
                 time_offsets=10, num_hidden_units=8)
    return dict(
        input=Files(sessions=list(tables.values())),
        output=SimpleNamespace(**out),
        params=SimpleNamespace(sessions=list(tables), cebra=cebra, split={"fold": None}, device=device,
                               checkpoint=str(tmp_path / "ck.pt"), signals=signals or {}),
        wildcards=SimpleNamespace(fit="multi", seed="0", split="all"),
    )


def test_fit_reads_continuous_sessions(tables, tmp_path):
    run_script("fit.py", tmp_path, **fit_job(tables, tmp_path, signals={"z": "continuous"}))
    embedding = pd.read_parquet(tmp_path / "embedding.parquet")
    assert embedding.groupby("session").size().to_dict() == {"a": 400, "z": 400}
    assert np.isfinite(embedding[["z0", "z1", "z2"]].to_numpy()).all()


def test_fit_refuses_a_device_torch_does_not_see_before_reading_data(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    missing = {"a": str(tmp_path / "nowhere.parquet"), "b": str(tmp_path / "nothing.parquet")}
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        run_script("fit.py", tmp_path, **fit_job(missing, tmp_path, device="cuda"))
    assert exit_.value.code == 1
    assert "device='cuda': torch" in caplog.text and "sees no CUDA device" in caplog.text
    assert "cuda_if_available" in caplog.text and "nowhere.parquet" not in caplog.text
