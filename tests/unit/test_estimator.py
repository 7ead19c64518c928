"""The CEBRA front door: fit/transform shapes, multi-session structure, persistence and input validation."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from cebra_core import CEBRA
from cebra_core.analysis.decoding import knn_classify
from cebra_core.engine import sampling
from cebra_core.engine.adaptation import new_session_encoder
from cebra_core.engine.architectures import ARCHITECTURES, Offset, architecture
from cebra_core.engine.estimator import DeviceError, resolve_device
from cebra_core.engine.model import Encoder
from cebra_core.sessions.simulate import simulate_session
from helpers import count_steps
from cebra_core.sessions.validation import InputError

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
    assert isinstance(single.model_, Encoder) and single.model_.num_input == 20
    assert single.model_.architecture == "offset10-model" and single.offset_ == Offset(5, 5)
    assert single.label_kinds_ == {"continuous": 3, "discrete": False}
    assert single.num_sessions_ is None and single.n_features_in_ == 20
    assert len(single.loss_history_) == FIT["max_iterations"]
    assert_embedding(single.transform(data[0].neural), 420)


def test_multi_session_fit_has_independent_encoders(multi, data):
    assert isinstance(multi.model_, torch.nn.ModuleList) and len(multi.model_) == 3
    assert all(isinstance(m, Encoder) for m in multi.model_)
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
    assert model.label_kinds_ == {"continuous": 1, "discrete": False}
    assert_embedding(model.transform(d.neural), d.neural.shape[0])
    multi = CEBRA(**FIT).fit([x.neural for x in data], [x.labels[:, 0] for x in data])
    assert_embedding(multi.transform(data[2].neural, session_id=2), data[2].neural.shape[0])


# ----------------------------------------------------------------------------- transform
@pytest.mark.parametrize("batch_size", [7, 128, 333, 500, 999, 10_000])  # 333 and 999: a last chunk of one row
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

    # the checkpoint belongs to the job, not the model: a loaded model that trains again writes none
    single.set_params(checkpoint_path=tmp_path / "job.ckpt").save(tmp_path / "single.pt")
    single.set_params(checkpoint_path=None)
    assert CEBRA.load(tmp_path / "single.pt").checkpoint_path is None

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
    with pytest.raises(ValueError, match=f"{path}: not a cebra_core or CEBRA model file"):
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
    with pytest.raises(ValueError, match=r"session 1: neural data has 650 rows but labels have shape \(649, 3\)"):
        _fit_multi(X, [y[0], y[1][:-1], y[2]])
    with pytest.raises(ValueError, match=r"session 1: 9 samples is shorter than the model's receptive field \(10\)"):
        _fit_multi([X[0], X[1][:9], X[2]], [y[0], y[1][:9], y[2]])
    with pytest.raises(ValueError, match=r"session 0: 9 samples is shorter than"):
        CEBRA(**FIT).fit(X[0][:9], y[0][:9])
    with pytest.raises(ValueError, match=r"session 0: neural data must be 2-D \(time, neurons\), got shape \(420,\)"):
        CEBRA(**FIT).fit(X[0][:, 0], y[0])
    with pytest.raises(ValueError, match=r"session 2: neural data must be 2-D"):
        _fit_multi([X[0], X[1], X[2][:, :, None]], y)
    with pytest.raises(ValueError, match=r"session 2: its labels differ in kind or width from session 0's; all sessions "
                                         "need the same label columns"):
        _fit_multi(X, [y[0], y[1], y[2][:, 0]])
    with pytest.raises(ValueError, match=r"session 0: continuous labels must be 1-D or 2-D \(time, columns\), got shape \(420, 3, 1\)"):
        CEBRA(**FIT).fit(X[0], y[0][:, :, None])
    with pytest.raises(ValueError, match=r"session 1: 10 samples leave no label differences"):
        _fit_multi([X[0], X[1][:10]], [y[0], y[1][:10]])
    with pytest.raises(ValueError, match=r"give X and every label as lists \(multi-session\) or as arrays \(one session\)"):
        CEBRA(**FIT).fit(X, y[0])
    with pytest.raises(ValueError, match=r"give X and every label as lists"):
        CEBRA(**FIT).fit(X[0], y)
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
        ("model_architecture", "offset2-model", ", ".join(ARCHITECTURES)),
        ("distance", "manhattan", "cosine, euclidean"),
        ("conditional", "discrete", "time_delta, time, delta"),
        ("temperature_mode", "learned", "constant, auto"),
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
    with pytest.raises(DeviceError, match="CUDA"):  # an InputError: the workflow logs it without a traceback
        resolve_device("cuda")
    assert issubclass(DeviceError, InputError) and issubclass(DeviceError, ValueError)
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


# ----------------------------------------------------------------------------- CEBRA's model family
TINY = dict(batch_size=16, max_iterations=3, learning_rate=1e-3, seed=0, device="cpu", num_hidden_units=8)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_fits_and_transforms(data, name):
    """Each of CEBRA's encoders: its layers, its window (offset), a fit and a transform of every row,
    unit-norm output except the -mse models', batched transform equal to the whole."""
    arch = architecture(name)
    x, y = data[2].neural[:120], data[2].labels[:120]
    params = dict(TINY, model_architecture=name)
    if not arch.normalize:
        params["distance"] = "euclidean"  # the -mse models are meant for it
    model = CEBRA(**params).fit(x, y)
    assert isinstance(model.model_, Encoder) and model.model_.architecture == name
    assert model.offset_ == arch.offset() and len(model.offset_) == arch.receptive_field
    widths = [w.shape[0] for w, _ in model.model_.weight_layers()]
    assert widths == [layer.width for layer in arch.layers(8, 3)]
    assert sum(p.numel() for p in model.model_.parameters()) == sum(
        w.numel() + b.numel() for w, b in model.model_.weight_layers())
    assert len(model.loss_history_) == 3 and np.isfinite(model.loss_history_).all()
    z = model.transform(x)
    assert z.shape == (120, 3) and z.dtype == np.float32 and np.isfinite(z).all()
    norms = np.linalg.norm(z, axis=1)
    if arch.normalize:
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    else:
        assert np.abs(norms - 1).max() > 1e-3  # not normalised
    for batch_size in (7, 50):
        np.testing.assert_allclose(model.transform(x, batch_size=batch_size), z, rtol=0, atol=1e-5)
    z_short = model.transform(x[: arch.receptive_field])  # exactly one receptive field
    assert z_short.shape == (arch.receptive_field, 3)
    if arch.receptive_field > 1:
        with pytest.raises(ValueError, match=rf"{arch.receptive_field - 1} samples is shorter than the model's receptive "
                                             rf"field \({arch.receptive_field}\)"):
            model.transform(x[: arch.receptive_field - 1])


def test_hidden_units_below_an_architectures_minimum_are_refused(data):
    with pytest.raises(ValueError, match="num_hidden_units must be an integer >= 2 for offset1-model, got 1"):
        CEBRA(**dict(TINY, model_architecture="offset1-model", num_hidden_units=1)).fit(data[0].neural, data[0].labels)


def class_session(t=600, n=20, classes=4, seed=0):
    """Neurons whose rates depend on a discrete class (blocks of 20 bins), and a float label."""
    rng = np.random.default_rng(seed)
    label = np.repeat(rng.integers(0, classes, t // 20), 20)
    label[:classes] = np.arange(classes)
    rates = rng.gamma(2.0, 0.5, (classes, n))
    neural = rng.poisson(rates[label]).astype(np.float32)
    return neural, label.astype(np.int64), rng.normal(size=(t, 2)).astype(np.float32)


def test_a_discrete_label_alone():
    """An integer label is CEBRA's discrete label: positives of the same class; the embedding then
    separates the classes (kNN on the first half, tested on the second)."""
    x, label, _ = class_session()
    model = CEBRA(batch_size=64, max_iterations=60, seed=0, device="cpu").fit(x, label)
    assert model.label_kinds_ == {"continuous": None, "discrete": True}
    z = model.transform(x)
    accuracy = np.mean(knn_classify(z[:300], label[:300], z[300:], 10) == label[300:])
    assert accuracy > 0.85, accuracy  # measured 0.94; chance 0.25
    unlabelled = CEBRA(batch_size=64, max_iterations=60, seed=0, device="cpu").fit(x)
    assert not np.array_equal(unlabelled.loss_history_, model.loss_history_)
    # a uint8 or int32 class array is the same discrete label
    same = CEBRA(batch_size=64, max_iterations=60, seed=0, device="cpu").fit(x, label.astype(np.uint8))
    np.testing.assert_array_equal(same.loss_history_, model.loss_history_)


def test_mixed_labels_in_any_order():
    """Continuous and discrete labels together: float arrays are the continuous columns, the integer
    array the discrete one, whatever their order in the call."""
    x, label, cont = class_session(seed=1)
    model = CEBRA(**dict(TINY, max_iterations=8)).fit(x, cont, label)
    assert model.label_kinds_ == {"continuous": 2, "discrete": True}
    swapped = CEBRA(**dict(TINY, max_iterations=8)).fit(x, label, cont)
    np.testing.assert_array_equal(swapped.loss_history_, model.loss_history_)
    np.testing.assert_array_equal(swapped.transform(x), model.transform(x))
    # the sampler is the mixed one: references class-balanced, positives of the reference's class
    sampler = sampling.make_sampler([sampling.Labels(torch.from_numpy(cont), torch.from_numpy(label))],
                                    conditional="time_delta", time_offset=10, delta=None, seed=0, device="cpu", multi=False)
    batch = sampler.sample(256)
    assert sampler.kind == "mixed"
    assert torch.equal(torch.from_numpy(label)[batch.reference[0]], torch.from_numpy(label)[batch.positive[0]])
    # multi-session: the same kinds in every session
    x2, label2, cont2 = class_session(n=13, seed=2)
    multi = CEBRA(**TINY).fit([x, x2], [cont, cont2], [label, label2])
    assert multi.label_kinds_ == {"continuous": 2, "discrete": True} and multi.num_sessions_ == 2


def test_two_dimensional_continuous_labels(data):
    """A (T, 2) float label (an open field's x, y) is two continuous columns, as are two 1-D float arrays."""
    x, y = data[0].neural, data[0].labels
    two = np.ascontiguousarray(y[:, :2])
    model = CEBRA(**FIT).fit(x, two)
    assert model.label_kinds_ == {"continuous": 2, "discrete": False}
    columns = CEBRA(**FIT).fit(x, y[:, 0].copy(), y[:, 1].copy())
    np.testing.assert_array_equal(columns.loss_history_, model.loss_history_)
    assert columns.label_kinds_ == model.label_kinds_


def test_no_labels_is_cebra_time(data):
    """Without labels (or with conditional time, which ignores them) the positive is time_offsets
    samples after its reference: the same fit either way."""
    x, y = data[0].neural, data[0].labels
    model = CEBRA(**FIT).fit(x)
    assert model.label_kinds_ == {"continuous": None, "discrete": False}
    timed = CEBRA(**(FIT | {"conditional": "time"})).fit(x, y)
    np.testing.assert_array_equal(timed.loss_history_, model.loss_history_)
    np.testing.assert_array_equal(timed.transform(x), model.transform(x))
    behaviour = CEBRA(**FIT).fit(x, y)
    assert not np.array_equal(behaviour.loss_history_, model.loss_history_)
    assert_embedding(model.transform(x), 420)
    multi = CEBRA(**FIT).fit([d.neural for d in data])  # multi-session CEBRA-Time
    assert multi.num_sessions_ == 3 and multi.label_kinds_ == model.label_kinds_


def test_conditional_delta_needs_delta(data):
    x, y = data[0].neural, data[0].labels
    with pytest.raises(ValueError, match=r"conditional='delta' needs delta > 0 \(the positives' label noise\), got None"):
        CEBRA(**(FIT | {"conditional": "delta"})).fit(x, y)
    with pytest.raises(ValueError, match="conditional='delta' needs delta > 0 .* got -0.1"):
        CEBRA(**(FIT | {"conditional": "delta", "delta": -0.1})).fit(x, y)
    model = CEBRA(**(FIT | {"conditional": "delta", "delta": 0.05})).fit(x, y)
    again = CEBRA(**(FIT | {"conditional": "delta", "delta": 0.05})).fit(x, y)
    np.testing.assert_array_equal(again.loss_history_, model.loss_history_)
    other = CEBRA(**(FIT | {"conditional": "delta", "delta": 0.5})).fit(x, y)
    assert not np.array_equal(other.loss_history_, model.loss_history_)
    assert not np.array_equal(CEBRA(**FIT).fit(x, y).loss_history_, model.loss_history_)  # not time_delta
    assert_embedding(model.transform(x), 420)


def test_euclidean_distance_with_a_learned_temperature(data):
    """temperature_mode auto learns the temperature with the encoders: the log's temperature column
    moves from its start and never goes below min_temperature (where it reaches the floor, CEBRA's
    clamp holds it there)."""
    x, y = data[0].neural, data[0].labels
    params = FIT | {"model_architecture": "offset10-model-mse", "distance": "euclidean", "temperature_mode": "auto",
                    "temperature": 1.0, "min_temperature": 0.1, "learning_rate": 0.05, "max_iterations": 40}
    model = CEBRA(**params).fit(x, y)
    temperature = np.array(model.log_["temperature"])
    assert temperature.shape == (40,) and len(np.unique(temperature)) > 30  # it changes over the steps
    assert temperature.min() >= np.float32(0.1)
    # logged after each step: Adam's first step moves log(1/temperature) by the learning rate
    assert temperature[0] == pytest.approx(np.exp(-0.05), rel=1e-5)
    assert temperature[-1] > 1.5  # measured 1.93: the euclidean criterion learns a warmer temperature here
    assert model.criterion_.temperature == pytest.approx(temperature[-1])
    assert set(dict(model.criterion_.named_parameters())) == {"log_inverse_temperature"}
    z = model.transform(x)
    assert z.shape == (420, 3) and np.abs(np.linalg.norm(z, axis=1) - 1).max() > 1e-3  # not normalised
    np.testing.assert_allclose(np.add(model.log_["pos"], model.log_["neg"]), model.log_["total"], atol=1e-4)
    # starting just above the floor, the first step would go below it: clamped, and held there
    floor = CEBRA(**(params | {"temperature": 0.2, "min_temperature": 0.195})).fit(x, y)
    assert floor.log_["temperature"] == [float(np.float32(0.195))] * 40
    constant = CEBRA(**(params | {"temperature_mode": "constant"})).fit(x, y)
    assert constant.log_["temperature"] == [1.0] * 40 and list(constant.criterion_.parameters()) == []
    with pytest.raises(ValueError, match="min_temperature must be positive"):
        CEBRA(**(params | {"min_temperature": 0.0})).fit(x, y)


def test_a_causal_window_uses_only_the_past(data):
    """causal=True: the same layers and parameters as CEBRA's centred window, but row t is embedded
    from rows t-9 … t: changing the future leaves every earlier embedding as it was."""
    x, y = data[0].neural, data[0].labels
    centred = CEBRA(**FIT).fit(x, y)
    causal = CEBRA(**(FIT | {"causal": True})).fit(x, y)
    assert causal.offset_ == Offset(9, 1) and centred.offset_ == Offset(5, 5)
    shapes = {k: v.shape for k, v in causal.model_.state_dict().items()}
    assert shapes == {k: v.shape for k, v in centred.model_.state_dict().items()}
    assert sum(p.numel() for p in causal.model_.parameters()) == 64 * 20 + 9635
    assert not np.array_equal(causal.loss_history_, centred.loss_history_)  # other windows, other fit
    z = causal.transform(x)
    changed = x.copy()
    changed[200:] = np.random.default_rng(0).poisson(2.0, changed[200:].shape)
    z_changed = causal.transform(changed)
    np.testing.assert_array_equal(z_changed[:200], z[:200])  # the past is untouched
    assert np.abs(z_changed[200] - z[200]).max() > 1e-3  # row 200 sees its own (changed) bin
    # the centred window reads 4 rows ahead: row 196 already changes
    zc, zc_changed = centred.transform(x), centred.transform(changed)
    np.testing.assert_array_equal(zc_changed[:196], zc[:196])
    assert np.abs(zc_changed[196] - zc[196]).max() > 1e-3
    # an online embedding: each row from the rows up to it alone equals the whole session's
    rows = [causal.transform(x[max(t - 30, 0): t + 1])[-1] for t in (10, 57, 300)]
    np.testing.assert_allclose(rows, z[[10, 57, 300]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(causal.transform(x, batch_size=64), z, rtol=0, atol=1e-5)


def test_causal_model_survives_save_and_load(data, tmp_path):
    x, y = data[0].neural, data[0].labels
    model = CEBRA(**(FIT | {"causal": True, "temperature_mode": "auto"})).fit(x, y)
    model.save(tmp_path / "causal.pt")
    loaded = CEBRA.load(tmp_path / "causal.pt")
    assert loaded.causal is True and loaded.offset_ == Offset(9, 1)
    np.testing.assert_array_equal(loaded.transform(x), model.transform(x))
    assert loaded.criterion_.temperature == model.criterion_.temperature


@pytest.mark.parametrize("options", [{}, {"temperature_mode": "auto"}, {"model_architecture": "offset5-model"}],
                         ids=["demo", "auto", "offset5"])
def test_seeds_are_reproducible(options):
    """Same data, parameters and seed: the same fit bit for bit (mixed labels, any criterion); another
    seed: another fit."""
    x, label, cont = class_session(seed=3)
    params = TINY | options

    def fit(seed):
        return CEBRA(**(params | {"seed": seed})).fit(x, cont, label)

    a, b, c = fit(4), fit(4), fit(5)
    np.testing.assert_array_equal(a.loss_history_, b.loss_history_)
    assert a.log_ == b.log_
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    assert not np.array_equal(a.transform(x), c.transform(x))


# ----------------------------------------------------------------------------- fit(..., adapt=True)
ADAPT = FIT | {"max_adapt_iterations": 7}


def test_fit_adapt_true_trains_a_new_first_layer_only(single, data, monkeypatch):
    """CEBRA's fit(X, y, adapt=True) on a fitted single-session model: new data with another neuron
    count get a fresh first layer; only it trains, for max_adapt_iterations steps; every later layer
    stays as it was."""
    model = copy.deepcopy(single).set_params(max_adapt_iterations=7)
    before = {k: v.clone() for k, v in model.model_.state_dict().items()}
    steps = count_steps(monkeypatch)
    assert model.fit(data[1].neural, data[1].labels, adapt=True) is model
    assert len(steps) == 7
    monkeypatch.undo()
    after = model.model_.state_dict()
    assert after["net.0.weight"].shape == (32, 31, 2) and before["net.0.weight"].shape == (32, 20, 2)
    assert set(after) == set(before)
    for name, value in after.items():
        if not name.startswith("net.0."):
            assert torch.equal(value, before[name]), name
    assert all(p.requires_grad for p in model.model_.parameters())
    assert model.n_features_in_ == 31 and model.num_sessions_ is None
    assert len(model.loss_history_) == 7 and all(len(v) == 7 for v in model.log_.values())
    assert_embedding(model.transform(data[1].neural), 650)
    with pytest.raises(ValueError, match="data has 20 neurons but the model was trained on 31"):
        model.transform(data[0].neural)
    # the fresh first layer (seeded by the model's seed + 1) is trained, not left at its random start
    start = new_session_encoder(single.model_, 31, seed=single.seed_ + 1, layers="first").state_dict()
    assert start["net.0.weight"].shape == (32, 31, 2)
    assert not torch.equal(start["net.0.weight"], after["net.0.weight"])
    assert torch.equal(start["net.2.module.0.weight"], after["net.2.module.0.weight"])
    # reproducible: the same adapt again gives the same model
    again = copy.deepcopy(single).set_params(max_adapt_iterations=7).fit(data[1].neural, data[1].labels, adapt=True)
    np.testing.assert_array_equal(again.transform(data[1].neural), model.transform(data[1].neural))


def test_fit_adapt_true_checks_its_input(single, multi, data):
    model = copy.deepcopy(single)
    with pytest.raises(ValueError, match=r"new session: labels \{'continuous': 1, 'discrete': False\} differ from the ones "
                                         r"the model was trained on \{'continuous': 3, 'discrete': False\}"):
        model.fit(data[1].neural, data[1].labels[:, 0], adapt=True)
    with pytest.raises(ValueError, match="new session: neural data has 650 rows but labels have shape"):
        model.fit(data[1].neural, data[1].labels[:-1], adapt=True)
    with pytest.raises(ValueError, match=r"fit\(\.\.\., adapt=True\) adapts a single-session model; for a multi-session "
                                         r"model use adapt\(X, \*y\)"):
        copy.deepcopy(multi).fit(data[1].neural, data[1].labels, adapt=True)
    with pytest.raises(ValueError, match=r"adapt\(\) adds a session to a multi-session model; a single-session model "
                                         r"adapts with fit\(X, \*y, adapt=True\)"):
        model.adapt(data[1].neural, data[1].labels)
    assert model.n_features_in_ == 20  # nothing changed
    # on an unfitted model adapt=True is an ordinary fit
    fresh = CEBRA(**FIT).fit(data[0].neural, data[0].labels, adapt=True)
    np.testing.assert_array_equal(fresh.loss_history_, single.loss_history_)


def test_fit_adapt_true_resumes_from_its_checkpoint(single, data, tmp_path, monkeypatch):
    """An adapt interrupted after a checkpoint resumes there: the remaining steps only, the model of
    an uninterrupted adapt."""
    path = tmp_path / "adapt.ckpt"
    X, y = data[1].neural, data[1].labels
    params = {"max_adapt_iterations": 7, "checkpoint_every": 3}
    interrupted = copy.deepcopy(single).set_params(**params, checkpoint_path=path)
    count_steps(monkeypatch, fail_at=5)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(X, y, adapt=True)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["iteration"] == 3  # a checkpoint file left from the partial run
    steps = count_steps(monkeypatch)
    resumed = copy.deepcopy(single).set_params(**params, checkpoint_path=path).fit(X, y, adapt=True)
    assert len(steps) == 4  # 3 done, 4 to go
    monkeypatch.undo()
    uninterrupted = copy.deepcopy(single).set_params(**params).fit(X, y, adapt=True)
    np.testing.assert_array_equal(resumed.loss_history_, uninterrupted.loss_history_)
    for (k, a), (_, b) in zip(resumed.model_.state_dict().items(), uninterrupted.model_.state_dict().items()):
        assert torch.equal(a, b), k
    np.testing.assert_array_equal(resumed.transform(X), uninterrupted.transform(X))
    # checkpoint_every larger than max_adapt_iterations: the end of the adapt is still checkpointed
    other = tmp_path / "other.ckpt"
    copy.deepcopy(single).set_params(max_adapt_iterations=4, checkpoint_every=500, checkpoint_path=other).fit(
        X, y, adapt=True)
    assert torch.load(other, weights_only=True)["iteration"] == 4


def test_multi_session_adapt_resumes_from_its_checkpoint(multi, data, tmp_path, monkeypatch):
    """adapt() of a multi-session model with checkpoint_path set: a second call after an interruption
    resumes (the remaining steps only) and gives the uninterrupted adapt's encoder."""
    new = simulate_session("new", shape=(380, 17), seed=30)
    path = tmp_path / "adapt.ckpt"
    interrupted = copy.deepcopy(multi).set_params(checkpoint_path=path, checkpoint_every=4)
    count_steps(monkeypatch, sampling.AdaptationSampler, fail_at=7)
    with pytest.raises(KeyboardInterrupt):
        interrupted.adapt(new.neural, new.labels, max_iterations=10)
    monkeypatch.undo()
    assert interrupted.num_sessions_ == 3  # nothing added by the interrupted call
    assert torch.load(path, weights_only=True)["iteration"] == 4
    steps = count_steps(monkeypatch, sampling.AdaptationSampler)
    assert interrupted.adapt(new.neural, new.labels, max_iterations=10) == 3  # the second call resumes
    assert len(steps) == 6
    monkeypatch.undo()
    uninterrupted = copy.deepcopy(multi)
    assert uninterrupted.adapt(new.neural, new.labels, max_iterations=10) == 3
    for (k, a), (_, b) in zip(interrupted.model_[3].state_dict().items(), uninterrupted.model_[3].state_dict().items()):
        assert torch.equal(a, b), k
    np.testing.assert_array_equal(interrupted.transform(new.neural, session_id=3),
                                  uninterrupted.transform(new.neural, session_id=3))
    for i, d in enumerate(data):  # the trained sessions are untouched
        np.testing.assert_array_equal(interrupted.transform(d.neural, session_id=i), multi.transform(d.neural, session_id=i))


def test_adapt_does_not_resume_a_checkpoint_of_another_trained_model(multi, tmp_path, monkeypatch, caplog):
    """The same new session and options, but a refitted trained model: the old checkpoint is not resumed."""
    new = simulate_session("new", shape=(380, 17), seed=30)
    path = tmp_path / "adapt.ckpt"
    count_steps(monkeypatch, sampling.AdaptationSampler, fail_at=7)
    with pytest.raises(KeyboardInterrupt):
        copy.deepcopy(multi).set_params(checkpoint_path=path, checkpoint_every=4).adapt(new.neural, new.labels,
                                                                                        max_iterations=10)
    monkeypatch.undo()
    refitted = copy.deepcopy(multi).set_params(checkpoint_path=path, checkpoint_every=4)
    refitted._extra_state["trained_embeddings"] = [z + 0.1 for z in refitted._extra_state["trained_embeddings"]]
    steps = count_steps(monkeypatch, sampling.AdaptationSampler)
    with caplog.at_level(logging.WARNING, logger="cebra_core"):
        refitted.adapt(new.neural, new.labels, max_iterations=10)
    assert len(steps) == 10  # all of them: nothing resumed
    assert "other parameters" in caplog.text


# ----------------------------------------------------------------------------- bad labels
def test_bad_labels_are_named(data):
    x, y = data[0].neural, data[0].labels
    classes = (y[:, 1] > 0).astype(np.int64)
    with pytest.raises(ValueError, match=r"session 0: Unknown label type: labels of dtype bool; give float arrays "
                                         r"\(continuous labels\) or one integer array \(a discrete label\)"):
        CEBRA(**FIT).fit(x, classes.astype(bool))
    with pytest.raises(ValueError, match="session 0: Unknown label type: labels of dtype <U"):
        CEBRA(**FIT).fit(x, classes.astype(str))
    with pytest.raises(ValueError, match="session 0: 2 discrete labels; CEBRA takes at most one"):
        CEBRA(**FIT).fit(x, classes, classes)
    with pytest.raises(ValueError, match="session 0: discrete classes must be 0, 1, 2, …; got -1"):
        CEBRA(**FIT).fit(x, classes - 1)
    with pytest.raises(ValueError, match=r"session 0: a discrete label must be 1-D \(one class per row\), got shape \(420, 2\)"):
        CEBRA(**FIT).fit(x, np.stack([classes, classes], axis=1))
    X = [d.neural for d in data]
    discrete = [(d.labels[:, 1] > 0).astype(np.int64) for d in data]
    continuous = [d.labels for d in data]
    with pytest.raises(ValueError, match="session 1: its labels differ in kind or width from session 0's"):
        CEBRA(**FIT).fit(X, [continuous[0], discrete[1], continuous[2]])
    with pytest.raises(ValueError, match="session 2: its labels differ in kind or width from session 0's"):
        CEBRA(**FIT).fit(X, [discrete[0], discrete[1], continuous[2]])
    missing = [discrete[0], np.zeros_like(discrete[1]), discrete[2]]
    with pytest.raises(ValueError, match=r"session 1 has no sample of class\(es\) \[1\], which other sessions have: "
                                         "multi-session sampling needs every class in every session"):
        CEBRA(**FIT).fit(X, missing)
