"""The workflow's steps (cebra_core.steps), in process, with no Snakemake: the check step takes the
signal kinds, a fit reads continuous sessions and refuses an unseen device before reading any
data, and every script is a thin adapter (read the named inputs, one call, the named outputs)."""

from __future__ import annotations

import ast

import numpy as np
import pandas as pd
import pytest
import torch

from cebra_core.engine.estimator import DeviceError
from cebra_core.sessions.data import write_session
from cebra_core.sessions.simulate import simulate_session
from cebra_core.sessions.validation import InputError, SessionError
from cebra_core.steps import data, fits
from helpers import REPO

SCRIPTS = REPO / "workflow" / "scripts"
NEEDS = dict(batch_size=32, time_offsets=10, consistency_bins=10, decoding_neighbors=3, train_fraction=0.8,
             alignment_top_k=5)


@pytest.fixture()
def tables(tmp_path):
    """Two session tables: 'a' spike counts, 'z' z-scored (a continuous signal)."""
    paths = {}
    for i, name in enumerate(("a", "z")):
        sim = simulate_session(name, shape=(400, 8), seed=40 + i)
        neural = sim.neural if name == "a" else (sim.neural - sim.neural.mean(0)) / (sim.neural.std(0) + 1e-3)
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_session(paths[name], neural, sim.labels)
    return paths


def test_check_sessions_takes_the_signal_kinds(tables, tmp_path):
    data.check(tables, tmp_path / "checks.tsv", needs=NEEDS, sources=tables, signals={"z": "continuous"})
    summary = pd.read_csv(tmp_path / "checks.tsv", sep="\t")
    assert summary["signal"].tolist() == ["counts", "continuous"]
    assert summary["spikes_per_bin"].isna().tolist() == [False, True]


def test_check_sessions_checks_unnamed_sessions_as_counts(tables, tmp_path):
    """signals: {} (the default): every session is counts, so the z-scored one fails."""
    with pytest.raises(SessionError, match=rf"session 'z' \({tables['z']}\): neural data are spike counts and must "
                                           "not be negative"):
        data.check(tables, tmp_path / "checks.tsv", needs=NEEDS, sources=tables, signals={})
    assert not (tmp_path / "checks.tsv").exists()
    with pytest.raises(InputError, match=r"signals: 'q' is not in sessions \(a, z\)"):
        data.check(tables, tmp_path / "checks.tsv", needs=NEEDS, sources=tables, signals={"q": "continuous"})


def fit_outputs(tmp_path) -> dict:
    return {"model": tmp_path / "model.pt", "embedding": tmp_path / "embedding.parquet", "loss": tmp_path / "loss.parquet"}


CEBRA_PARAMS = dict(batch_size=32, max_iterations=3, learning_rate=1e-3, temperature=1.0, output_dimension=3,
                    time_offsets=10, num_hidden_units=8)


def test_fit_reads_continuous_sessions_and_leaves_no_checkpoint(tables, tmp_path):
    fits.fit(tables, **fit_outputs(tmp_path), kind="multi", cebra=CEBRA_PARAMS, split={"fold": None}, seed=0,
             device="cpu", name="multi", split_name="all")
    embedding = pd.read_parquet(tmp_path / "embedding.parquet")
    assert embedding.groupby("session").size().to_dict() == {"a": 400, "z": 400}
    assert np.isfinite(embedding[["z0", "z1", "z2"]].to_numpy()).all()
    loss = pd.read_parquet(tmp_path / "loss.parquet")
    assert loss[["fit", "seed", "split"]].drop_duplicates().values.tolist() == [["multi", 0, "all"]]
    assert loss["iteration"].tolist() == [1, 2, 3]
    assert not fits.checkpoint_path(tmp_path / "model.pt").exists()


def test_fit_refuses_a_device_torch_does_not_see_before_reading_data(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    missing = {"a": str(tmp_path / "nowhere.parquet")}
    with pytest.raises(DeviceError, match=r"device='cuda': torch .* sees no CUDA device.*cuda_if_available"):
        fits.fit(missing, **fit_outputs(tmp_path), kind="single", cebra=CEBRA_PARAMS, split={"fold": None}, seed=0,
                 device="cuda")


def test_every_script_is_one_call_into_the_steps():
    """Each workflow script imports only `common` and one step of cebra_core.steps, calls it once
    through `run`, and reads no path from params (paths come from input and output)."""
    for script in sorted(SCRIPTS.glob("*.py")):
        tree = ast.parse(script.read_text())
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        modules = [n.module for n in imports if isinstance(n, ast.ImportFrom)]
        assert modules[0] == "common" and len(modules) == 2 and modules[1].startswith("cebra_core.steps."), script.name
        calls = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
        assert [c.value.func.id for c in calls] == ["start", "run"], script.name
        assert len(tree.body) == 5, f"{script.name}: docstring, two imports, start, run"


def test_the_run_adapter_logs_input_errors_without_a_traceback(tmp_path, caplog):
    import logging
    import sys

    sys.path.insert(0, str(SCRIPTS))
    try:
        from common import run
    finally:
        sys.path.remove(str(SCRIPTS))

    def step():
        raise SessionError("session 'x' (x.npz): first problem\nsession 'y' (y.npz): second problem")

    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        run(step)
    assert exit_.value.code == 1
    assert [r.message for r in caplog.records] == ["session 'x' (x.npz): first problem", "session 'y' (y.npz): second problem"]
    with pytest.raises(ZeroDivisionError):  # anything else keeps its traceback
        run(lambda: 1 / 0)
