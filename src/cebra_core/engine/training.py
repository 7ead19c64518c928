"""The training loop: sample, embed reference/positive/negative windows, InfoNCE, one Adam step.

One iteration is one batch and one optimiser step (CEBRA 0.6.1, facts section 4). The step
never copies anything to the host: losses are written into a preallocated device tensor and
only read for the progress bar (every `PROGRESS_EVERY` steps) and at checkpoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from cebra_core.sessions.files import atomic_output
from cebra_core.engine.architectures import Offset
from cebra_core.engine.loss import Criterion, InfoNCE
from cebra_core.engine.model import Encoder, encode_windows, gather_windows
from cebra_core.engine.sampling import Batch

PROGRESS_EVERY = 50
LOG_COLUMNS = ("pos", "neg", "total", "temperature")
CHECKPOINT_KEYS = {"fingerprint", "iteration", "models", "criterion", "optimizer", "generator", "log"}

logger = logging.getLogger(__name__)


def contrastive_step(
    models: list[Encoder], neural: list[torch.Tensor], batch: Batch, criterion: Criterion, offset: Offset
) -> InfoNCE:
    """Loss of one batch: each session's encoder embeds its references, positives and negatives at once."""
    windows = [
        gather_windows(x, torch.cat([batch.reference[s], batch.positive[s], batch.negative[s]]), offset)
        for s, x in enumerate(neural)
    ]
    z = encode_windows(models, windows)  # (S, 3B, D)
    b, d = batch.reference.shape[1], z.shape[-1]
    reference = z[:, :b].reshape(-1, d)
    positive = z[:, b : 2 * b].reshape(-1, d)
    negative = z[:, 2 * b :].reshape(-1, d)
    if batch.positive_order is not None:
        positive = positive[batch.positive_order]
    return criterion(reference, positive, negative)


@dataclass
class Checkpoint:
    """Where and how often a fit saves its full state, and the fingerprint a resume must match."""

    path: Path
    every: int
    fingerprint: str

    def save(self, iteration: int, models, criterion, optimizer, generator: torch.Generator, log: torch.Tensor) -> None:
        state = {  # the keys of CHECKPOINT_KEYS
            "fingerprint": self.fingerprint,
            "iteration": iteration,
            "models": [m.state_dict() for m in models],
            "criterion": criterion.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "log": log[:iteration].cpu(),
        }
        atomic_torch_save(state, self.path)

    def load(self) -> dict | None:
        """The saved state, or None if there is none, it is unreadable or it belongs to another fit.

        An unreadable checkpoint (truncated, damaged, not a plain-tensor file) is renamed to
        ``<name>.corrupt`` and the fit starts afresh; it is never loaded with ``weights_only=False``.
        A checkpoint of a fit with other parameters or data (the config changed while a fit was
        interrupted) is renamed to ``<name>.stale`` and the fit starts afresh.
        """
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
                raise ValueError("not a cebra_core checkpoint")
        except Exception as error:
            aside = self.path.with_name(self.path.name + ".corrupt")
            self.path.replace(aside)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            logger.warning(
                "checkpoint %s cannot be read (%s: %s); set aside as %s, the fit starts afresh",
                self.path, type(error).__name__, reason[:200], aside,
            )
            return None
        if state.get("fingerprint") != self.fingerprint:
            aside = self.path.with_name(self.path.name + ".stale")
            self.path.replace(aside)
            logger.warning(
                "checkpoint %s belongs to a fit with other parameters or data; set aside as %s, the fit starts afresh",
                self.path, aside,
            )
            return None
        return state


def atomic_torch_save(obj: object, path: Path) -> None:
    """torch.save through `atomic_output`: a crash or a full disk never leaves half a file."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def train(
    models: list[Encoder],
    neural: list[torch.Tensor],
    sampler,
    *,
    criterion: Criterion,
    offset: Offset,
    batch_size: int,
    learning_rate: float,
    max_iterations: int,
    generator: torch.Generator,
    parameters: list[torch.nn.Parameter] | None = None,
    step: Callable[..., InfoNCE] = contrastive_step,
    checkpoint: Checkpoint | None = None,
    verbose: bool = False,
) -> torch.Tensor:
    """Fit `models` (and a learnable temperature) in place; returns the (max_iterations, 4) log of
    pos, neg, total and the temperature after each step (CEBRA logs it after the optimiser step).

    `parameters` (default: all of the models', then the criterion's, CEBRA's order) are the ones
    Adam updates; `step` computes one batch's loss (default: the ordinary contrastive step;
    `CEBRA.adapt` passes its own).
    """
    if parameters is None:
        parameters = [p for m in models for p in m.parameters()] + list(criterion.parameters())
    optimizer = torch.optim.Adam(parameters, lr=learning_rate, betas=(0.9, 0.999), eps=1e-8)
    device = neural[0].device
    log = torch.zeros(max_iterations, len(LOG_COLUMNS), device=device)
    start = 0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        start = state["iteration"]
        for model, weights in zip(models, state["models"]):
            model.load_state_dict(weights)
        criterion.load_state_dict(state["criterion"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        log[:start] = state["log"].to(device)
        logger.info("resuming from checkpoint %s at iteration %d of %d", checkpoint.path, start, max_iterations)
    for model in models:
        model.train()
    bar = tqdm(total=max_iterations, initial=start, disable=not verbose, desc="cebra_core fit")
    for iteration in range(start, max_iterations):
        loss = step(models, neural, sampler.sample(batch_size), criterion, offset)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        with torch.no_grad():
            temperature = 1.0 / torch.as_tensor(criterion.inverse_temperature(), device=device)
            log[iteration] = torch.stack([loss.pos, loss.neg, loss.total, temperature.to(loss.total.dtype)])
        done = iteration + 1
        if checkpoint is not None and (done % checkpoint.every == 0 or done == max_iterations):
            checkpoint.save(done, models, criterion, optimizer, generator, log)
        if verbose:
            bar.update(1)
            if done % PROGRESS_EVERY == 0 or done == max_iterations:
                pos, neg, total, temperature = log[iteration].tolist()
                bar.set_postfix_str(f"pos: {pos: .4f} neg: {neg: .4f} total: {total: .4f} temperature: {temperature: .4f}")
    bar.close()
    return log
