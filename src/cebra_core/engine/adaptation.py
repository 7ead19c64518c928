"""Embedding a new, unseen session into a trained multi-session space (`CEBRA.adapt`).

Method: the new session gets its own encoder, a copy of a trained one (session 0's, the
template) with its own first layer (it has its own neurons). That first layer starts as a
ridge regression of the template's first-layer pre-activations on the new neurons, at
label-matched samples (`regression_init`): before any training, the new rat already drives the
template's hidden units as session 0 does at the same position. Then the whole copy is trained
(`layers="all"`; `"first"` keeps the later layers frozen) with InfoNCE against the trained
sessions' embeddings, which are fixed and so computed once: the positive of a new-session
sample is the trained sample whose label is nearest to its label plus an empirical
time_offsets-step delta (`sampling.AdaptationSampler`), and negatives are drawn from every
trained session. The new session therefore lands in the shared space without changing any
trained encoder or the embeddings they give. `benchmarks/bench_adapt.py` compares the choices.
"""

from __future__ import annotations

import torch

from cebra_core.engine.loss import InfoNCE, infonce
from cebra_core.engine.model import OFFSET_LEFT, OFFSET_RIGHT, Offset10Model, build_models, encode_windows, gather_windows
from cebra_core.engine.sampling import Batch, NearestLabelIndex

TRAINED_FIRST_LAYER = "net.0."
ADAPT_LAYERS = ("all", "first")  # which layers of the new encoder adapt trains
ADAPT_INITS = ("regression", "random")  # how its first layer starts
DEFAULT_LAYERS, DEFAULT_INIT = "all", "regression"  # the winners of benchmarks/bench_adapt.py
RIDGE = 1e-3  # regression_init's ridge, relative to the mean diagonal of the Gram matrix


def new_session_encoder(
    template: Offset10Model, num_neurons: int, seed: int, layers: str = DEFAULT_LAYERS
) -> Offset10Model:  # fmt: skip
    """A fresh (random) first layer for `num_neurons` inputs and a copy of the template's later layers.

    `layers="first"` freezes the copied layers (requires_grad False); `"all"` leaves them trainable.
    """
    if layers not in ADAPT_LAYERS:
        raise ValueError(f"layers={layers!r} is not supported; supported: {', '.join(ADAPT_LAYERS)}")
    num_units, num_output = template.first_layer.out_channels, template.num_output
    encoder = build_models([num_neurons], num_units, num_output, seed)[0].to(template.first_layer.weight.device)
    later = {k: v for k, v in template.state_dict().items() if not k.startswith(TRAINED_FIRST_LAYER)}
    encoder.load_state_dict(later, strict=False)
    for name, parameter in encoder.named_parameters():
        parameter.requires_grad_(layers == "all" or name.startswith(TRAINED_FIRST_LAYER))
    return encoder


def first_layer_preactivations(encoder: Offset10Model, neural: torch.Tensor) -> torch.Tensor:
    """(T-1, H): the first layer's output before GELU at steps t = (x[t], x[t+1]) of a (T, N) session."""
    weight, bias = encoder.first_layer.weight.detach(), encoder.first_layer.bias.detach()  # (H, N, 2), (H,)
    return neural[:-1] @ weight[:, :, 0].T + neural[1:] @ weight[:, :, 1].T + bias


@torch.no_grad()
def regression_init(
    encoder: Offset10Model, neural: torch.Tensor, labels: torch.Tensor,
    template_hidden: torch.Tensor, template_labels: torch.Tensor, ridge: float = RIDGE,
) -> None:  # fmt: skip
    """Set the new first layer to the ridge fit of the template's pre-activations at label-matched steps.

    Step t of the new session ((x[t], x[t+1]), label[t]) is paired with the template step whose
    label is nearest (`template_hidden` (T0-1, H) from `first_layer_preactivations`, labelled by
    `template_labels` (T0-1, d)); the fit maps the new neurons onto what the template's hidden units
    do at the same label, so the frozen-or-not later layers start from familiar input.
    """
    design = torch.cat([neural[:-1], neural[1:], torch.ones_like(neural[:-1, :1])], dim=1)  # (T-1, 2N+1)
    weight = encoder.first_layer.weight
    coef = host_regression(design, labels[:-1], template_hidden, template_labels, ridge)  # (2N+1, H)
    coef = coef.to(weight.device, weight.dtype)
    n = neural.shape[1]
    encoder.first_layer.weight.copy_(torch.stack([coef[:n].T, coef[n : 2 * n].T], dim=-1))
    encoder.first_layer.bias.copy_(coef[-1])


def host_regression(
    design: torch.Tensor, labels: torch.Tensor, template_hidden: torch.Tensor, template_labels: torch.Tensor,
    ridge: float,
) -> torch.Tensor:  # fmt: skip
    """Ridge coefficients (D, H) of the template's pre-activations at the label-matched steps on
    ``design`` (T, D; its last column the bias, not shrunk). On the CPU, in float64 (exact label
    ties, a stable solve): not every training device has float64 (mps)."""
    labels, template_labels = labels.cpu(), template_labels.cpu()
    match = NearestLabelIndex([template_labels]).nearest(labels, torch.zeros(len(labels), dtype=torch.long))
    design, target = design.cpu().double(), template_hidden.cpu()[match].double()
    gram = design.T @ design
    penalty = ridge * torch.diagonal(gram).mean() * torch.ones(gram.shape[0], dtype=gram.dtype)
    penalty[-1] = 0
    return torch.linalg.solve(gram + torch.diag(penalty), design.T @ target)


def adaptation_step(
    models: list[Offset10Model], neural: list[torch.Tensor], batch: Batch, temperature: float,
    trained_embeddings: torch.Tensor,
) -> InfoNCE:  # fmt: skip
    """InfoNCE of new-session references against looked-up trained positives and negatives."""
    reference = encode_windows(models, [gather_windows(neural[0], batch.reference[0])])[0]
    positive = trained_embeddings[batch.positive[0]]
    negative = trained_embeddings[batch.negative[0]]
    return infonce(reference, positive, negative, temperature)


def window_embedding_table(embeddings: list[torch.Tensor]) -> torch.Tensor:
    """Rows of all trained sessions, row i = the embedding training gives sample i (window clamped).

    `transform` row t is the window [t-5, t+5); training embeds sample i through the window of
    clamp(i, 5, T-5), which `transform` computes without padding, so the lookup is exact.
    """
    rows = []
    for z in embeddings:
        index = torch.arange(z.shape[0], device=z.device).clamp(OFFSET_LEFT, z.shape[0] - OFFSET_RIGHT)
        rows.append(z[index])
    return torch.cat(rows)
