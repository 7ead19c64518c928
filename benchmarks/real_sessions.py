"""The two real rat sessions the benchmarks run on, read from the shared data folder named by
CEBRA_SHARED_DATA (never copied into the project): buddy's published file (its MD5 checked before
it is unpickled) and achilles rebuilt from a public export (see that folder's README)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from cebra_core.sessions.data import load_session  # noqa: E402
from cebra_core.sessions.rats import PUBLISHED  # noqa: E402

FILES = {"achilles": "achilles_reconstructed.npz", "buddy": "buddy.jl"}  # files under <folder>/rat_hippocampus
VARIABLE = "CEBRA_SHARED_DATA"


def load_real(rat: str) -> tuple[np.ndarray, np.ndarray]:
    """(neural (T, N), labels (T, 3) = position, right, left) of a real rat, as the benchmarks index
    them; the folder comes from $CEBRA_SHARED_DATA (an error if unset)."""
    folder = os.environ.get(VARIABLE)
    if not folder:
        raise SystemExit(f"set {VARIABLE} to the shared data folder (the one holding rat_hippocampus/)")
    md5 = PUBLISHED[rat]["jl_md5"] if FILES[rat].endswith(".jl") else None
    neural, labels = load_session(Path(folder) / "rat_hippocampus" / FILES[rat], session=rat, md5=md5)
    return neural, labels.to_numpy()
