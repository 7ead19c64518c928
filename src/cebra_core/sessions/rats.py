"""The published rat hippocampus dataset's facts, in one place: the rats, their shapes and MD5s, the
bin width, the track length and the citation.

Standard library only, so that the workflow's planning (Snakemake's own process, which has no numpy
or torch under ``--use-conda``) can read them as well as the downloader, the simulator and the
readers.
"""

from __future__ import annotations

# name -> MD5 of the .jl.gz as published, MD5 of the extracted .jl, spikes shape (T, N) (CEBRA 0.6.1);
# the simulator gives its rats these shapes.
PUBLISHED: dict[str, dict] = {
    "achilles": {"gz_md5": "5d7b243e07b24c387e5412cd5ff46f0b", "jl_md5": "c52f9b55cbc23c66d57f3842214058b8", "shape": (10178, 120)},
    "buddy": {"gz_md5": "339290585be2188f48a176f05aaf5df6", "jl_md5": "36341322907708c466871bf04bc133c2", "shape": (6577, 48)},
    "cicero": {"gz_md5": "f262a87d2e59f164cb404cd410015f3a", "jl_md5": "a83b02dbdc884fdd7e53df362499d42f", "shape": (47431, 55)},
    "gatsby": {"gz_md5": "564e431c19e55db2286a9d64c86a94c4", "jl_md5": "2b889da48178b3155011c12555342813", "shape": (17026, 66)},
}
RAT_SHAPES: dict[str, tuple[int, int]] = {name: rat["shape"] for name, rat in PUBLISHED.items()}  # (T, N)

BIN_SECONDS = 0.025  # one time bin: 25 ms
TRACK_LENGTH = 1.6  # m, the linear track

CITATION = (
    "Grosmark, A.D. & Buzsáki, G. (2016) Diversity in neural firing dynamics supports both rigid and "
    "learned hippocampal sequences. Science 351:1440. CRCNS hc-11, doi:10.6080/K0862DC5. "
    "Preprocessed by Schneider, Lee & Mathis (2023) Nature 617:360."
)
