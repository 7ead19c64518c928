"""Interactive 3-D embeddings (plotly): one self-contained HTML page per rat, single and multi side by side.

The notebook shows its embeddings with ``%matplotlib notebook`` so that readers can rotate the point
clouds; these pages do the same in any browser, offline: plotly's JavaScript is embedded in the page
(no CDN). Colours follow the static figure (``cebra_core.figures.plots``): position on the track, one colour
map per running direction, one colour range for all panels. Long sessions are subsampled evenly in
time (deterministic, no RNG) to at most ``MAX_POINTS_PER_PANEL`` points per panel, which keeps a page
under ~10 MB with the full-size rats.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib import colormaps
from plotly.subplots import make_subplots

from cebra_core.sessions.files import atomic_output
from cebra_core.figures.plots import LEFT_CMAP, RIGHT_CMAP, check_panel
from cebra_core.sessions.rats import BIN_SECONDS

__all__ = ["MAX_POINTS_PER_PANEL", "colorscale", "plot_embeddings_3d", "subsample", "write_html"]

# At most this many points per panel (3-D scatter). Each point costs ~40 bytes in the page (x, y, z,
# colour, time and position as base64 float32), so two full panels add ~1.6 MB to plotly's ~4.8 MB
# of JavaScript: a page stays under ~6.5 MB whatever the session length. The full-size rats have
# 6,577 to 47,431 bins; only cicero (47,431) is thinned, to every 2nd-3rd bin.
MAX_POINTS_PER_PANEL = 20_000
COLORSCALE_STEPS = 16  # samples of a matplotlib colour map in its plotly colour scale
POINT_SIZE = 2  # px
HEIGHT = 620  # px; the width follows the browser window


def subsample(n: int, max_points: int = MAX_POINTS_PER_PANEL) -> np.ndarray:
    """Indices of at most ``max_points`` of ``n`` time bins, evenly spaced in time (first and last kept)."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    return np.round(np.linspace(0, n - 1, max_points)).astype(np.int64)


def colorscale(cmap: str, steps: int = COLORSCALE_STEPS) -> list[list]:
    """A matplotlib colour map as a plotly colour scale ([[fraction, 'rgb(r, g, b)'], ...])."""
    colors = colormaps[cmap](np.linspace(0.0, 1.0, steps))[:, :3]
    return [[float(f), "rgb({}, {}, {})".format(*(int(round(255 * c)) for c in rgb))]
            for f, rgb in zip(np.linspace(0.0, 1.0, steps), colors)]


def _panels(rat: str, single: Mapping[str, tuple] | None, multi: Mapping[str, tuple] | None
            ) -> list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """[(label, (embedding, position, right))] of the rat's panels: Single, then Multi."""
    panels = [(label, check_panel(f"{label}-{rat}", data[rat]))
              for label, data in (("Single", single), ("Multi", multi)) if data and rat in data]
    if not panels:
        raise ValueError(f"Nothing to plot for rat {rat!r}: it is in neither the single nor the multi embeddings.")
    return panels


def plot_embeddings_3d(
    rat: str,
    single: Mapping[str, tuple] | None,
    multi: Mapping[str, tuple] | None,
    max_points: int = MAX_POINTS_PER_PANEL,
    bin_seconds: float = BIN_SECONDS,
    position_label: str = "Position (m)",
) -> go.Figure:
    """Rotatable 3-D scatters of one rat: ``Single-<rat>`` (aligned) and ``Multi-<rat>`` side by side.

    ``single`` / ``multi`` map rat name -> (embedding (T, 3), position (T,), right (T,) bool), as for
    ``plots.plot_embedding_grid``; the colour range spans every rat of both (the static figure's
    scale). Each panel is subsampled with ``subsample(T, max_points)``; hovering a point shows the
    rat, its time (bin index x ``bin_seconds``) and its position. Clicking a running direction in
    the legend hides or shows it in both panels.
    """
    panels = _panels(rat, single, multi)
    everything = [v for data in (single, multi) if data for v in data.values()]
    lo = min(float(np.min(v[1])) for v in everything)
    hi = max(float(np.max(v[1])) for v in everything)

    fig = make_subplots(rows=1, cols=len(panels), specs=[[{"type": "scene"}] * len(panels)],
                        subplot_titles=[f"{label}-{rat}" for label, _ in panels], horizontal_spacing=0.02)
    directions = (("right", RIGHT_CMAP, "coloraxis"), ("left", LEFT_CMAP, "coloraxis2"))
    for col, (label, (emb, pos, right)) in enumerate(panels, start=1):
        keep = subsample(len(emb), max_points)
        emb, pos, right = emb[keep, :3].astype(np.float32), pos[keep].astype(np.float32), right[keep]
        seconds = (keep * bin_seconds).astype(np.float32)
        for direction, _, axis in directions:
            mask = right if direction == "right" else ~right
            fig.add_trace(go.Scatter3d(
                x=emb[mask, 0], y=emb[mask, 1], z=emb[mask, 2], mode="markers",
                marker={"size": POINT_SIZE, "color": pos[mask], "coloraxis": axis, "line": {"width": 0}},
                customdata=np.stack([seconds[mask], pos[mask]], axis=1),
                hovertemplate=(f"<b>{rat}</b> ({label.lower()})<br>"
                               "time %{customdata[0]:.3f} s<br>position %{customdata[1]:.3f} m"
                               f"<extra>{direction}-running</extra>"),
                name=f"{direction}-running", legendgroup=direction, showlegend=col == 1,
            ), row=1, col=col)

    hidden = {"visible": False, "showbackground": False, "showgrid": False, "zeroline": False}
    fig.update_scenes(xaxis=hidden, yaxis=hidden, zaxis=hidden, aspectmode="cube")
    for (direction, cmap, axis), x in zip(directions, (0.27, 0.73)):
        fig.update_layout({axis: {
            "colorscale": colorscale(cmap), "cmin": lo, "cmax": hi,
            "colorbar": {"orientation": "h", "x": x, "y": -0.02, "len": 0.4, "thickness": 12,
                         "title": {"text": f"{position_label}, {direction}-running", "side": "bottom"}},
        }})
    fig.update_layout(
        title={"text": f"{rat}: embeddings (drag to rotate, scroll to zoom)", "x": 0.5, "y": 0.97,
               "yanchor": "top"},
        height=HEIGHT, margin={"l": 10, "r": 10, "t": 110, "b": 70}, paper_bgcolor="white",
        legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": 1.1, "yanchor": "bottom",
                "itemsizing": "constant", "title": {"text": "click to hide or show:"}},
    )
    return fig


def write_html(fig: go.Figure, path: str | os.PathLike, div_id: str = "embeddings-3d") -> Path:
    """Write ``fig`` as one self-contained HTML page (plotly.js embedded: opens offline), atomically.

    A fixed ``div_id`` (plotly picks a random one) makes reruns byte-identical; the file gets the
    usual mode (0644 under the default umask), as every output of `cebra_core.sessions.files.atomic_output`.
    """
    path = Path(path)
    html = fig.to_html(include_plotlyjs=True, full_html=True, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})
    with atomic_output(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path
