"""cebra_core: a small, fast, faithful CEBRA-Behavior engine (single- and multi-session).

Training: `CEBRA`. After training: `OrthogonalProcrustesAlignment`, `align_to_reference`,
`consistency_score`, `knn_decode`, `cross_decode` (figures are in `cebra_core.plots`).
"""

from cebra_core.alignment import OrthogonalProcrustesAlignment, align_to_reference
from cebra_core.decoding import cross_decode, knn_decode
from cebra_core.estimator import CEBRA
from cebra_core.metrics import consistency_score

__version__ = "0.1.0"
__all__ = [
    "CEBRA",
    "OrthogonalProcrustesAlignment",
    "align_to_reference",
    "consistency_score",
    "cross_decode",
    "knn_decode",
]
