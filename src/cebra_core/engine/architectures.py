"""CEBRA's encoder architectures as data: layer shapes, normalisation, receptive field and the
window each embedding row is computed from (centred as CEBRA's, or causal).

Torch-free, so that the session checks (which run before any fit, in the data environment) and
the workflow's schema checks know an architecture's window without importing torch.

Convolutional models (CEBRA's `_OffsetModel`s): Conv1d(N -> H, kernel 2), GELU, ``blocks``
residual blocks (Conv1d(H -> H, kernel 3), GELU, added to the input cropped by one step at each
end), Conv1d(H -> D, ``last_kernel``), then the L2 normalisation unless the model is an ``-mse``
variant. The MLP (``offset1-model``) embeds one time bin: Linear(N -> H), GELU, Linear(H -> H),
GELU, Linear(H -> H//2), GELU, Linear(H//2 -> D), normalised; ``offset1-model-mse`` is another
MLP whose widths come from D (30D, 30D, 10D) and which ignores H.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_KERNEL = 2  # the first Conv1d of every convolutional model
BLOCK_KERNEL = 3  # each residual block's Conv1d


@dataclass(frozen=True)
class Offset:
    """The window of one embedding row: ``left`` samples before the row and ``right`` from it on
    (``right`` counts the row itself, as CEBRA's Offset does): rows i-left … i+right-1."""

    left: int
    right: int

    def __len__(self) -> int:
        return self.left + self.right


@dataclass(frozen=True)
class Layer:
    """A weight layer: its output width, kernel (1 for a Linear) and whether it is a residual block."""

    width: int
    kernel: int
    residual: bool


@dataclass(frozen=True)
class Architecture:
    """One of CEBRA's encoders: ``kind`` conv or mlp, its blocks and last kernel (conv), whether it
    normalises its output (not the ``-mse`` variants), and the minimum hidden width CEBRA accepts."""

    name: str
    kind: str  # "conv" or "mlp"
    blocks: int = 0  # residual blocks (conv)
    last_kernel: int = BLOCK_KERNEL  # kernel of the output Conv1d (conv)
    normalize: bool = True
    min_units: int = 1
    units_from_output: bool = False  # offset1-model-mse: hidden widths 30D, 30D, 10D (num_hidden_units unused)

    @property
    def receptive_field(self) -> int:
        """Input samples behind one output row (each Conv1d of kernel k shortens a sequence by k - 1)."""
        if self.kind == "mlp":
            return 1
        return 1 + (FIRST_KERNEL - 1) + self.blocks * (BLOCK_KERNEL - 1) + (self.last_kernel - 1)

    def offset(self, causal: bool = False) -> Offset:
        """The window of row i: centred as CEBRA's (``left = field // 2``), or causal: the window ends
        at row i (i - field + 1 … i), so an embedding uses no future sample."""
        field = self.receptive_field
        if causal:
            return Offset(field - 1, 1)
        return Offset(field // 2, field - field // 2)

    def layers(self, num_units: int, num_output: int) -> list[Layer]:
        """Every weight layer in order, the first (per session) to the output layer."""
        if self.kind == "conv":
            return ([Layer(num_units, FIRST_KERNEL, False)] + [Layer(num_units, BLOCK_KERNEL, True)] * self.blocks
                    + [Layer(num_output, self.last_kernel, False)])
        widths = ([30 * num_output, 30 * num_output, 10 * num_output] if self.units_from_output
                  else [num_units, num_units, num_units // 2])
        return [Layer(w, 1, False) for w in widths] + [Layer(num_output, 1, False)]


ARCHITECTURES: dict[str, Architecture] = {
    "offset1-model": Architecture("offset1-model", "mlp", min_units=2),
    "offset1-model-mse": Architecture("offset1-model-mse", "mlp", normalize=False, min_units=0, units_from_output=True),
    "offset5-model": Architecture("offset5-model", "conv", blocks=1, last_kernel=2),
    "offset10-model": Architecture("offset10-model", "conv", blocks=3),
    "offset10-model-mse": Architecture("offset10-model-mse", "conv", blocks=3, normalize=False),
    "offset36-model": Architecture("offset36-model", "conv", blocks=16),
}
DEFAULT_ARCHITECTURE = "offset10-model"


def architecture(name: str) -> Architecture:
    """The architecture called ``name``; an unknown name is a ValueError listing the supported ones."""
    if name not in ARCHITECTURES:
        raise ValueError(f"model_architecture={name!r} is not supported; supported: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]
