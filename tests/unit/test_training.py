"""The training loop: the loss of a step, Adam, determinism, resuming after a crash, and that it learns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cebra_core import CEBRA
from cebra_core.engine import sampling
from cebra_core.engine.model import build_models
from cebra_core.engine.architectures import architecture
from cebra_core.engine.loss import Criterion
from cebra_core.engine.sampling import Labels, MultiSessionSampler, SingleSessionSampler
from cebra_core.sessions.simulate import simulate_session
from helpers import count_steps
from cebra_core.engine.training import contrastive_step, train


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py
OFFSET = architecture("offset10-model").offset()


def time_delta_sampler(labels: list[torch.Tensor], generator: torch.Generator, multi: bool):
    """The demo's sampler: continuous labels, time_delta, time_offsets 10."""
    options = dict(conditional="time_delta", time_offset=10, delta=None, generator=generator)
    if multi:
        return MultiSessionSampler([Labels(continuous=l) for l in labels], **options)
    return SingleSessionSampler(Labels(continuous=labels[0]), **options)


def sessions(specs=((420, 20), (650, 31), (300, 12)), seed=0):
    return [simulate_session(f"s{i}", shape=shape, seed=seed + i) for i, shape in enumerate(specs)]


def conv_windows(neural: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(M, N, 10) Conv1d input: window [i-5, i+5) around the index clamped to [5, T-5]."""
    centre = index.clamp(5, neural.shape[0] - 5)
    return neural[centre[:, None] + torch.arange(-5, 5)].transpose(1, 2)


def reference_loss(models, neural, batch, temperature):
    """The step's loss from the Conv1d models and a plain float64 InfoNCE (positives re-paired by hand)."""
    emb = {
        name: [m(conv_windows(x, getattr(batch, name)[s])) for s, (m, x) in enumerate(zip(models, neural))]
        for name in ("reference", "positive", "negative")
    }
    ref, pos, neg = (torch.cat(emb[name]).double() for name in ("reference", "positive", "negative"))
    if batch.positive_order is not None:
        pos = pos[batch.positive_order]
    s_pos = (ref * pos).sum(1) / temperature
    s_neg = ref @ neg.T / temperature
    return (-s_pos).mean() + torch.logsumexp(s_neg, dim=1).mean()


@pytest.mark.parametrize("multi", [False, True])
def test_contrastive_step_equals_conv_reference_with_repairing(multi):
    data = sessions() if multi else sessions()[:1]
    neural = [torch.from_numpy(d.neural) for d in data]
    labels = [torch.from_numpy(d.labels) for d in data]
    models = build_models([x.shape[1] for x in neural], 32, 3, seed=4)
    generator = torch.Generator().manual_seed(5)
    sampler = time_delta_sampler(labels, generator, multi)
    batch = sampler.sample(96)
    params = [p for m in models for p in m.parameters()]
    out = contrastive_step(models, neural, batch, Criterion(temperature=0.7), OFFSET)
    want = reference_loss(models, neural, batch, 0.7)
    assert abs(out.total.item() - want.item()) < 1e-5
    assert abs(out.pos.item() + out.neg.item() - out.total.item()) < 1e-5
    grad = torch.autograd.grad(out.total, params)
    grad_ref = torch.autograd.grad(want, params)
    for g, w in zip(grad, grad_ref):
        assert (g.double() - w).abs().max() < 1e-4 * max(w.abs().max().item(), 1e-3)
    if multi:  # without the re-pairing the loss is a different number
        shuffled = type(batch)(batch.reference, batch.positive, batch.negative, positive_order=None)
        assert abs(contrastive_step(models, neural, shuffled, Criterion(temperature=0.7), OFFSET).total.item() - out.total.item()) > 1e-3


def test_train_is_one_adam_step_per_batch():
    data = sessions()[:2]
    neural = [torch.from_numpy(d.neural) for d in data]
    labels = [torch.from_numpy(d.labels) for d in data]
    dims = [x.shape[1] for x in neural]
    models = build_models(dims, 32, 3, seed=1)
    generator = torch.Generator().manual_seed(2)
    log = train(
        models, neural, time_delta_sampler(labels, generator, True), criterion=Criterion(temperature=0.5),
        offset=OFFSET, batch_size=64, learning_rate=2e-3, max_iterations=4, generator=generator,
    )  # fmt: skip
    assert log.shape == (4, 4)
    # by hand: Adam(lr, betas=(0.9, 0.999), eps=1e-8) over every encoder, one batch per step
    manual = build_models(dims, 32, 3, seed=1)
    generator = torch.Generator().manual_seed(2)
    sampler = time_delta_sampler(labels, generator, True)
    optimizer = torch.optim.Adam([p for m in manual for p in m.parameters()], lr=2e-3)
    for i in range(4):
        loss = contrastive_step(manual, neural, sampler.sample(64), Criterion(temperature=0.5), OFFSET)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        assert torch.equal(log[i], torch.stack([loss.pos, loss.neg, loss.total, torch.tensor(0.5)]).detach())
    for trained, by_hand in zip(models, manual):
        for (k, a), (_, b) in zip(trained.state_dict().items(), by_hand.state_dict().items()):
            assert torch.equal(a, b), k
    assert not torch.equal(models[0].net[0].weight, build_models(dims, 32, 3, seed=1)[0].net[0].weight)


def _fit(data, seed, multi, **kw):
    params = dict(batch_size=64, max_iterations=15, learning_rate=1e-3, seed=seed, device="cpu") | kw
    model = CEBRA(**params)
    if multi:
        model.fit([d.neural for d in data], [d.labels for d in data])
        return model, [model.transform(d.neural, session_id=i) for i, d in enumerate(data)]
    model.fit(data[0].neural, data[0].labels)
    return model, [model.transform(data[0].neural)]


@pytest.mark.parametrize("multi", [False, True])
def test_same_seed_bit_identical_other_seed_different(multi):
    data = sessions() if multi else sessions()[:1]
    a, emb_a = _fit(data, 0, multi)
    b, emb_b = _fit(data, 0, multi)
    c, emb_c = _fit(data, 1, multi)
    assert all(np.array_equal(x, y) for x, y in zip(emb_a, emb_b))
    assert np.array_equal(a.loss_history_, b.loss_history_)
    assert all(not np.allclose(x, y, atol=1e-3) for x, y in zip(emb_a, emb_c))
    assert not np.array_equal(a.loss_history_, c.loss_history_)


def test_fit_leaves_global_rngs_alone():
    data = sessions()[:1]
    torch.manual_seed(11)
    np.random.seed(11)
    expected = (torch.rand(2), np.random.rand(2))
    torch.manual_seed(11)
    np.random.seed(11)
    _fit(data, 0, False, max_iterations=2)
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])


# ----------------------------------------------------------------------------- checkpoints
RESUME_PARAMS = dict(batch_size=128, max_iterations=60, learning_rate=1e-3, seed=0, checkpoint_every=5, device="cpu")
RESUME_DATA = dict(name="buddy", scale=0.1, seed=3)
CHILD = """
import sys
import torch
torch.set_num_threads(1)
from cebra_core import CEBRA
from cebra_core.sessions.simulate import simulate_session
s = simulate_session(**{data!r})
CEBRA(**{params!r}, checkpoint_path=sys.argv[1]).fit(s.neural, s.labels)
"""


def _assert_same_fit(a: CEBRA, b: CEBRA, data) -> None:
    for (k, x), (_, y) in zip(a.model_.state_dict().items(), b.model_.state_dict().items()):
        assert torch.equal(x, y), k
    assert np.array_equal(a.loss_history_, b.loss_history_)
    assert a.log_ == b.log_
    assert np.array_equal(a.transform(data.neural), b.transform(data.neural))


def test_resume_after_sigkill_is_bit_identical(tmp_path, monkeypatch):
    path = tmp_path / "fit.ckpt"
    script = CHILD.format(data=RESUME_DATA, params=RESUME_PARAMS)
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while not path.exists():
            if child.poll() is not None:
                pytest.fail(f"the fit ended before its first checkpoint: {child.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 120 s")
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)  # as hard as a crash or a cancelled job gets
    finally:
        if child.poll() is None:  # also when the test failed before the kill
            child.kill()
        child.wait(timeout=60)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    done = torch.load(path, weights_only=True)["iteration"]
    assert 0 < done < RESUME_PARAMS["max_iterations"] and done % 5 == 0

    data = simulate_session(**RESUME_DATA)
    steps = count_steps(monkeypatch)
    resumed = CEBRA(**RESUME_PARAMS, checkpoint_path=path).fit(data.neural, data.labels)
    assert len(steps) == RESUME_PARAMS["max_iterations"] - done  # it resumed, not restarted
    monkeypatch.undo()
    uninterrupted = CEBRA(**RESUME_PARAMS).fit(data.neural, data.labels)
    _assert_same_fit(resumed, uninterrupted, data)
    assert len(resumed.loss_history_) == 60

    # a finished checkpoint: fitting again does no work and gives the same model
    steps = count_steps(monkeypatch)
    again = CEBRA(**RESUME_PARAMS, checkpoint_path=path).fit(data.neural, data.labels)
    assert len(steps) == 0
    _assert_same_fit(again, uninterrupted, data)
    monkeypatch.undo()

    # a checkpoint of another fit is never resumed: it is set aside (.stale) and the fit starts afresh
    labels = data.labels.copy()
    labels[7, 0] += 0.01
    for params, neural, y in ((dict(RESUME_PARAMS, learning_rate=2e-3), data.neural, data.labels),
                              (RESUME_PARAMS, data.neural + 1, data.labels), (RESUME_PARAMS, data.neural, labels)):
        CEBRA(**RESUME_PARAMS, checkpoint_path=path).fit(data.neural, data.labels)  # the finished checkpoint
        steps = count_steps(monkeypatch)
        other = CEBRA(**params, checkpoint_path=path).fit(neural, y)
        assert len(steps) == params["max_iterations"]  # a full fit, not a resume
        monkeypatch.undo()
        _assert_same_fit(other, CEBRA(**params).fit(neural, y), data)
        assert path.with_name(path.name + ".stale").is_file()


def test_multi_session_resume_after_interruption(tmp_path, monkeypatch):
    data = sessions()
    X, y = [d.neural for d in data], [d.labels for d in data]
    params = dict(batch_size=48, max_iterations=12, seed=3, checkpoint_every=4, device="cpu")
    count_steps(monkeypatch, sampling.MultiSessionSampler, fail_at=7)
    with pytest.raises(KeyboardInterrupt):
        CEBRA(**params, checkpoint_path=tmp_path / "m.ckpt").fit(X, y)
    monkeypatch.undo()
    assert torch.load(tmp_path / "m.ckpt", weights_only=True)["iteration"] == 4
    resumed = CEBRA(**params, checkpoint_path=tmp_path / "m.ckpt").fit(X, y)
    full = CEBRA(**params).fit(X, y)
    assert np.array_equal(resumed.loss_history_, full.loss_history_)
    for i, d in enumerate(data):
        assert np.array_equal(resumed.transform(d.neural, session_id=i), full.transform(d.neural, session_id=i))


class NotPlainData:
    """An object torch.load(weights_only=True) refuses to unpickle."""


@pytest.mark.parametrize("damage", ["truncated", "not plain data", "not a checkpoint"])
def test_corrupt_checkpoint_is_set_aside_and_the_fit_restarts(tmp_path, caplog, damage):
    data = sessions()[0]
    params = dict(batch_size=32, max_iterations=6, seed=5, checkpoint_every=3, device="cpu")
    path = tmp_path / "fit.ckpt"
    CEBRA(**dict(params, max_iterations=3), checkpoint_path=tmp_path / "real.ckpt").fit(data.neural, data.labels)
    real = (tmp_path / "real.ckpt").read_bytes()
    if damage == "truncated":
        path.write_bytes(real[: len(real) // 2])
    elif damage == "not plain data":
        torch.save({"fingerprint": NotPlainData()}, path)
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    damaged = path.read_bytes()

    with caplog.at_level("WARNING", logger="cebra_core.engine.training"):
        model = CEBRA(**params, checkpoint_path=path).fit(data.neural, data.labels)
    assert (tmp_path / "fit.ckpt.corrupt").read_bytes() == damaged  # kept for a look, never unpickled
    assert f"checkpoint {path} cannot be read" in caplog.text and "fit starts afresh" in caplog.text
    assert np.array_equal(model.loss_history_, CEBRA(**params).fit(data.neural, data.labels).loss_history_)
    assert torch.load(path, weights_only=True)["iteration"] == 6  # the new checkpoint


def test_checkpoint_needs_a_seed(tmp_path):
    data = sessions()[0]
    with pytest.raises(ValueError, match="seed"):
        CEBRA(max_iterations=2, batch_size=16, checkpoint_path=tmp_path / "c.ckpt").fit(data.neural, data.labels)
    assert not (tmp_path / "c.ckpt").exists()


# ----------------------------------------------------------------------------- it learns
def _knn_error(z_train, y_train, z_test, y_test, k=10):
    sim = z_test @ z_train.T  # unit vectors: cosine similarity
    nearest = np.argpartition(-sim, k, axis=1)[:, :k]
    return np.abs(y_train[nearest].mean(axis=1) - y_test).mean()


def test_learning_reduces_loss_and_embeds_position():
    data = simulate_session("buddy", scale=0.3)
    model = CEBRA(batch_size=128, learning_rate=3e-3, max_iterations=300, seed=0, device="cpu")
    model.fit(data.neural, data.labels)
    history = model.loss_history_
    assert history[-20:].mean() < history[:20].mean() - 0.2
    z = model.transform(data.neural)
    position = data.labels[:, 0]
    cut = int(0.7 * len(z))  # decode the last 30 % of the session from the first 70 %
    error = _knn_error(z[:cut], position[:cut], z[cut:], position[cut:])
    shuffled = np.random.default_rng(0).permutation(position[:cut])
    baseline = _knn_error(z[:cut], shuffled, z[cut:], position[cut:])
    assert error < 0.15  # m, on a 1.6 m track
    assert error < 0.35 * baseline
