"""The CEBRA front door: fit/transform shapes, multi-session structure, persistence and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cebra_core import CEBRA
from cebra_core.engine.estimator import resolve_device
from cebra_core.engine.model import Offset10Model
from cebra_core.sessions.simulate import simulate_session

SPECS = ((420, 20), (650, 31), (300, 12))  # (T, N) of three sessions
FIT = dict(batch_size=48, max_iterations=12, learning_rate=1e-3, seed=0, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def data():
    return [simulate_session(f"s{i}", shape=shape, seed=10 + i) for i, shape in enumerate(SPECS)]


@pytest.fixture(scope="module")
def single(data):
    return CEBRA(**FIT).fit(data[0].neural, data[0].labels)


@pytest.fixture(scope="module")
def multi(data):
    return CEBRA(**FIT).fit([d.neural for d in data], [d.labels for d in data])


def assert_embedding(z: np.ndarray, rows: int) -> None:
    assert z.shape == (rows, 3) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------- fit
def test_single_session_fit(single, data):
    assert isinstance(single.model_, Offset10Model) and single.model_.num_input == 20
    assert single.num_sessions_ is None and single.n_features_in_ == 20
    assert len(single.loss_history_) == FIT["max_iterations"]
    assert_embedding(single.transform(data[0].neural), 420)


def test_multi_session_fit_has_independent_encoders(multi, data):
    assert isinstance(multi.model_, torch.nn.ModuleList) and len(multi.model_) == 3
    assert all(isinstance(m, Offset10Model) for m in multi.model_)
    assert [m.num_input for m in multi.model_] == [20, 31, 12] == multi.n_features_in_
    assert multi.num_sessions_ == 3
    storage = [{p.data_ptr() for p in m.parameters()} for m in multi.model_]
    assert all(len(storage[i] & storage[j]) == 0 for i in range(3) for j in range(i + 1, 3))
    assert sum(p.numel() for p in multi.model_.parameters()) == sum(64 * n + 9635 for n in (20, 31, 12))
    # all encoders were trained (moved away from their seeded init), each differently
    first = [m.net[2].module[0].weight.detach() for m in multi.model_]
    assert not torch.equal(first[0], first[1])
    for i, d in enumerate(data):
        assert_embedding(multi.transform(d.neural, session_id=i), d.neural.shape[0])
        assert_embedding(multi.transform(d.neural[:57], session_id=i), 57)


def test_logs(multi):
    n = FIT["max_iterations"]
    assert multi.loss_history_.shape == (n,)
    assert set(multi.log_) == {"pos", "neg", "total", "temperature"}
    assert all(len(v) == n for v in multi.log_.values())
    assert multi.log_["temperature"] == [1.0] * n
    np.testing.assert_allclose(np.add(multi.log_["pos"], multi.log_["neg"]), multi.log_["total"], atol=1e-5)
    np.testing.assert_allclose(multi.log_["total"], multi.loss_history_, atol=1e-6)
    assert all(-1.0 <= p <= 1.0 for p in multi.log_["pos"])  # -mean cosine at tau = 1
    # neg = mean logsumexp over n negatives lies in [ln n - 1, ln n + 1] at tau = 1; the negatives are
    # pooled over the sessions (n = 3 x 48), which per-session negatives (n = 48) could not reach
    assert all(np.log(48) + 1 < v <= np.log(144) + 1 for v in multi.log_["neg"][:3])


def test_one_dimensional_labels(data):
    d = data[0]
    model = CEBRA(**FIT).fit(d.neural, d.labels[:, 0])
    assert model.label_dim_ == 1
    assert_embedding(model.transform(d.neural), d.neural.shape[0])
    multi = CEBRA(**FIT).fit([x.neural for x in data], [x.labels[:, 0] for x in data])
    assert_embedding(multi.transform(data[2].neural, session_id=2), data[2].neural.shape[0])


# ----------------------------------------------------------------------------- transform
@pytest.mark.parametrize("batch_size", [7, 128, 333, 500, 10_000])
def test_transform_batching_equals_unbatched(multi, batch_size):
    x = simulate_session("t", shape=(1000, 31), seed=5).neural
    full = multi.transform(x, session_id=1)
    batched = multi.transform(x, session_id=1, batch_size=batch_size)
    assert_embedding(batched, 1000)
    assert np.abs(batched - full).max() < 1e-5


def test_transform_matches_the_model_on_padded_windows(single, data):
    x = data[0].neural[:40]
    z = single.transform(x)
    rows = np.clip(np.arange(-5, 5)[None] + np.arange(40)[:, None], 0, 39)  # edge-replicated windows
    with torch.no_grad():
        want = single.model_(torch.from_numpy(x[rows]).transpose(1, 2)).numpy()
    assert np.abs(z - want).max() < 1e-5
    assert_embedding(single.transform(x[:10]), 10)  # exactly one receptive field
    assert np.array_equal(single.transform(x.astype(np.float64)), z)


def test_transform_session_zero_equals_none_for_single(single, data):
    assert np.array_equal(single.transform(data[0].neural, session_id=0), single.transform(data[0].neural))


# ----------------------------------------------------------------------------- persistence
def test_save_load_round_trip(single, multi, data, tmp_path):
    single.save(tmp_path / "single.pt")
    loaded = CEBRA.load(tmp_path / "single.pt")
    assert np.array_equal(loaded.transform(data[0].neural), single.transform(data[0].neural))
    assert loaded.get_params() == single.get_params()
    assert np.array_equal(loaded.loss_history_, single.loss_history_) and loaded.log_ == single.log_
    assert loaded.num_sessions_ is None and loaded.n_features_in_ == 20

    multi.save(tmp_path / "multi.pt")
    loaded = CEBRA.load(tmp_path / "multi.pt")
    assert isinstance(loaded.model_, torch.nn.ModuleList) and loaded.n_features_in_ == [20, 31, 12]
    for i, d in enumerate(data):
        assert np.array_equal(loaded.transform(d.neural, session_id=i), multi.transform(d.neural, session_id=i))
    assert np.array_equal(loaded.loss_history_, multi.loss_history_)


@pytest.mark.parametrize("kind", ["text", "numpy", "torch_list", "torch_dict"])
def test_load_rejects_other_files(tmp_path, kind):
    path = tmp_path / f"not_a_model.{kind}"
    if kind == "text":
        path.write_text("hello, I am not a model\n")
    elif kind == "numpy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "torch_list":
        torch.save([1, 2, 3], path)
    else:
        torch.save({"state": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a cebra_core model file"):
        CEBRA.load(path)


# ----------------------------------------------------------------------------- validation
def _fit_multi(X, y, **kw):
    return CEBRA(**(FIT | kw)).fit(X, y)


def _copies(data):
    return [d.neural.copy() for d in data], [d.labels.copy() for d in data]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(data, bad):
    X, y = _copies(data)
    X[0][17, 3] = bad
    with pytest.raises(ValueError, match=r"session 0: neural data contains NaN or inf \(first at row 17\)"):
        CEBRA(**FIT).fit(X[0], y[0])
    X, y = _copies(data)
    X[2][5, 0] = bad
    with pytest.raises(ValueError, match=r"session 2: neural data contains NaN or inf"):
        _fit_multi(X, y)
    X, y = _copies(data)
    y[1][33, 0] = bad
    with pytest.raises(ValueError, match=r"session 1: labels contain NaN or inf \(first at row 33\)"):
        _fit_multi(X, y)


def test_shape_problems(data):
    X, y = _copies(data)
    with pytest.raises(ValueError, match=r"session 1: neural data has 650 rows but labels have 649"):
        _fit_multi(X, [y[0], y[1][:-1], y[2]])
    with pytest.raises(ValueError, match=r"session 1: 9 samples is shorter than the model's receptive field \(10\)"):
        _fit_multi([X[0], X[1][:9], X[2]], [y[0], y[1][:9], y[2]])
    with pytest.raises(ValueError, match=r"session 0: 9 samples is shorter than"):
        CEBRA(**FIT).fit(X[0][:9], y[0][:9])
    with pytest.raises(ValueError, match=r"session 0: neural data must be 2-D \(time, neurons\), got shape \(420,\)"):
        CEBRA(**FIT).fit(X[0][:, 0], y[0])
    with pytest.raises(ValueError, match=r"session 2: neural data must be 2-D"):
        _fit_multi([X[0], X[1], X[2][:, :, None]], y)
    with pytest.raises(ValueError, match=r"session 2: labels have 1 columns but session 0's have 3"):
        _fit_multi(X, [y[0], y[1], y[2][:, 0]])
    with pytest.raises(ValueError, match=r"session 0: labels must be 1-D or 2-D"):
        CEBRA(**FIT).fit(X[0], y[0][:, :, None])
    with pytest.raises(ValueError, match=r"session 1: 10 samples leave no label differences"):
        _fit_multi([X[0], X[1][:10]], [y[0], y[1][:10]])
    with pytest.raises(ValueError, match=r"both as arrays .* or both as lists"):
        CEBRA(**FIT).fit(X, y[0])
    with pytest.raises(ValueError, match=r"got 3 neural arrays but 2 label arrays"):
        _fit_multi(X, y[:2])


def test_session_id_checks(single, multi, data):
    with pytest.raises(ValueError, match=r"multi-session model: pass session_id in \[0, 3\)"):
        multi.transform(data[0].neural)
    for bad in (3, -1, 7):
        with pytest.raises(ValueError, match=rf"session_id={bad} is out of range: this model has sessions 0\.\.2"):
            multi.transform(data[0].neural, session_id=bad)
    with pytest.raises(ValueError, match=r"session_id=1 given, but this is a single-session model"):
        single.transform(data[0].neural, session_id=1)
    with pytest.raises(ValueError, match=r"session 1: data has 20 neurons but the model was trained on 31"):
        multi.transform(data[0].neural, session_id=1)
    with pytest.raises(ValueError, match=r"the session: data has 31 neurons but the model was trained on 20"):
        single.transform(data[1].neural)
    bad = data[2].neural.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match=r"session 2: neural data contains NaN or inf \(first at row 3\)"):
        multi.transform(bad, session_id=2)
    with pytest.raises(ValueError, match=r"session 2: 5 samples is shorter than"):
        multi.transform(data[2].neural[:5], session_id=2)
    with pytest.raises(ValueError, match="not fitted"):
        CEBRA().transform(data[0].neural)


def test_bad_batch_size_and_checkpoint_every(single, data, tmp_path):
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            single.transform(data[0].neural, batch_size=bad)
    with pytest.raises(ValueError, match="checkpoint_every"):
        model = CEBRA(**(FIT | {"checkpoint_every": 0}), checkpoint_path=tmp_path / "c.ckpt")
        model.fit(data[0].neural, data[0].labels)


@pytest.mark.parametrize(
    "param,value,supported",
    [
        ("model_architecture", "offset1-model", "offset10-model"),
        ("distance", "euclidean", "cosine"),
        ("conditional", "time", "time_delta"),
    ],
)
def test_unsupported_options_list_the_supported_ones(data, param, value, supported):
    with pytest.raises(ValueError, match=rf"{param}='{value}' is not supported; supported: {supported}"):
        CEBRA(**(FIT | {param: value})).fit(data[0].neural, data[0].labels)


# ----------------------------------------------------------------------------- device and progress
def test_cuda_if_available_resolves_to_cpu_here(data):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    model = CEBRA(**(FIT | {"device": "cuda_if_available", "max_iterations": 2})).fit(data[0].neural, data[0].labels)
    assert model.device_ == "cpu"
    assert all(p.device.type == "cpu" for p in model.model_.parameters())


def test_device_resolution_order(monkeypatch):
    # issue 3: "cuda_if_available" picks CUDA, then CPU (unlike cebra, MPS is never picked implicitly:
    # the engine is only tested on CUDA and CPU); an explicit device name is used as given.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("cuda_if_available") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda_if_available") == "cuda"


def test_verbose_prints_a_progress_bar(data, capfd):
    CEBRA(**(FIT | {"max_iterations": 3})).fit(data[0].neural, data[0].labels)
    assert capfd.readouterr().err == ""
    CEBRA(**(FIT | {"max_iterations": 3, "verbose": True})).fit(data[0].neural, data[0].labels)
    err = capfd.readouterr().err
    assert "3/3" in err
    for key in ("pos:", "neg:", "total:", "temperature:  1.0000"):
        assert key in err
