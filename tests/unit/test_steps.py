"""The workflow's steps (cebra_core.steps), in process, with no Snakemake: the check step takes the
signal kinds, the simulate and import steps write the declared label columns, a fit reads
continuous sessions and declared labels and refuses an unseen device before reading any data, the
adapt step keeps a checkpoint while it runs, and every script is a thin adapter (read the named
inputs, one call, the named outputs)."""

from __future__ import annotations

import ast

import numpy as np
import pandas as pd
import pytest
import torch

from cebra_core import CEBRA
from cebra_core.engine.estimator import DeviceError
from cebra_core.sessions.data import read_session, write_session
from cebra_core.sessions.simulate import simulate_session
from cebra_core.sessions.simulate_openfield import simulate_openfield
from cebra_core.sessions.simulate_reaching import simulate_reaching
from cebra_core.sessions.validation import InputError, SessionError
from cebra_core.steps import data, fits
from helpers import REPO

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py
RAT = ["position", "right", "left"]
OPENFIELD = {"continuous": ["x", "y"], "discrete": ["context"]}
REACHING = {"continuous": [], "discrete": ["target"]}


def rat_labels(sim) -> pd.DataFrame:
    return pd.DataFrame(sim.labels.astype(np.float32), columns=RAT)

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
        write_session(paths[name], neural, rat_labels(sim))
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


def mouse_tables(tmp_path, names=("m1", "m2"), n_bins=400) -> dict[str, str]:
    """Simulated mice (calcium traces; labels x, y, context) as session tables."""
    paths = {}
    for name in names:
        sim = simulate_openfield(name, n_bins=n_bins, n_neurons=12, seed=1)
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_session(paths[name], sim.neural, sim.labels)
    return paths


def test_fit_on_declared_labels(tmp_path):
    """Mice with labels x, y (continuous) and context (discrete): the multi-session fit trains on all
    three (positives of the reference's context nearest in x, y), embeds every row and keeps the
    label columns, typed, in its table; a held-out split fits on the train rows only."""
    tables = mouse_tables(tmp_path)
    fits.fit(tables, **fit_outputs(tmp_path), kind="multi", cebra=CEBRA_PARAMS, split={"fold": None}, seed=2,
             device="cpu", labels=OPENFIELD, name="multi", split_name="all")
    embedding = pd.read_parquet(tmp_path / "embedding.parquet")
    assert list(embedding.columns) == ["session", "time", "part", "z0", "z1", "z2", "x", "y", "context"]
    assert embedding["context"].dtype == np.int64 and embedding["x"].dtype == np.float32
    assert embedding.groupby("session").size().to_dict() == {"m1": 400, "m2": 400}
    _, labels = read_session(tables["m2"])
    np.testing.assert_array_equal(embedding.loc[embedding["session"] == "m2", "context"], labels["context"])
    model = CEBRA.load(tmp_path / "model.pt")
    assert model.label_kinds_ == {"continuous": 2, "discrete": True} and model.num_sessions_ == 2
    assert model.seed_ == 2 and len(model.loss_history_) == 3
    # a held-out fold: the last fifth of each mouse is its test part, never fitted on
    held = {name: tmp_path / f"held_{name}" for name in ("model", "embedding", "loss")}
    fits.fit({"m1": tables["m1"]}, model=held["model"], embedding=held["embedding"], loss=held["loss"], kind="single",
             cebra=CEBRA_PARAMS, split={"protocol": "contiguous", "fold": 0, "folds": 1, "test_fraction": 0.2},
             seed=0, device="cpu", labels=OPENFIELD)
    parts = pd.read_parquet(held["embedding"])["part"].value_counts().to_dict()
    assert parts == {"train": 320, "test": 80}
    # the rat track's columns are not in these tables
    with pytest.raises(KeyError, match="position"):
        fits.fit(tables, **fit_outputs(tmp_path), kind="multi", cebra=CEBRA_PARAMS, split={"fold": None}, seed=0,
                 device="cpu")


def test_fit_on_a_discrete_label_alone(tmp_path):
    """Monkeys reaching to 8 targets: a single-session fit on the target, CEBRA's discrete label."""
    sim = simulate_reaching("monkey1", n_trials=16, n_neurons=10, seed=0)
    tables = {"monkey1": str(tmp_path / "monkey1.parquet")}
    write_session(tables["monkey1"], sim.neural, sim.labels)
    fits.fit(tables, **fit_outputs(tmp_path), kind="single", cebra=CEBRA_PARAMS, split={"fold": None}, seed=0,
             device="cpu", labels=REACHING, name="single/monkey1", split_name="all")
    assert CEBRA.load(tmp_path / "model.pt").label_kinds_ == {"continuous": None, "discrete": True}
    embedding = pd.read_parquet(tmp_path / "embedding.parquet")
    assert list(embedding.columns)[-1] == "target" and embedding["target"].nunique() == 8
    assert len(embedding) == len(sim.neural)
    loss = pd.read_parquet(tmp_path / "loss.parquet")
    assert list(loss.columns) == ["fit", "seed", "split", "iteration", "pos", "neg", "total", "temperature"]
    assert loss["temperature"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("kind, labels, columns, dtypes, signal", [
    ("rat", None, RAT, ["float32"] * 3, "counts"),
    ("openfield", OPENFIELD, ["x", "y", "context"], ["float32", "float32", "int64"], "continuous"),
    ("reaching", REACHING, ["target"], ["int64"], "counts"),
])
def test_simulate_writes_the_declared_columns(tmp_path, kind, labels, columns, dtypes, signal):
    """The simulate step for each simulator: a session table of n0 … and the declared label columns,
    continuous float32, discrete int64, its neural data of the simulator's signal kind."""
    name = {"rat": "buddy", "openfield": "mouse1", "reaching": "monkey1"}[kind]
    out = tmp_path / f"{name}.parquet"
    data.simulate(name, out, kind=kind, scale=0.1, seed=3, labels=labels)
    frame = pd.read_parquet(out)
    neurons = [c for c in frame.columns if c.startswith("n")]
    assert list(frame.columns) == neurons + columns and neurons == [f"n{i}" for i in range(len(neurons))]
    assert [str(frame[c].dtype) for c in columns] == dtypes and (frame[neurons].dtypes == np.float32).all()
    simulator = {"rat": simulate_session, "openfield": simulate_openfield, "reaching": simulate_reaching}[kind]
    expected = simulator(name, scale=0.1, seed=3).neural
    np.testing.assert_array_equal(frame[neurons].to_numpy(), expected.astype(np.float32))
    assert (frame[neurons].to_numpy() < 0).any() == (signal == "continuous")  # calcium traces are z-scored
    # the declared labels must be the simulator's
    problem = (r"labels of shape \(\d+, 3\) are not the declared label columns \['speed'\]" if kind == "rat"
               else r"label column\(s\) \['speed'\] \(the labels key\) are missing")
    with pytest.raises(SessionError, match=rf"session '{name}' \(simulated {kind}\): {problem}"):
        data.simulate(name, out, kind=kind, scale=0.1, seed=3, labels={"continuous": ["speed"], "discrete": []})


def test_simulate_refuses_an_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="data.simulate.kind='fish' is not a simulator; use one of rat, openfield, reaching"):
        data.simulate("nemo", tmp_path / "nemo.parquet", kind="fish")
    assert not (tmp_path / "nemo.parquet").exists()


def test_import_with_a_labels_spec(tmp_path):
    """The import step reads a user's file by the declared labels and writes its session table."""
    sim = simulate_openfield("mouse1", n_bins=300, n_neurons=9, seed=0)
    raw = tmp_path / "mouse1.npz"
    np.savez(raw, neural=sim.neural, x=sim.labels["x"].to_numpy(), y=sim.labels["y"].to_numpy(),
             context=sim.labels["context"].to_numpy(), speed=np.ones(300))
    out = tmp_path / "mouse1.parquet"
    data.import_session(raw, out, session="mouse1", md5=None, nwb=None, signals={"mouse1": "continuous"},
                        labels=OPENFIELD)
    neural, labels = read_session(out)
    np.testing.assert_array_equal(neural, sim.neural)
    pd.testing.assert_frame_equal(labels, sim.labels)
    # counts (the default kind) refuse the calcium traces; the rat track's labels are not in the file
    with pytest.raises(SessionError, match="spike counts and must not be negative"):
        data.import_session(raw, tmp_path / "again.parquet", session="mouse1", md5=None, nwb=None, signals={},
                            labels=OPENFIELD)
    with pytest.raises(SessionError, match=r"session 'mouse1' \(.*mouse1\.npz\): label column\(s\) \['position', "
                                           r"'right', 'left'\] \(the labels key\) are missing"):
        data.import_session(raw, tmp_path / "again.parquet", session="mouse1", md5=None, nwb=None,
                            signals={"mouse1": "continuous"})
    assert not (tmp_path / "again.parquet").exists()


def test_check_step_on_declared_labels(tmp_path):
    """The check step with the labels and consistency label of the mice: the summary has each
    column's range and the classes; a 2-D consistency grid is checked across the sessions."""
    tables = mouse_tables(tmp_path, names=("m1", "m2"), n_bins=1200)
    needs = dict(NEEDS, labels=OPENFIELD, consistency_label=["x", "y"], consistency_bins=16)
    signals = {"m1": "continuous", "m2": "continuous"}
    data.check(tables, tmp_path / "checks.tsv", needs=needs, sources=tables, signals=signals)
    summary = pd.read_csv(tmp_path / "checks.tsv", sep="\t")
    assert list(summary.columns) == ["session", "time_bins", "neurons", "x_min", "x_max", "y_min", "y_max",
                                     "context_classes", "spikes_per_bin", "signal"]
    assert summary["context_classes"].tolist() == [2, 2] and summary["time_bins"].tolist() == [1200, 1200]
    with pytest.raises(SessionError, match="label column\\(s\\) \\['position'"):
        data.check(tables, tmp_path / "checks.tsv", needs=NEEDS, sources=tables, signals=signals)


def test_adapt_step_keeps_a_checkpoint_while_it_runs(tables, tmp_path, monkeypatch):
    """The adapt step adapts the held-out session on its train part into the trained model, writes the
    adapted model, every session's embedding and the untrained baseline's; while CEBRA.adapt runs,
    its checkpoint lies beside the model, and it is removed once every output is written."""
    trained = tmp_path / "trained"
    trained.mkdir()
    fits.fit({"a": tables["a"]}, model=trained / "model.pt", embedding=trained / "e.parquet",
             loss=trained / "l.parquet", kind="multi", cebra=dict(CEBRA_PARAMS, checkpoint_every=2),
             split={"fold": 0, "folds": 1, "test_fraction": 0.2}, seed=0, device="cpu")
    out = tmp_path / "adapted"
    out.mkdir()
    checkpoint = fits.checkpoint_path(out / "model.pt")
    seen = []
    original = CEBRA.adapt

    def adapt(self, *args, **kwargs):
        assert self.checkpoint_path == checkpoint
        new_id = original(self, *args, **kwargs)
        seen.append(torch.load(checkpoint, weights_only=True)["iteration"])  # written by the running adapt
        return new_id

    monkeypatch.setattr(CEBRA, "adapt", adapt)
    fits.adapt(tables, trained_model=trained / "model.pt", held_out="z", trained=["a"], model=out / "model.pt",
               embedding=out / "embedding.parquet", untrained=out / "untrained.parquet",
               split={"fold": 0, "folds": 1, "test_fraction": 0.2}, iterations=4, device="cpu", labels=None)
    assert seen == [4]
    assert not checkpoint.exists()  # removed once every output is written
    assert sorted(p.name for p in out.iterdir()) == ["embedding.parquet", "model.pt", "untrained.parquet"]
    model = CEBRA.load(out / "model.pt")
    assert model.num_sessions_ == 2 and model.checkpoint_path is None
    embedding = pd.read_parquet(out / "embedding.parquet")
    assert embedding.groupby(["session", "part"]).size().to_dict() == {
        ("a", "test"): 80, ("a", "train"): 320, ("z", "test"): 80, ("z", "train"): 320}
    untrained = pd.read_parquet(out / "untrained.parquet")
    assert set(untrained["session"]) == {"z"} and len(untrained) == 400
    # a held-out session that does not fit the model's sessions
    with pytest.raises(ValueError, match=r"has 1 sessions, expected 2 \(\['a', 'b'\]\)"):
        fits.adapt(tables, trained_model=trained / "model.pt", held_out="z", trained=["a", "b"], model=out / "model.pt",
                   embedding=out / "embedding.parquet", untrained=out / "untrained.parquet",
                   split={"fold": 0, "folds": 1, "test_fraction": 0.2}, iterations=4, device="cpu")


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
