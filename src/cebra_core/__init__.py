"""cebra_core: a small, fast, faithful CEBRA-Behavior engine (single- and multi-session)."""

from cebra_core.estimator import CEBRA

__version__ = "0.1.0"
__all__ = ["CEBRA"]
