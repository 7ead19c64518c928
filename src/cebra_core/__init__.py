"""cebra_core: a small, fast, faithful CEBRA-Behavior engine (single- and multi-session).

Training: `CEBRA`. After training: `OrthogonalProcrustesAlignment`, `align_to_reference`,
`consistency_score`, `knn_decode`, `cross_decode` (figures are in `cebra_core.figures.plots`).

The names are imported on first use, so that e.g. `cebra_core.analysis.alignment` alone does not load torch.
"""

import importlib

__version__ = "0.1.0"

_HOME = {
    "CEBRA": "cebra_core.engine.estimator",
    "OrthogonalProcrustesAlignment": "cebra_core.analysis.alignment",
    "align_to_reference": "cebra_core.analysis.alignment",
    "consistency_score": "cebra_core.analysis.metrics",
    "cross_decode": "cebra_core.analysis.decoding",
    "knn_decode": "cebra_core.analysis.decoding",
}
__all__ = list(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'cebra_core' has no attribute {name!r}")
