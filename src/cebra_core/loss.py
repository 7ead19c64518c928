"""InfoNCE with cosine similarity and a fixed temperature (CEBRA's FixedCosineInfoNCE).

The positive is NOT in the denominator: L = mean_i[-s+_i + log sum_j exp(S_ij)], with
s+_i = f_i.f+_i / tau and S_ij = f_i.f-_j / tau over every negative in the batch. The inputs
are already unit-norm (the model normalises), so the loss does not normalise again.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

SUPPORTED_DISTANCES = ("cosine",)


class InfoNCE(NamedTuple):
    """The optimised loss and the two terms CEBRA logs: pos = mean(-s+), neg = mean(logsumexp S)."""

    total: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor


def infonce(reference: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, temperature: float) -> InfoNCE:
    """Cosine InfoNCE of (n, D) reference/positive/negative embeddings, as CEBRA 0.6.1 computes it."""
    pos_sim = (reference * positive).sum(dim=1) / temperature
    neg_sim = reference @ negative.T / temperature
    # subtract the row max for stability; it cancels in the total and in the gradient
    c = neg_sim.max(dim=1, keepdim=True).values.detach()
    align = (c.squeeze(1) - pos_sim).mean()
    uniform = torch.logsumexp(neg_sim - c, dim=1).mean()
    c_mean = c.mean()
    return InfoNCE(total=align + uniform, pos=align - c_mean, neg=uniform + c_mean)
