"""Embedding a new, unseen session into a trained space (`CEBRA.adapt`, multi-session).

Method: the new session gets its own encoder, a copy of a trained one (session 0's, the
template) with its own first layer (it has its own neurons). That first layer starts as a
ridge regression of the template's first-layer pre-activations on the new neurons, at
label-matched samples (`regression_init`): before any training, the new animal already drives the
template's hidden units as session 0 does at the same label. Then the whole copy is trained
(`layers="all"`; `"first"` keeps the later layers frozen) with InfoNCE against the trained
sessions' embeddings, which are fixed and so computed once: the positive of a new-session
sample is drawn in a trained session as multi-session training draws it (`sampling.AdaptationSampler`),
and negatives are drawn from every trained session. The new session therefore lands in the shared
space without changing any trained encoder or the embeddings they give.
`benchmarks/bench_adapt.py` compares the choices.
"""

from __future__ import annotations

import torch

from cebra_core.engine.architectures import Offset
from cebra_core.engine.loss import Criterion, InfoNCE
from cebra_core.engine.model import Encoder, build_models, encode_windows, gather_windows
from cebra_core.engine.nearest import NearestLabelIndex
from cebra_core.engine.sampling import Batch, Labels

ADAPT_LAYERS = ("all", "first")  # which layers of the new encoder adapt trains
ADAPT_INITS = ("regression", "random")  # how its first layer starts
DEFAULT_LAYERS, DEFAULT_INIT = "all", "regression"  # the winners of benchmarks/bench_adapt.py
DEFAULT_OWN_NEGATIVES = False  # negatives from the trained sessions only
RIDGE = 1e-3  # regression_init's ridge, relative to the mean diagonal of the Gram matrix


def new_session_encoder(template: Encoder, num_neurons: int, seed: int, layers: str = DEFAULT_LAYERS) -> Encoder:
    """A fresh (random) first layer for `num_neurons` inputs and a copy of the template's later layers.

    `layers="first"` freezes the copied layers (requires_grad False); `"all"` leaves them trainable.
    """
    if layers not in ADAPT_LAYERS:
        raise ValueError(f"layers={layers!r} is not supported; supported: {', '.join(ADAPT_LAYERS)}")
    width = template.weight_layers()[0][0].shape[0]
    encoder = build_models([num_neurons], width, template.num_output, seed, template.architecture)[0]
    encoder = encoder.to(template.weight_layers()[0][0].device)
    first = template.first_layer_prefix
    later = {k: v for k, v in template.state_dict().items() if not k.startswith(first)}
    encoder.load_state_dict(later, strict=False)
    for name, parameter in encoder.named_parameters():
        parameter.requires_grad_(layers == "all" or name.startswith(first))
    return encoder


def _steps(neural: torch.Tensor, kernel: int) -> torch.Tensor:
    """(T-k+1, k*N): the k consecutive rows of every step of the first layer, side by side."""
    count = neural.shape[0] - kernel + 1
    return torch.cat([neural[j: j + count] for j in range(kernel)], dim=1)


def first_layer_preactivations(encoder: Encoder, neural: torch.Tensor) -> torch.Tensor:
    """(T-k+1, H): the first layer's output before GELU at every step of a (T, N) session (k its kernel)."""
    weight, bias = (w.detach() for w in encoder.weight_layers()[0])  # (H, N, k), (H,)
    count = neural.shape[0] - weight.shape[-1] + 1
    out = neural[:count] @ weight[:, :, 0].T
    for j in range(1, weight.shape[-1]):
        out = out + neural[j: j + count] @ weight[:, :, j].T
    return out + bias


@torch.no_grad()
def regression_init(
    encoder: Encoder, neural: torch.Tensor, labels: Labels,
    template_hidden: torch.Tensor, template_labels: Labels, ridge: float = RIDGE,
) -> None:  # fmt: skip
    """Set the new first layer to the ridge fit of the template's pre-activations at label-matched steps.

    Step t of the new session (its k rows from t, label[t]) is paired with the template step whose
    label is nearest, of the same class where there is a discrete label (`template_hidden`
    (T0-k+1, H) from `first_layer_preactivations`, labelled by `template_labels`); with a discrete
    label alone, with the mean of the template's steps of its class. The fit maps the new neurons onto what the template's hidden units
    do at the same label, so the frozen-or-not later layers start from familiar input.
    """
    weight, _ = encoder.weight_layers()[0]
    kernel, n = weight.shape[-1], neural.shape[1]
    steps = _steps(neural, kernel)
    design = torch.cat([steps, torch.ones_like(steps[:, :1])], dim=1)  # (T-k+1, kN+1)
    target = matched_hidden(labels, template_hidden, template_labels, len(steps))  # (T-k+1, H)
    coef = host_regression(design, target, ridge)  # (kN+1, H)
    coef = coef.to(weight.device, weight.dtype)
    taps = torch.stack([coef[j * n: (j + 1) * n].T for j in range(kernel)], dim=-1)  # (H, N, k)
    first = encoder.first_layer
    first.weight.copy_(taps.reshape(first.weight.shape))
    first.bias.copy_(coef[-1])


def _head(labels: Labels, count: int) -> Labels:
    """The first ``count`` rows of labels, on the CPU."""
    return Labels(*(None if x is None else x[:count].cpu() for x in (labels.continuous, labels.discrete)))


def matched_hidden(labels: Labels, template_hidden: torch.Tensor, template_labels: Labels, count: int) -> torch.Tensor:
    """(count, H) the template's pre-activations at the step matched to each of the first ``count``
    steps of the new session (see `regression_init`); on the CPU, in float64 (exact label ties)."""
    new, template = _head(labels, count), _head(template_labels, len(template_hidden))
    hidden = template_hidden.cpu().double()
    if new.continuous is None:  # a discrete label alone: the class means
        means = torch.zeros(int(template.discrete.max()) + 1, hidden.shape[1], dtype=hidden.dtype)
        means.index_add_(0, template.discrete, hidden)
        means /= torch.bincount(template.discrete, minlength=len(means)).clamp(min=1)[:, None]
        return means[new.discrete]
    classes = None if new.discrete is None else [template.discrete]
    match = NearestLabelIndex([template.continuous], classes).nearest(
        new.continuous, torch.zeros(count, dtype=torch.long), new.discrete)
    return hidden[match]


def host_regression(design: torch.Tensor, target: torch.Tensor, ridge: float) -> torch.Tensor:
    """Ridge coefficients (D, H) of ``target`` (T, H) on ``design`` (T, D; its last column the bias,
    not shrunk). On the CPU, in float64 (a stable solve): not every training device has float64 (mps)."""
    design, target = design.cpu().double(), target.cpu().double()
    gram = design.T @ design
    penalty = ridge * torch.diagonal(gram).mean() * torch.ones(gram.shape[0], dtype=gram.dtype)
    penalty[-1] = 0
    return torch.linalg.solve(gram + torch.diag(penalty), design.T @ target)


def adaptation_step(
    models: list[Encoder], neural: list[torch.Tensor], batch: Batch, criterion: Criterion, offset: Offset,
    trained_embeddings: torch.Tensor,
) -> InfoNCE:  # fmt: skip
    """InfoNCE of new-session references against looked-up trained positives and negatives (and the
    new session's own negatives, rows past the trained ones, embedded with the references)."""
    rows = trained_embeddings.shape[0]
    negative_rows = batch.negative[0]
    own = negative_rows[negative_rows >= rows] - rows
    index = torch.cat([batch.reference[0], own])
    embedded = encode_windows(models, [gather_windows(neural[0], index, offset)])[0]
    reference, own_negative = embedded[: len(batch.reference[0])], embedded[len(batch.reference[0]):]
    positive = trained_embeddings[batch.positive[0]]
    negative = torch.cat([trained_embeddings[negative_rows[negative_rows < rows]], own_negative])
    return criterion(reference, positive, negative)


def window_embedding_table(embeddings: list[torch.Tensor], offset: Offset) -> torch.Tensor:
    """Rows of all trained sessions, row i = the embedding training gives sample i (window clamped).

    `transform` row t is the window of ``offset`` around t; training embeds sample i through the
    window of clamp(i, left, T - right), which `transform` computes without padding, so the lookup is exact.
    """
    rows = []
    for z in embeddings:
        index = torch.arange(z.shape[0], device=z.device).clamp(offset.left, z.shape[0] - offset.right)
        rows.append(z[index])
    return torch.cat(rows)
