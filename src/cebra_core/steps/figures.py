"""The figure steps (the figures environment: matplotlib, seaborn, plotly, pandas; no torch): each
reads the tables of an analysis step and writes its figure as PNG and PDF (or the 3-D HTML pages)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from cebra_core.figures.interactive import plot_embeddings_3d, write_html
from cebra_core.figures.plots import (
    embedding_panels,
    plot_consistency_comparison,
    plot_embedding_grid,
    plot_loss_curves,
    plot_new_session,
    plot_summary,
    plot_sweep,
    save_figure,
)

log = logging.getLogger(__name__)

Path = str | os.PathLike


def _write(figure: Figure, png: Path, pdf: Path) -> None:
    save_figure(figure, png, formats=("png",))
    save_figure(figure, pdf, formats=("pdf",))


def embeddings(*, single: Path, multi: Path, png: Path, pdf: Path, sessions: Sequence[str]) -> None:
    """The 2 x S embedding grid: aligned single-session fits on top, the multi-session fit below."""
    panels = [embedding_panels(pd.read_parquet(path), sessions) for path in (single, multi)]
    _write(plot_embedding_grid(*panels), png, pdf)


def embeddings_3d(*, single: Path, multi: Path, html: Path, session: str, sessions: Sequence[str]) -> None:
    """One session's interactive 3-D embeddings (aligned single-session beside multi-session), offline HTML."""
    panels = [embedding_panels(pd.read_parquet(path), sessions) for path in (single, multi)]
    page = write_html(plot_embeddings_3d(session, *panels), html, div_id=f"embeddings-3d-{session}")
    log.info("wrote %s (%.1f MB)", page, page.stat().st_size / 1e6)


def consistency(table: Path, *, png: Path, pdf: Path, sessions: Sequence[str], seed: int) -> None:
    """The two consistency heatmaps (single- vs multi-session) of one seed."""
    scores = pd.read_parquet(table)
    scores = scores[scores["seed"] == seed]
    panels = [(part["score"].to_numpy(), part[["source", "target"]].to_numpy(), list(sessions))
              for part in (scores[scores["kind"] == kind] for kind in ("single", "multi"))]
    _write(plot_consistency_comparison(*panels), png, pdf)


def loss(*, single: Sequence[Path], multi: Path, png: Path, pdf: Path, sessions: Sequence[str], batch_size: int) -> None:
    """Training loss curves of the whole-session fits (single-session per session, and multi-session)."""
    histories = {}
    for path in [*single, multi]:
        table = pd.read_parquet(path).sort_values("iteration")
        name = table["fit"].iloc[0]
        label = (f"multi ({len(sessions)} × {batch_size} per batch)" if name == "multi"
                 else f"{name.replace('/', '-')} ({batch_size} per batch)")
        histories[label] = table["total"].to_numpy()
    smooth = max(1, min(100, min(len(h) for h in histories.values()) // 10))
    note = (
        f"The multi-session loss sits higher: each of its batches contrasts against the negatives of all "
        f"{len(sessions)} rats ({len(sessions)} × {batch_size}), and InfoNCE grows with the number of negatives "
        f"(about ln {len(sessions)} above a single-session fit at the same fit quality)."
    )
    _write(plot_loss_curves(histories, smooth=smooth, note=note), png, pdf)


def summary(statistics: Path, *, png: Path, pdf: Path, sessions: Sequence[str]) -> None:
    """Consistency per pair over seeds with the paired test, and held-out decoding per session."""
    _write(plot_summary(pd.read_parquet(statistics), sessions), png, pdf)


def new_session(table: Path, *, png: Path, pdf: Path, held_out: str) -> None:
    """The held-out session's consistency by kind of embedding, its decoding errors beside."""
    scores = pd.read_parquet(table)
    kinds = list(dict.fromkeys(scores["kind"]))
    consistency_ = {kind: scores.query("kind == @kind and measure == 'consistency'")["value"].to_numpy() for kind in kinds}
    errors = {kind: float(scores.query("kind == @kind and measure == 'median_error_cm'")["value"].mean()) for kind in kinds}
    _write(plot_new_session(consistency_, errors, held_out=held_out), png, pdf)


def sweep(table: Path, *, png: Path, pdf: Path, grid_keys: Sequence[str]) -> None:
    """A sweep's scores against each grid parameter, mean ± sd over seeds."""
    _write(plot_sweep(pd.read_parquet(table), grid_keys), png, pdf)
