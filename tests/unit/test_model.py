"""The offset10-model: architecture, init, the fast training forward, windows and transform padding."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cebra_core.engine.architectures import ARCHITECTURES, architecture
from cebra_core.engine.model import Encoder, build_models, embed_sequence, encode_windows, gather_windows

OFFSET10 = architecture("offset10-model").offset()

CEBRA_PYTHON = Path(__file__).resolve().parents[2] / ".venv-cebra" / "bin" / "python"


def reference_forward(model: Encoder, x: torch.Tensor, approximate: str = "none", residual_after: bool = True):
    """offset10-model written out layer by layer from the facts file (input (B, N, L))."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    h = F.gelu(F.conv1d(x, sd["net.0.weight"], sd["net.0.bias"]), approximate=approximate)
    for i in (2, 3, 4):
        r = F.conv1d(h, sd[f"net.{i}.module.0.weight"], sd[f"net.{i}.module.0.bias"])
        h = h[..., 1:-1] + F.gelu(r, approximate=approximate) if residual_after else F.gelu(h[..., 1:-1] + r)
    z = F.conv1d(h, sd["net.5.weight"], sd["net.5.bias"])
    return z / z.norm(dim=1, keepdim=True)


def _model(n: int, seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    return Encoder(n)


@pytest.mark.parametrize("n", [120, 48])
def test_parameter_count(n):
    model = Encoder(n, 32, 3)
    assert sum(p.numel() for p in model.parameters()) == 64 * n + 9635


def test_layers_in_order_with_cebra_names_and_shapes():
    model = Encoder(48)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == [
        "net.0.weight", "net.0.bias",
        "net.2.module.0.weight", "net.2.module.0.bias",
        "net.3.module.0.weight", "net.3.module.0.bias",
        "net.4.module.0.weight", "net.4.module.0.bias",
        "net.5.weight", "net.5.bias",
    ]  # fmt: skip
    assert shapes["net.0.weight"] == (32, 48, 2)
    for i in (2, 3, 4):
        assert shapes[f"net.{i}.module.0.weight"] == (32, 32, 3)
        assert shapes[f"net.{i}.module.0.bias"] == (32,)
    assert shapes["net.5.weight"] == (3, 32, 3) and shapes["net.5.bias"] == (3,)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert all(c.stride == (1,) and c.padding == (0,) and c.dilation == (1,) for c in convs)
    gelus = [m for m in model.modules() if isinstance(m, nn.GELU)]
    assert len(gelus) == 4 and all(g.approximate == "none" for g in gelus)


def test_forward_is_exact_gelu_residual_after_activation_and_unit_norm():
    model = _model(20, seed=1)
    with torch.no_grad():  # larger weights make the variants clearly distinguishable
        for p in model.parameters():
            p.mul_(3.0)
    torch.manual_seed(2)
    x = torch.randn(64, 20, 10)
    with torch.no_grad():
        out = model(x)
        want = reference_forward(model, x)[..., 0]
        tanh_gelu = reference_forward(model, x, approximate="tanh")[..., 0]
        act_after_sum = reference_forward(model, x, residual_after=False)[..., 0]
    assert out.shape == (64, 3)
    assert (out - want).abs().max() < 1e-6
    # the reference variants really differ, so the comparison above can tell them apart
    assert (out - tanh_gelu).abs().max() > 1e-4
    assert (out - act_after_sum).abs().max() > 1e-2
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_output_shapes_window_and_long_sequence():
    model = _model(7)
    assert model(torch.randn(5, 7, 10)).shape == (5, 3)
    long = torch.randn(4, 7, 37)
    out = model(long)
    assert out.shape == (4, 3, 28)
    np.testing.assert_allclose(out.norm(dim=1).detach().numpy(), 1.0, atol=1e-6)
    # time step t of the long output is the model on window [t, t+10)
    for t in (0, 13, 27):
        np.testing.assert_allclose(out[:, :, t].detach(), model(long[:, :, t : t + 10]).detach(), atol=1e-6)


def test_build_models_is_seeded_per_session_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = build_models([5, 9], 32, 3, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    b = build_models([5, 9], 32, 3, seed=7)
    c = build_models([5, 9], 32, 3, seed=8)
    assert [m.num_input for m in a] == [5, 9]
    for ma, mb in zip(a, b):
        for (ka, va), (kb, vb) in zip(ma.state_dict().items(), mb.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a[0].net[0].weight, c[0].net[0].weight)
    # models are built in session order from one seeded stream: the same as constructing them in a row
    torch.manual_seed(7)
    first, second = Encoder(5), Encoder(9)
    assert torch.equal(first.net[0].weight, a[0].net[0].weight)
    assert torch.equal(second.net[5].bias, a[1].net[5].bias)


def test_default_init_bounds():
    model = build_models([40], 32, 3, seed=0)[0]
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv1d)):
        bound = 1 / np.sqrt(conv.in_channels * conv.kernel_size[0])
        for p in (conv.weight, conv.bias):
            assert p.abs().max() <= bound
            if p.numel() >= 32:  # filled up to the bound, not e.g. a small custom init
                assert p.abs().max() > 0.9 * bound


REFERENCE_CASES = [(48, 0), (120, 31)]


@pytest.fixture(scope="module")
def cebra_reference(tmp_path_factory):
    """CEBRA 0.6.1's offset10-model after torch.manual_seed(seed), built in its own venv (one subprocess)."""
    # this interpreter when it has cebra (CI installs it with the test extras), else a side venv
    python = sys.executable if importlib.util.find_spec("cebra") else str(CEBRA_PYTHON)
    if python != sys.executable and not CEBRA_PYTHON.exists():
        pytest.skip(f"cebra 0.6.1 is not importable here and no reference venv is at {CEBRA_PYTHON}")
    out = tmp_path_factory.mktemp("cebra_ref") / "cebra.pt"
    script = textwrap.dedent(
        f"""
        import torch, cebra.models
        result = {{}}
        for n, seed in {REFERENCE_CASES!r}:
            torch.manual_seed(seed)
            model = cebra.models.init("offset10-model", n, 32, 3)
            g = torch.Generator().manual_seed(99)
            x = torch.randn(6, n, 25, generator=g)
            model.eval()
            with torch.no_grad():
                y_long = model(x)
                y_win = model(x[:, :, :10])
            result[f"{{n}}_{{seed}}"] = {{"state": model.state_dict(), "x": x, "y_long": y_long, "y_win": y_win}}
        torch.save(result, {str(out)!r})
        """
    )
    subprocess.run([python, "-c", script], check=True, timeout=180, capture_output=True)
    return torch.load(out, weights_only=True)


@pytest.mark.reference
@pytest.mark.parametrize("n,seed", REFERENCE_CASES)
def test_build_models_matches_cebra_init_and_outputs(cebra_reference, n, seed):
    ref = cebra_reference[f"{n}_{seed}"]
    ours = build_models([n], 32, 3, seed=seed)[0]
    mine = ours.state_dict()
    assert list(mine) == list(ref["state"])
    for k in mine:
        assert torch.equal(mine[k], ref["state"][k]), k
    loaded = Encoder(n)
    loaded.load_state_dict(ref["state"])
    with torch.no_grad():
        assert (loaded(ref["x"]) - ref["y_long"]).abs().max() < 1e-6
        assert (loaded(ref["x"][:, :, :10]) - ref["y_win"]).abs().max() < 1e-6
    assert ref["y_win"].shape == (6, 3) and ref["y_long"].shape == (6, 3, 16)


def _conv_path(models, windows):
    return torch.stack([m(w.permute(1, 2, 0)) for m, w in zip(models, windows)])  # (10, M, N) -> (M, N, 10)


@pytest.mark.parametrize("neurons", [[48], [120, 48, 7]])
def test_encode_windows_equals_conv1d_forward_and_gradients(neurons):
    models = build_models(neurons, 32, 3, seed=3)
    g = torch.Generator().manual_seed(4)
    windows = [torch.poisson(torch.rand(10, 96, n, generator=g) * 2, generator=g) for n in neurons]
    fast = encode_windows(models, windows)
    slow = _conv_path(models, windows)
    assert fast.shape == (len(neurons), 96, 3)
    assert (fast - slow).abs().max() < 1e-5
    # gradients of a generic scalar function of the embeddings
    weight = torch.randn(fast.shape, generator=g)
    params = [p for m in models for p in m.parameters()]
    grad_fast = torch.autograd.grad((fast * weight).sum(), params)
    grad_slow = torch.autograd.grad((slow * weight).sum(), params)
    for gf, gs in zip(grad_fast, grad_slow):
        assert gs.abs().max() > 0
        assert (gf - gs).abs().max() / gs.abs().max() < 1e-5


def test_gather_windows_clamps_the_window_not_the_rows():
    T, N = 30, 4
    neural = torch.arange(T * N, dtype=torch.float32).reshape(T, N)
    out = gather_windows(neural, torch.tensor([0, T - 1, 7, 4, 5, T - 5, T - 4]), OFFSET10)
    assert out.shape == (10, 7, N)  # time-major
    expected_rows = [
        range(0, 10), range(T - 10, T), range(2, 12), range(0, 10), range(0, 10), range(T - 10, T), range(T - 10, T)
    ]
    for w, rows in zip(out.transpose(0, 1), expected_rows):
        assert torch.equal(w, neural[list(rows)])


def test_embed_sequence_uses_edge_replicate_padding():
    T, N = 23, 6
    model = _model(N, seed=5)
    g = torch.Generator().manual_seed(6)
    neural = torch.rand(T, N, generator=g) * 3 + torch.arange(T)[:, None] * 0.2  # rows all distinct
    model.train()
    out = embed_sequence(model, neural, OFFSET10)
    assert model.training  # mode restored
    assert out.shape == (T, 3)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-6)
    for t in range(T):
        rows = np.clip(np.arange(t - 5, t + 5), 0, T - 1)
        with torch.no_grad():
            want = model(neural[rows].T[None])[0]
        assert (out[t] - want).abs().max() < 1e-6, t
    # zero padding would give something else at the edges
    with torch.no_grad():
        zero_pad = model(F.pad(neural.T[None], (5, 4)))[0].T
    assert (zero_pad[0] - out[0]).abs().max() > 1e-3 and (zero_pad[-1] - out[-1]).abs().max() > 1e-3


@pytest.mark.reference
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_is_cebras_layer_for_layer(name):
    """Each architecture: CEBRA 0.6.1's module order and state-dict keys, the same weights from the
    same seed (so the same init), the same window (offset) and the same output for the same input."""
    cebra_models = pytest.importorskip("cebra.models", reason="CEBRA 0.6.1 is installed with the test extras")
    for neurons, units, output in ((7, 16, 4), (13, 32, 3)):
        torch.manual_seed(11)
        reference = cebra_models.init(name, num_neurons=neurons, num_units=units, num_output=output)
        ours = build_models([neurons], units, output, seed=11, architecture_name=name)[0]
        theirs, mine = reference.state_dict(), ours.state_dict()
        assert list(mine) == list(theirs)
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
        offset = reference.get_offset()
        assert (offset.left, offset.right) == (architecture(name).offset().left, architecture(name).offset().right)
        x = torch.randn(5, neurons, len(offset) + 6, generator=torch.Generator().manual_seed(2))
        if architecture(name).kind == "mlp":
            x = x[:, :, :1]
        reference.eval(), ours.eval()
        with torch.no_grad():
            assert (reference(x) - ours(x)).abs().max() < 1e-6


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_encode_windows_equals_the_module_for_every_architecture(name):
    models = build_models([9, 4], 8, 3, seed=1, architecture_name=name)
    field = architecture(name).receptive_field
    g = torch.Generator().manual_seed(5)
    windows = [torch.rand(field, 20, n, generator=g) for n in (9, 4)]
    fast = encode_windows(models, windows)
    slow = torch.stack([m(w.permute(1, 2, 0)) for m, w in zip(models, windows)])
    assert fast.shape == (2, 20, 3) and (fast - slow).abs().max() < 1e-5
    params = [p for m in models for p in m.parameters()]
    weight = torch.randn(fast.shape, generator=g)
    for gf, gs in zip(torch.autograd.grad((fast * weight).sum(), params), torch.autograd.grad((slow * weight).sum(), params)):
        assert (gf - gs).abs().max() <= 1e-5 * max(gs.abs().max(), 1e-6)


def test_a_causal_window_ends_at_its_row():
    """causal: row t is embedded from rows t-9 … t (the offset10 window), training and transform alike."""
    causal = architecture("offset10-model").offset(causal=True)
    assert (causal.left, causal.right, len(causal)) == (9, 1, 10)
    T, N = 30, 4
    neural = torch.arange(T * N, dtype=torch.float32).reshape(T, N)
    out = gather_windows(neural, torch.tensor([0, 3, 9, 20, T - 1]), causal)
    for w, last in zip(out.transpose(0, 1), (9, 9, 9, 20, T - 1)):  # clamped so the window stays inside
        assert torch.equal(w, neural[last - 9: last + 1])
    model = _model(N, seed=2)
    z = embed_sequence(model, neural, causal)
    for t in (0, 5, 9, 17, T - 1):  # rows before t-9 are the first row repeated; nothing after t is read
        rows = np.clip(np.arange(t - 9, t + 1), 0, T - 1)
        with torch.no_grad():
            assert (z[t] - model(neural[rows].T[None])[0]).abs().max() < 1e-6
    changed = neural.clone()
    changed[15:] += 100.0  # the future changes: the past's embedding does not
    assert torch.equal(embed_sequence(model, changed, causal)[:15], z[:15])
