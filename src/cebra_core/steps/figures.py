"""The figure steps (the figures environment: matplotlib, seaborn, plotly, pandas; no torch): each
reads the tables of an analysis step and writes its figure as PNG and PDF (or the 3-D HTML pages)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure

from cebra_core.analysis.protocols import DEFAULT_SCORE
from cebra_core.figures.interactive import plot_embeddings_3d, write_html
from cebra_core.figures.plots import (
    embedding_panels,
    plot_consistency_comparison,
    plot_embedding_grid,
    plot_loss_curves,
    plot_new_session,
    plot_online,
    plot_summary,
    plot_sweep,
    save_figure,
)

log = logging.getLogger(__name__)

Path = str | os.PathLike


def _write(figure: Figure, png: Path, pdf: Path) -> None:
    save_figure(figure, png, formats=("png",))
    save_figure(figure, pdf, formats=("pdf",))


def _panels(single: Path, multi: Path, sessions: Sequence[str], colour_by: str | Sequence[str]):
    """The single- and multi-session panels of the embedding figures, coloured by ``colour_by`` (one colouring)."""
    (single_panels, colouring), (multi_panels, _) = (embedding_panels(pd.read_parquet(path), sessions, colour_by)
                                                     for path in (single, multi))
    return single_panels, multi_panels, colouring


def embeddings(*, single: Path, multi: Path, png: Path, pdf: Path, sessions: Sequence[str],
               colour_by: str | Sequence[str] = "position") -> None:
    """The 2 x S embedding grid: aligned single-session fits on top, the multi-session fit below,
    coloured by ``colour_by`` (a label column, or two for the angle of a 2-D position)."""
    single_panels, multi_panels, colouring = _panels(single, multi, sessions, colour_by)
    _write(plot_embedding_grid(single_panels, multi_panels, colouring=colouring), png, pdf)


def embeddings_3d(*, single: Path, multi: Path, html: Path, session: str, sessions: Sequence[str],
                  colour_by: str | Sequence[str] = "position") -> None:
    """One session's interactive 3-D embeddings (aligned single-session beside multi-session), offline
    HTML, coloured as the static figure."""
    single_panels, multi_panels, colouring = _panels(single, multi, sessions, colour_by)
    page = write_html(plot_embeddings_3d(session, single_panels, multi_panels, colouring=colouring), html,
                      div_id=f"embeddings-3d-{session}")
    log.info("wrote %s (%.1f MB)", page, page.stat().st_size / 1e6)


def consistency(table: Path, *, png: Path, pdf: Path, sessions: Sequence[str], seed: int) -> None:
    """The two consistency heatmaps (single- vs multi-session) of one seed."""
    scores = pd.read_parquet(table)
    scores = scores[scores["seed"] == seed]
    panels = [(part["score"].to_numpy(), part[["source", "target"]].to_numpy(), list(sessions))
              for part in (scores[scores["kind"] == kind] for kind in ("single", "multi"))]
    label = str(scores["label"].iloc[0])
    titles = (f"single animal (on {label})", f"multi-animal (on {label})")
    _write(plot_consistency_comparison(*panels, titles=titles), png, pdf)


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


def summary(statistics: Path, *, png: Path, pdf: Path, sessions: Sequence[str],
            decode: Mapping[str, str] | None = None) -> None:
    """Consistency per pair over seeds with the paired test, and held-out decoding per session of the
    label column and metric ``decode`` ({column, metric}) beside its chance level."""
    decode = dict(decode or DEFAULT_SCORE)
    _write(plot_summary(pd.read_parquet(statistics), sessions, decode["column"], decode["metric"]), png, pdf)


def new_session(table: Path, *, png: Path, pdf: Path, held_out: str, decode: Mapping[str, str] | None = None) -> None:
    """The held-out session's consistency by kind of embedding, its decoding of the label column and
    metric ``decode`` ({column, metric}) beside."""
    decode = dict(decode or DEFAULT_SCORE)
    scores = pd.read_parquet(table)
    kinds = list(dict.fromkeys(scores["kind"]))
    consistency_ = {kind: scores.query("kind == @kind and measure == 'consistency'")["value"].to_numpy() for kind in kinds}
    chosen = scores[(scores["measure"] == decode["metric"]) & (scores["column"] == decode["column"])]
    decoded = {kind: float(chosen.loc[chosen["kind"] == kind, "value"].mean()) for kind in kinds}
    label = str(scores.loc[scores["measure"] == "consistency", "column"].iloc[0])
    _write(plot_new_session(consistency_, decoded, held_out=held_out,
                            decoding_label=f"{decode['metric'].replace('_', ' ')} of {decode['column']}",
                            consistency_label=label), png, pdf)


def sweep(table: Path, *, png: Path, pdf: Path, grid_keys: Sequence[str]) -> None:
    """A sweep's scores against each grid parameter, mean ± sd over seeds."""
    _write(plot_sweep(pd.read_parquet(table), grid_keys), png, pdf)


def online(table: Path, *, png: Path, pdf: Path) -> None:
    """A new animal online: decoding of the streamed part against the seconds adapted on, latency per bin."""
    _write(plot_online(pd.read_parquet(table)), png, pdf)
