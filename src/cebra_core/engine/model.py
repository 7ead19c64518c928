"""CEBRA's encoders, layer for layer as CEBRA 0.6.1 builds them, plus a fast training forward.

`Encoder` is the canonical module for every architecture of `cebra_core.engine.architectures`
(Conv1d or Linear layers, PyTorch default init, the same module order and parameter names as
CEBRA's, so state dicts can be exchanged and the same seed gives the same weights). It is what
`transform` runs.

`encode_windows` computes exactly the same function for a batch of windows, laid out time-major
(time, batch, channels) so that every convolution tap is a contiguous block and the convolutions
become plain GEMMs with no unfold copies (a Linear layer is a kernel-1 convolution); the layers
after the first (same shape in every session) are batched over sessions with `baddbmm`.
References, positives and negatives go through in one call. `tests/unit/test_model.py` proves it
equals the module, gradients too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cebra_core.engine.architectures import DEFAULT_ARCHITECTURE, Offset, architecture


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


class Encoder(nn.Module):
    """CEBRA's encoder ``architecture``: input (batch, neurons, time) -> (batch, output_dimension[, time]);
    an MLP (``offset1-model``) also takes (batch, neurons)."""

    def __init__(self, num_neurons: int, num_units: int = 32, num_output: int = 3,
                 architecture_name: str = DEFAULT_ARCHITECTURE):  # fmt: skip
        super().__init__()
        arch = architecture(architecture_name)
        if num_units < arch.min_units:
            raise ValueError(f"{arch.name} needs num_hidden_units >= {arch.min_units}, got {num_units}")
        self.architecture = arch.name
        self.num_input = num_neurons
        self.num_output = num_output
        self.normalize = arch.normalize
        layers = arch.layers(num_units, num_output)
        self.residual = tuple(layer.residual for layer in layers)  # per weight layer, for encode_windows
        widths = [num_neurons] + [layer.width for layer in layers]
        modules: list[nn.Module] = []
        if arch.kind == "mlp":  # CEBRA's order: Flatten, then Linear / GELU pairs (keys net.1, net.3, ...)
            modules.append(nn.Flatten(start_dim=1))
            for i, layer in enumerate(layers):
                modules.append(nn.Linear(widths[i], layer.width))
                if i < len(layers) - 1:
                    modules.append(nn.GELU())
        else:  # net.0 conv, net.1 GELU, net.2 … the residual blocks, then the output conv
            for i, layer in enumerate(layers):
                conv = nn.Conv1d(widths[i], layer.width, layer.kernel)
                if layer.residual:
                    modules.append(_Skip(conv, nn.GELU()))
                else:
                    modules.append(conv)
                    if i == 0:
                        modules.append(nn.GELU())
        if arch.normalize:
            modules.append(_Norm())
        self.net = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(2) if out.dim() == 3 else out

    def weight_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight as a convolution's (out, in, kernel), bias) of every weight layer, first to last."""
        found = []
        for module in self.net.modules():
            if isinstance(module, nn.Conv1d):
                found.append((module.weight, module.bias))
            elif isinstance(module, nn.Linear):
                found.append((module.weight.unsqueeze(-1), module.bias))
        return found

    @property
    def first_layer(self) -> nn.Module:
        """The layer that reads the neurons (a session's own)."""
        return next(m for m in self.net.modules() if isinstance(m, (nn.Conv1d, nn.Linear)))

    @property
    def first_layer_prefix(self) -> str:
        """The state-dict prefix of the first layer (net.0. for a conv model, net.1. for an MLP)."""
        return "net.1." if isinstance(self.first_layer, nn.Linear) else "net.0."


def build_models(num_neurons: list[int], num_units: int, num_output: int, seed: int,
                 architecture_name: str = DEFAULT_ARCHITECTURE) -> list[Encoder]:  # fmt: skip
    """Build one encoder per session in session order from a fixed seed (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [Encoder(n, num_units, num_output, architecture_name) for n in num_neurons]


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


def _session_conv(h: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Session s's layer (weight (out, in, kernel), bias) applied to h[s], for all sessions at once."""
    return _TimeConv.apply(h, torch.stack([w for w, _ in layers]), torch.stack([b for _, b in layers]))


def encode_windows(models: list[Encoder], windows: list[torch.Tensor]) -> torch.Tensor:
    """Embed windows: windows[s] is time-major (L, M, N_s) for session s, L the receptive field -> (S, M, D).

    Same function as `Encoder.forward` on the (M, N_s, L) windows, computed as GEMMs; every
    session's encoder has the same architecture (the first layer's width may differ).
    """
    layers = [m.weight_layers() for m in models]
    # the first layer differs in width per session; the later ones are batched over sessions
    h = torch.stack([F.gelu(_session_conv(w[None], [layer[0]])[0]) for layer, w in zip(layers, windows)])
    for i in range(1, len(layers[0]) - 1):  # h: (S, L, M, H)
        out = F.gelu(_session_conv(h, [layer[i] for layer in layers]))
        h = h[:, 1:-1] + out if models[0].residual[i] else out
    z = _session_conv(h, [layer[-1] for layer in layers])[:, 0]
    return z / z.norm(dim=-1, keepdim=True) if models[0].normalize else z


def gather_windows(neural: torch.Tensor, index: torch.Tensor, offset: Offset) -> torch.Tensor:
    """Windows [i - left, i + right) of a (T, N) session for each index, time-major -> (L, M, N).

    CEBRA clamps the window index to [left, T - right] but samples labels with the unclamped index.
    """
    centre = index.clamp(offset.left, neural.shape[0] - offset.right)
    steps = torch.arange(-offset.left, offset.right, device=index.device)
    rows = (steps[:, None] + centre[None, :]).reshape(-1)
    # index_select gathers whole rows; ~5x faster on CPU than advanced indexing with a 2-D index
    return neural.index_select(0, rows).reshape(len(offset), index.shape[0], neural.shape[1])


@torch.no_grad()
def embed_sequence(model: Encoder, neural: torch.Tensor, offset: Offset) -> torch.Tensor:
    """Embed a whole (T, N) sequence, one row per input row: row t from the window of ``offset``
    around it, edge-replicate padded at both ends as CEBRA (an MLP embeds each row on its own)."""
    was_training = model.training
    model.eval()
    try:
        if isinstance(model.first_layer, nn.Linear):
            return model(neural)  # (T, D)
        x = F.pad(neural.T[None], (offset.left, offset.right - 1), mode="replicate")  # (1, N, T + len - 1)
        return model(x)[0].T  # (T, D)
    finally:
        model.train(was_training)
