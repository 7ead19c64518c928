"""InfoNCE as CEBRA 0.6.1 computes it: cosine or euclidean similarity, a fixed or learnable temperature.

The positive is NOT in the denominator: L = mean_i[-s+_i + log sum_j exp(S_ij)], with s+_i the
similarity of reference i to its positive and S_ij its similarity to every negative j of the
batch, both divided by the temperature tau.

- cosine: the dot product (the model's outputs are unit-norm; the loss does not normalise again);
- euclidean: minus the *squared* distance, -(|a|^2 + |b|^2 - 2 a.b) (CEBRA's docstring says the
  distance, its code the square), meant for the unnormalised ``-mse`` models.

``temperature_mode="auto"`` learns tau: the parameter ``log_inverse_temperature`` starts at
log(1/temperature), and the inverse temperature exp(.) is clamped at 1/min_temperature (CEBRA's
LearnableCosineInfoNCE / LearnableEuclideanInfoNCE); "constant" keeps tau fixed and has no parameter.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

DISTANCES = ("cosine", "euclidean")
TEMPERATURE_MODES = ("constant", "auto")
MIN_TEMPERATURE = 0.1  # CEBRA's default floor of a learnable temperature


class InfoNCE(NamedTuple):
    """The optimised loss and the two terms CEBRA logs: pos = mean(-s+), neg = mean(logsumexp S)."""

    total: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor


BLOCK_ROWS_CPU = 256  # a 256 x n block of similarities stays in cache; on a GPU one block is fastest


class _MeanLogSumExp(torch.autograd.Function):
    """mean_i log sum_j exp(a_i . b_j), in row blocks; the n x n similarity matrix is never stored.

    Backward recomputes each block's softmax from the saved row log-sum-exps. On this CPU it is
    ~2.7x faster than autograd through `torch.logsumexp(a @ b.T)` for n = 2048 (multi-session),
    because every pass over a block hits the cache; the result is the same to float rounding.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        block = a.shape[0] if a.is_cuda else BLOCK_ROWS_CPU
        lse = torch.empty(a.shape[0], dtype=a.dtype, device=a.device)
        for start in range(0, a.shape[0], block):
            lse[start : start + block] = torch.logsumexp(a[start : start + block] @ b.T, dim=1)
        ctx.save_for_backward(a, b, lse)
        ctx.block = block
        return lse.mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b, lse = ctx.saved_tensors
        grad_a, grad_b = torch.empty_like(a), torch.zeros_like(b)
        scale = grad / a.shape[0]
        for start in range(0, a.shape[0], ctx.block):
            rows = slice(start, start + ctx.block)
            softmax = torch.exp((a[rows] @ b.T).sub_(lse[rows, None])).mul_(scale)
            grad_a[rows] = softmax @ b
            grad_b.addmm_(softmax.T, a[rows])
        return grad_a, grad_b


def infonce(reference: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
            inverse_temperature: float | torch.Tensor, distance: str = "cosine") -> InfoNCE:  # fmt: skip
    """InfoNCE of (n, D) reference/positive/negative embeddings, as CEBRA 0.6.1 computes it.

    CEBRA subtracts the detached row maximum c inside both terms and adds its mean back for the
    logged values; c cancels in the total and in the gradient, so a stabilised log-sum-exp is used
    directly. The references are scaled by 1/tau before the n x n product, not the product itself.
    """
    if distance == "cosine":
        scaled = reference * inverse_temperature
        pos = -(scaled * positive).sum(dim=1).mean()
        neg = _MeanLogSumExp.apply(scaled, negative)
    elif distance == "euclidean":
        # S_ij = -(|r_i|^2 + |n_j|^2 - 2 r_i.n_j) / tau: the |r_i|^2 term leaves the log-sum-exp, the
        # rest is one product of [2 r_i / tau, -1 / tau] with [n_j, |n_j|^2]
        pos = ((reference - positive).square().sum(dim=1) * inverse_temperature).mean()
        ones = torch.ones_like(reference[:, :1])
        a = torch.cat([2 * reference, -ones], dim=1) * inverse_temperature
        b = torch.cat([negative, negative.square().sum(dim=1, keepdim=True)], dim=1)
        neg = _MeanLogSumExp.apply(a, b) - (reference.square().sum(dim=1) * inverse_temperature).mean()
    else:
        raise ValueError(f"distance={distance!r} is not supported; supported: {', '.join(DISTANCES)}")
    return InfoNCE(total=pos + neg, pos=pos, neg=neg)


class Criterion(nn.Module):
    """CEBRA's InfoNCE criterion for a distance and temperature mode; its parameters (none, or the
    learnable ``log_inverse_temperature``) train with the encoders, after them in the optimiser."""

    def __init__(self, distance: str = "cosine", temperature: float = 1.0, temperature_mode: str = "constant",
                 min_temperature: float | None = MIN_TEMPERATURE):  # fmt: skip
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance={distance!r} is not supported; supported: {', '.join(DISTANCES)}")
        if temperature_mode not in TEMPERATURE_MODES:
            raise ValueError(f"temperature_mode={temperature_mode!r} is not supported; supported: "
                             f"{', '.join(TEMPERATURE_MODES)}")
        self.distance = distance
        self.fixed = float(temperature) if temperature_mode == "constant" else None
        if temperature_mode == "auto":
            self.log_inverse_temperature = nn.Parameter(torch.tensor(math.log(1.0 / float(temperature))))
            self.max_inverse_temperature = math.inf if min_temperature is None else 1.0 / float(min_temperature)

    def inverse_temperature(self) -> float | torch.Tensor:
        """1/tau: a number (constant), or exp(log_inverse_temperature) clamped at 1/min_temperature (auto)."""
        if self.fixed is not None:
            return 1.0 / self.fixed
        return torch.clamp(self.log_inverse_temperature.exp(), max=self.max_inverse_temperature)

    @property
    def temperature(self) -> float:
        """tau as a number (what CEBRA logs)."""
        return self.fixed if self.fixed is not None else float(1.0 / self.inverse_temperature().detach())

    def forward(self, reference: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> InfoNCE:
        return infonce(reference, positive, negative, self.inverse_temperature(), self.distance)
