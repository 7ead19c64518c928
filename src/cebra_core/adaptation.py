"""Embedding a new, unseen session into a trained multi-session space (`CEBRA.adapt`).

Method: the new session gets its own first layer (it has its own neurons), put in front of a
trained encoder's later layers, which stay frozen. Only that first layer is trained, with
InfoNCE against the trained sessions' embeddings, which are fixed and so computed once: the
positive of a new-session sample is the trained sample whose label is nearest to its label plus
an empirical time_offsets-step delta (`sampling.AdaptationSampler`), and negatives are drawn
from every trained session. The new session therefore lands in the shared space without
changing any trained encoder or the embeddings they give.
"""

from __future__ import annotations

import torch

from cebra_core.loss import InfoNCE, infonce
from cebra_core.model import OFFSET_LEFT, OFFSET_RIGHT, Offset10Model, build_models, encode_windows, gather_windows
from cebra_core.sampling import Batch

TRAINED_FIRST_LAYER = "net.0."


def new_session_encoder(template: Offset10Model, num_neurons: int, seed: int) -> Offset10Model:
    """A fresh first layer for `num_neurons` inputs; the template's later layers copied and frozen."""
    num_units, num_output = template.first_layer.out_channels, template.num_output
    encoder = build_models([num_neurons], num_units, num_output, seed)[0].to(template.first_layer.weight.device)
    later = {k: v for k, v in template.state_dict().items() if not k.startswith(TRAINED_FIRST_LAYER)}
    encoder.load_state_dict(later, strict=False)
    for name, parameter in encoder.named_parameters():
        parameter.requires_grad_(name.startswith(TRAINED_FIRST_LAYER))
    return encoder


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
