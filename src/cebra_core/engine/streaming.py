"""Embedding a recording as it arrives, bin by bin: the online use of a causal model (a brain-machine
interface embeds each new time bin from the past alone).

`Stream` holds the last receptive-field's worth of bins of one session and embeds each new bin
through that window, so its cost per bin does not grow with the session's length. With a causal
model (``causal=True``: the window of bin i is i-L+1 … i) the streamed embeddings equal the batch
`transform` of the same bins, bin for bin (the first L-1 bins see the first bin repeated before
them, as `transform`'s edge padding does). A centred model would need bins of the future, so a
stream refuses it.

The forward runs the encoder's layers directly on the (L, N) window in float32 with torch's
no-grad inference mode: a few small matrix products, no autograd, no padding.
"""

from __future__ import annotations

import numpy as np
import torch

from cebra_core.engine.model import Encoder


class StreamError(ValueError):
    """A bin the stream cannot embed (wrong shape, NaN, out of order); the stream is left as it was."""


class Stream:
    """Embeds one session's bins as they arrive (`push`), from the last window only."""

    def __init__(self, encoder: Encoder, window: int, causal: bool, session: str = "the session"):
        if not causal:
            raise ValueError("a stream embeds each bin from the past alone: fit the model with causal=True "
                             "(a centred window needs bins that have not arrived)")
        self.encoder = encoder.eval()
        self.window = window
        self.where = session
        self.num_neurons = encoder.num_input
        self.device = next(encoder.parameters()).device
        self.layers = [(w.detach(), b.detach()) for w, b in encoder.weight_layers()]  # (out, in, k), (out,)
        self.buffer: np.ndarray | None = None  # the last `window` bins, (window, N) float32
        self.last_time: float | None = None
        self.count = 0

    def push(self, bins, times=None) -> np.ndarray:
        """Embed new bins (N,) or (n, N), in time order; ``times`` (optional, one per bin) must increase
        across every push. Returns (n, output_dimension) float32. A bad push raises `StreamError` and
        changes nothing."""
        x = np.asarray(bins, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.num_neurons:
            raise StreamError(f"{self.where}: a bin must have {self.num_neurons} neurons (shape (n, {self.num_neurons})), "
                              f"got shape {np.shape(bins)}")
        if not np.isfinite(x).all():
            row = int(np.argmax(~np.isfinite(x).all(axis=1)))
            raise StreamError(f"{self.where}: bin {self.count + row} holds NaN or inf; it was not embedded")
        if times is not None:
            times = np.atleast_1d(np.asarray(times, dtype=np.float64))
            if times.shape != (len(x),):
                raise StreamError(f"{self.where}: {len(x)} bins but {times.shape[0] if times.ndim else 1} times")
            previous = -np.inf if self.last_time is None else self.last_time
            steps = np.diff(np.concatenate([[previous], times]))
            if (steps <= 0).any():
                k = int(np.argmax(steps <= 0))
                raise StreamError(f"{self.where}: bin time {times[k]:g} is not after {([previous, *times])[k]:g}: "
                                  "bins must arrive in time order")
        out = np.empty((len(x), self.encoder.num_output), dtype=np.float32)
        buffer = self.buffer
        for i, row in enumerate(x):
            if buffer is None:  # before the first bin: the first bin repeated, as transform pads
                buffer = np.repeat(row[None], self.window, axis=0)
            else:
                buffer = np.concatenate([buffer[1:], row[None]])
            out[i] = self._embed(buffer)
        self.buffer, self.count = buffer, self.count + len(x)
        if times is not None:
            self.last_time = float(times[-1])
        return out

    @torch.inference_mode()
    def _embed(self, window: np.ndarray) -> np.ndarray:
        """One (window, N) -> (D,): the encoder's layers on the time-major window, no padding."""
        h = torch.from_numpy(window).to(self.device)  # (L, C)
        last = len(self.layers) - 1
        for i, (weight, bias) in enumerate(self.layers):
            k = weight.shape[-1]
            steps = h.shape[0] - k + 1
            out = bias + h[0:steps] @ weight[:, :, 0].T
            for j in range(1, k):
                out = out + h[j:j + steps] @ weight[:, :, j].T
            if i == last:
                h = out
            elif self.encoder.residual[i]:
                h = h[1:-1] + torch.nn.functional.gelu(out)
            else:
                h = torch.nn.functional.gelu(out)
        z = h[-1]
        if self.encoder.normalize:
            z = z / z.norm()
        return z.cpu().numpy()
