"""Training devices: a device without float64 (Apple's GPU, 'mps') gets no float64 tensor, and a
device torch does not see is refused, with the config key and the portable choice, before any fit."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cebra_core import CEBRA
from cebra_core.engine import adaptation, estimator, sampling
from cebra_core.engine.estimator import resolve_device
from cebra_core.sessions.simulate import simulate_session

FIT = dict(batch_size=32, max_iterations=4, learning_rate=1e-3, seed=3, device="cpu")
SAMPLERS = ("SingleSessionSampler", "MultiSessionSampler", "AdaptationSampler")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# adapt's first-layer regression works on the CPU in float64 by design: it moves its inputs there
# first (the label match of `matched_hidden`, the ridge solve of `host_regression`)
HOST_FUNCTIONS = (adaptation.host_regression, adaptation.matched_hidden)


def _in_host_side_sampler() -> bool:
    """Whether the running op was called by a sampler that declared itself host-side (its float64
    search and draws on the CPU, off a training device without float64), or by adapt's regression,
    which moves its inputs to the CPU first (`HOST_FUNCTIONS`)."""
    classes = tuple(getattr(sampling, name) for name in SAMPLERS)
    codes = {f.__code__ for f in HOST_FUNCTIONS}
    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, classes) and getattr(owner, "host_side", False):
            return True
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


class NoFloat64OnTrainingDevice(TorchDispatchMode):
    """Fails on any op whose output is a float64 tensor, unless a host-side sampler made it.

    On this CPU-only machine the CPU stands in for the training device without float64: every
    tensor of the fit is a training-device tensor except the sampler's own CPU bookkeeping, which
    the sampler marks by `host_side` (it is built on the CPU, off the training device)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64 and not _in_host_side_sampler():
                raise AssertionError(f"{func} made a float64 tensor on the training device")
        return out


@pytest.fixture()
def no_float64_device(monkeypatch):
    """The training device (here the CPU) counts as one without float64."""
    monkeypatch.setattr(sampling, "has_float64", lambda device: False, raising=False)


def sessions():
    return [simulate_session(f"s{i}", shape=shape, seed=20 + i) for i, shape in enumerate(((300, 14), (260, 9)))]


def mixed_sessions():
    """Two sessions with a continuous (position) and a discrete label (the running direction)."""
    data = sessions()
    return [d.neural for d in data], [d.labels[:, :1].copy() for d in data], [d.labels[:, 1].astype(np.int64) for d in data]


@pytest.mark.parametrize("multi", [False, True])
def test_a_fit_makes_no_float64_tensor_on_a_device_without_float64(no_float64_device, monkeypatch, multi):
    data = sessions() if multi else sessions()[:1]
    X, y = [d.neural for d in data], [d.labels for d in data]
    mode = NoFloat64OnTrainingDevice()
    with mode:
        model = CEBRA(**FIT).fit(X, y) if multi else CEBRA(**FIT).fit(X[0], y[0])
    assert mode.ops > 1000  # the whole fit ran under the check: sampler, steps, Adam
    assert model.label_kinds_ == {"continuous": 3, "discrete": False}
    # the CPU did the sampler's float64 work: the fit is the one a device with float64 makes
    monkeypatch.setattr(sampling, "has_float64", lambda device: True)
    same = CEBRA(**FIT).fit(X, y) if multi else CEBRA(**FIT).fit(X[0], y[0])
    np.testing.assert_array_equal(model.loss_history_, same.loss_history_)


def test_the_check_catches_a_float64_tensor(no_float64_device):
    """The mode is not blind: a float64 tensor made in the training step fails it."""
    with pytest.raises(AssertionError, match="float64 tensor on the training device"):
        with NoFloat64OnTrainingDevice():
            torch.ones(3, dtype=torch.float32).double()


@pytest.mark.parametrize("init", ["regression", "random"])
def test_adapt_makes_no_float64_tensor_on_the_device(no_float64_device, init):
    """`adapt` samples on the host too, and its first-layer regression solves on the CPU."""
    data = sessions() + [simulate_session("new", shape=(280, 11), seed=30)]
    model = CEBRA(**FIT).fit([d.neural for d in data[:2]], [d.labels for d in data[:2]])
    with NoFloat64OnTrainingDevice():
        model.adapt(data[2].neural, data[2].labels, max_iterations=3, init=init)
    assert len(model.model_) == 3


@pytest.mark.parametrize("options", [
    dict(conditional="time_delta"), dict(conditional="delta", delta=0.05), dict(conditional="time"),
    dict(conditional="time_delta", discrete=True), dict(conditional="time_delta", discrete=True, continuous=False),
    dict(conditional="time_delta", model_architecture="offset5-model", temperature_mode="auto", distance="euclidean"),
], ids=["time_delta", "delta", "time", "mixed", "discrete", "auto-euclidean"])
def test_every_kind_of_fit_makes_no_float64_tensor(no_float64_device, monkeypatch, options):
    """Every label kind and conditional (and a learned temperature) keeps float64 off the device."""
    options = dict(options)
    X, continuous, discrete = mixed_sessions()
    labels = ([continuous] if options.pop("continuous", True) else []) + ([discrete] if options.pop("discrete", False) else [])
    params = FIT | options
    mode = NoFloat64OnTrainingDevice()
    with mode:
        model = CEBRA(**params).fit(X, *labels)
    assert mode.ops > 1000 and len(model.loss_history_) == FIT["max_iterations"]
    monkeypatch.setattr(sampling, "has_float64", lambda device: True)
    np.testing.assert_array_equal(model.loss_history_, CEBRA(**params).fit(X, *labels).loss_history_)


def test_adapt_of_a_discrete_label_makes_no_float64_tensor(no_float64_device):
    """adapt with a discrete label: the class means of `matched_hidden` and the class-balanced
    draws are host-side work too."""
    X, continuous, discrete = mixed_sessions()
    new = simulate_session("new", shape=(280, 11), seed=30)
    for labels, new_labels in (([discrete], [new.labels[:, 1].astype(np.int64)]),
                               ([continuous, discrete], [new.labels[:, :1].copy(), new.labels[:, 1].astype(np.int64)])):
        model = CEBRA(**FIT).fit(X, *labels)
        with NoFloat64OnTrainingDevice():
            assert model.adapt(new.neural, *new_labels, max_iterations=3) == 2


def test_matched_hidden_is_host_side():
    """What the float64 allowance above rests on: `matched_hidden` hands back a CPU tensor."""
    hidden = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    labels = sampling.Labels(continuous=torch.linspace(0, 1, 6)[:, None])
    matched = adaptation.matched_hidden(labels, hidden, labels, 5)
    assert matched.device == torch.device("cpu") and matched.dtype == torch.float64
    np.testing.assert_array_equal(matched.numpy(), hidden[:5].double().numpy())


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("kind", ["continuous", "mixed", "discrete"])
def test_host_side_sampling_gives_the_batches_of_device_sampling(monkeypatch, multi, kind):
    """A sampler that works on the CPU for a device without float64 draws exactly the batches that the
    same seed draws on a device with float64 (here both are the CPU), on the training device."""
    data = sessions() if multi else sessions()[:1]
    labels = [sampling.Labels(continuous=None if kind == "discrete" else torch.from_numpy(d.labels),
                              discrete=None if kind == "continuous" else torch.from_numpy(d.labels[:, 1]).long())
              for d in data]

    def batches(device_has_float64: bool):
        monkeypatch.setattr(sampling, "has_float64", lambda device: device_has_float64)
        sampler = sampling.make_sampler(labels, conditional="time_delta", time_offset=10, delta=None, seed=7,
                                        device="cpu", multi=multi)
        assert sampler.host_side is not device_has_float64 and sampler.kind == ("time_delta" if kind == "continuous" else kind)
        return [sampler.sample(64) for _ in range(3)]

    for on_device, on_host in zip(batches(True), batches(False)):
        for field in ("reference", "positive", "negative", "positive_order"):
            a, b = getattr(on_device, field), getattr(on_host, field)
            assert (a is None and b is None) or torch.equal(a, b)


def test_mps_samples_on_the_cpu_and_hands_batches_to_the_device(monkeypatch):
    """'mps' has no float64: its sampler, generator and label index live on the CPU."""
    assert not sampling.has_float64("mps") and sampling.has_float64("cpu") and sampling.has_float64("cuda:0")
    assert sampling.sampling_device("mps") == torch.device("cpu")
    assert sampling.sampling_device("cuda:1") == torch.device("cuda:1")
    labels = [sampling.Labels(continuous=torch.from_numpy(sessions()[0].labels))]
    moved = []
    monkeypatch.setattr(sampling.Batch, "to", lambda self, device: moved.append(torch.device(device)) or self)
    sampler = sampling.make_sampler(labels, conditional="time_delta", time_offset=10, delta=None, seed=0, device="mps",
                                    multi=False)
    assert sampler.host_side and sampler.generator.device == torch.device("cpu")
    assert sampler.continuous.device == sampler.table.device == sampler.index.device == torch.device("cpu")
    assert sampler.device == torch.device("mps")
    sampler.sample(16)
    assert moved == [torch.device("mps")]


# ----------------------------------------------------------------------------- devices torch does not see
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_cuda_device_is_refused_clearly(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError) as error:
        resolve_device(device)
    message = str(error.value)
    assert f"device={device!r}" in message
    assert f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)" in message
    assert "cuda_if_available" in message


def test_a_cuda_index_torch_does_not_see_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match=r"device='cuda:2'.* sees 2 CUDA devices \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


def test_mps_without_an_apple_gpu_is_refused_clearly(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError) as error:
        resolve_device("mps")
    message = str(error.value)
    assert "device='mps'" in message and "cuda_if_available" in message
    assert f"torch {torch.__version__} sees no Apple GPU (torch.backends.mps.is_available() is False)" in message


def test_unknown_device_names_are_refused():
    with pytest.raises(ValueError, match="device='gpu'.*cuda_if_available, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu")


def test_cuda_if_available_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cuda_if_available") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda_if_available") == "cuda"


def test_fit_refuses_a_missing_device_before_touching_the_data(monkeypatch):
    """The device is checked first: even unusable data gets the device error."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(estimator, "_check_neural", lambda *a: pytest.fail("data checked before the device"))
    with pytest.raises(ValueError, match="sees no CUDA device"):
        CEBRA(**{**FIT, "device": "cuda"}).fit(None, None)


def test_bench_training_refuses_a_gpu_torch_does_not_see(monkeypatch, capsys):
    """`benchmarks/bench_training.py --device cuda` on a machine without CUDA stops at once, saying why."""
    from helpers import REPO

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import bench_training

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--device", "cuda", "--cases", "buddy"])
    monkeypatch.setattr(bench_training, "spawn", lambda *a, **k: pytest.fail("a case ran"))
    with pytest.raises(SystemExit) as exit_:
        bench_training.main()
    assert exit_.value.code == 2 and "device='cuda': torch" in capsys.readouterr().err
