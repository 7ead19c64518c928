"""The offset10-model encoder, layer for layer as CEBRA 0.6.1 builds it, plus a fast training forward.

`Offset10Model` is the canonical module (Conv1d layers, PyTorch default init, the same
parameter names as CEBRA's so state dicts can be exchanged). It is what `transform` runs.

`encode_windows` computes exactly the same function for a batch of 10-sample windows, laid out
time-major (time, batch, channels) so that every convolution tap is a contiguous block and the
convolutions become plain GEMMs with no unfold copies; the layers after the first (same shape in
every session) are batched over sessions with `baddbmm`. References, positives and negatives go
through in one call. `tests/unit/test_model.py` proves it equals the Conv1d module, gradients too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cebra_core.engine.offsets import (  # noqa: F401  (re-exported: the model's window, torch-free)
    BLOCK_KERNEL,
    FIRST_KERNEL,
    NUM_BLOCKS,
    OFFSET_LEFT,
    OFFSET_RIGHT,
    RECEPTIVE_FIELD,
)

SUPPORTED_ARCHITECTURES = ("offset10-model",)


class _Skip(nn.Module):
    """Residual block: crop the input by one step at each end and add GELU(conv(x))."""

    def __init__(self, *modules: nn.Module):
        super().__init__()
        self.module = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., 1:-1] + self.module(x)


class _Norm(nn.Module):
    """Divide each output vector by its L2 norm over channels (no epsilon, as CEBRA)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=1, keepdim=True)


class Offset10Model(nn.Module):
    """CEBRA's `offset10-model`: input (batch, neurons, time) -> (batch, output_dimension[, time])."""

    def __init__(self, num_neurons: int, num_units: int = 32, num_output: int = 3):
        super().__init__()
        self.num_input = num_neurons
        self.num_output = num_output
        self.net = nn.Sequential(  # CEBRA's layer order, so the state dict keys match (net.0, net.2.module.0, ...)
            nn.Conv1d(num_neurons, num_units, FIRST_KERNEL),
            nn.GELU(),
            *(_Skip(nn.Conv1d(num_units, num_units, BLOCK_KERNEL), nn.GELU()) for _ in range(NUM_BLOCKS)),
            nn.Conv1d(num_units, num_output, BLOCK_KERNEL),
            _Norm(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(2) if out.dim() == 3 else out

    @property
    def first_layer(self) -> nn.Conv1d:
        return self.net[0]

    @property
    def residual_layers(self) -> list[nn.Conv1d]:
        return [block.module[0] for block in self.net if isinstance(block, _Skip)]

    @property
    def output_layer(self) -> nn.Conv1d:
        return [layer for layer in self.net if isinstance(layer, nn.Conv1d)][-1]


def build_models(num_neurons: list[int], num_units: int, num_output: int, seed: int) -> list[Offset10Model]:
    """Build one encoder per session in session order from a fixed seed (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [Offset10Model(n, num_units, num_output) for n in num_neurons]


class _TimeConv(torch.autograd.Function):
    """A kernel-k Conv1d over time-major activations (S, L, M, C) -> (S, L-k+1, M, C_out).

    Time-major, each tap j reads the contiguous block h[:, j : j+L-k+1], so the convolution is
    k batched GEMMs accumulated in place, with no unfold copy (weight: (S, C_out, C, k)). The
    backward accumulates the input gradient of all taps into one buffer in place; autograd
    would zero-fill a full-size buffer per tap and add them up.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        num_sessions, length, batch, channels = h.shape
        steps = length - weight.shape[-1] + 1
        out = bias[:, None, :]  # (S, 1, C_out), broadcast over rows by the first baddbmm
        for j in range(weight.shape[-1]):
            tap = h[:, j : j + steps].reshape(num_sessions, steps * batch, channels)
            out = torch.baddbmm(out, tap, weight[..., j].transpose(1, 2))
        ctx.save_for_backward(h, weight)
        return out.reshape(num_sessions, steps, batch, -1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        h, weight = ctx.saved_tensors
        num_sessions, steps, batch, _ = grad.shape
        channels, kernel = h.shape[-1], weight.shape[-1]
        g = grad.reshape(num_sessions, steps * batch, -1)
        taps = [h[:, j : j + steps].reshape(num_sessions, steps * batch, channels) for j in range(kernel)]
        grad_h = None
        if ctx.needs_input_grad[0]:  # not for the first layer: the windows are data
            grad_h = torch.zeros_like(h)
            for j in range(kernel):
                grad_h[:, j : j + steps].view(num_sessions, steps * batch, channels).baddbmm_(g, weight[..., j])
        grad_weight = torch.stack([torch.bmm(g.transpose(1, 2), tap) for tap in taps], dim=-1)
        return grad_h, grad_weight, g.sum(dim=1)


def _session_conv(h: torch.Tensor, convs: list[nn.Conv1d]) -> torch.Tensor:
    """Session s's Conv1d applied to h[s], for all sessions at once (same layer shapes in each)."""
    return _TimeConv.apply(h, torch.stack([c.weight for c in convs]), torch.stack([c.bias for c in convs]))


def encode_windows(models: list[Offset10Model], windows: list[torch.Tensor]) -> torch.Tensor:
    """Embed 10-sample windows: windows[s] is time-major (10, M, N_s) for session s -> (S, M, D), unit norm.

    Same function as `Offset10Model.forward` on the (M, N_s, 10) windows, computed as GEMMs.
    """
    # the first layer differs in width per session; the later ones are batched over sessions
    h = torch.stack([F.gelu(_session_conv(w[None], [m.first_layer])[0]) for m, w in zip(models, windows)])
    for layer in range(NUM_BLOCKS):  # h: (S, L, M, H), L = 9, 7, 5
        h = h[:, 1:-1] + F.gelu(_session_conv(h, [m.residual_layers[layer] for m in models]))
    z = _session_conv(h, [m.output_layer for m in models])[:, 0]
    return z / z.norm(dim=-1, keepdim=True)


def gather_windows(neural: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Windows [i-5, i+5) of a (T, N) session for each index, time-major -> (10, M, N).

    CEBRA clamps the window index to [5, T-5] but samples labels with the unclamped index.
    """
    centre = index.clamp(OFFSET_LEFT, neural.shape[0] - OFFSET_RIGHT)
    offsets = torch.arange(-OFFSET_LEFT, OFFSET_RIGHT, device=index.device)
    rows = (offsets[:, None] + centre[None, :]).reshape(-1)
    # index_select gathers whole rows; ~5x faster on CPU than advanced indexing with a 2-D index
    return neural.index_select(0, rows).reshape(RECEPTIVE_FIELD, index.shape[0], neural.shape[1])


@torch.no_grad()
def embed_sequence(model: Offset10Model, neural: torch.Tensor) -> torch.Tensor:
    """Embed a whole (T, N) sequence, one row per input row, with edge-replicate padding as CEBRA."""
    x = neural.T[None]  # (1, N, T)
    x = F.pad(x, (OFFSET_LEFT, OFFSET_RIGHT - 1), mode="replicate")
    was_training = model.training
    model.eval()
    try:
        out = model(x)  # (1, D, T)
    finally:
        model.train(was_training)
    return out[0].T
