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
import seaborn as sns
from matplotlib import colormaps
from plotly.subplots import make_subplots

from cebra_core.sessions.files import atomic_output
from cebra_core.figures.plots import CYCLIC_CMAP, LEFT_CMAP, POSITION, RIGHT_CMAP, Colouring, check_panel
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
            ) -> list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]]:
    """[(label, (embedding, colour values, right flag or None))] of the session's panels: Single, then Multi."""
    panels = [(label, check_panel(f"{label}-{rat}", data[rat]))
              for label, data in (("Single", single), ("Multi", multi)) if data and rat in data]
    if not panels:
        raise ValueError(f"Nothing to plot for session {rat!r}: it is in neither the single nor the multi embeddings.")
    return panels


def _rgb(colour) -> str:
    return "rgb({}, {}, {})".format(*(int(round(255 * c)) for c in colour[:3]))


def plot_embeddings_3d(
    rat: str,
    single: Mapping[str, tuple] | None,
    multi: Mapping[str, tuple] | None,
    max_points: int = MAX_POINTS_PER_PANEL,
    bin_seconds: float = BIN_SECONDS,
    colouring: Colouring = POSITION,
) -> go.Figure:
    """Rotatable 3-D scatters of one session: ``Single-<session>`` (aligned) and ``Multi-<session>`` side by side.

    ``single`` / ``multi`` map session -> (embedding (T, 3), colour values (T,), right flag (T,) bool
    or None), as for ``plots.plot_embedding_grid``, coloured as ``colouring`` says (the colour range,
    or the classes, span every session of both: the static figure's scale). Each panel is subsampled
    with ``subsample(T, max_points)``; hovering a point shows the session, its time (bin index x
    ``bin_seconds``) and its colour value. Clicking a legend entry (a running direction, or a class)
    hides or shows it in both panels.
    """
    panels = _panels(rat, single, multi)
    everything = [v for data in (single, multi) if data for v in data.values()]
    lo = min(float(np.min(v[1])) for v in everything)
    hi = max(float(np.max(v[1])) for v in everything)
    split = all(v[2] is not None for v in everything)

    fig = make_subplots(rows=1, cols=len(panels), specs=[[{"type": "scene"}] * len(panels)],
                        subplot_titles=[f"{label}-{rat}" for label, _ in panels], horizontal_spacing=0.02)
    if colouring.kind == "discrete":
        classes = sorted(set(np.concatenate([np.unique(v[1]) for v in everything]).tolist()))
        colours = {k: _rgb(c) for k, c in zip(classes, sns.color_palette("colorblind" if len(classes) <= 10 else "husl",
                                                                          len(classes)))}
        groups = [(f"{colouring.name} {k}", lambda values, right, k=k: values == k, None, colours[k]) for k in classes]
    elif split:
        groups = [("right-running", lambda values, right: right, "coloraxis", None),
                  ("left-running", lambda values, right: ~right, "coloraxis2", None)]
    else:
        groups = [(colouring.name, lambda values, right: np.ones(len(values), bool), "coloraxis", None)]
    for col, (label, (emb, values, right)) in enumerate(panels, start=1):
        keep = subsample(len(emb), max_points)
        emb, values = emb[keep, :3].astype(np.float32), values[keep].astype(np.float32)
        right = None if right is None else right[keep]
        seconds = (keep * bin_seconds).astype(np.float32)
        for name, select, axis, colour in groups:
            mask = select(values, right)
            marker = {"size": POINT_SIZE, "line": {"width": 0}}
            marker.update({"color": colour} if axis is None else {"color": values[mask], "coloraxis": axis})
            fig.add_trace(go.Scatter3d(
                x=emb[mask, 0], y=emb[mask, 1], z=emb[mask, 2], mode="markers", marker=marker,
                customdata=np.stack([seconds[mask], values[mask]], axis=1),
                hovertemplate=(f"<b>{rat}</b> ({label.lower()})<br>"
                               "time %{customdata[0]:.3f} s<br>" + f"{colouring.name} " + "%{customdata[1]:.3f}"
                               f"<extra>{name}</extra>"),
                name=name, legendgroup=name, showlegend=col == 1,
            ), row=1, col=col)

    hidden = {"visible": False, "showbackground": False, "showgrid": False, "zeroline": False}
    fig.update_scenes(xaxis=hidden, yaxis=hidden, zaxis=hidden, aspectmode="cube")
    if colouring.kind != "discrete":
        bars = ([("coloraxis", RIGHT_CMAP, ", right-running", 0.27), ("coloraxis2", LEFT_CMAP, ", left-running", 0.73)]
                if split else [("coloraxis", CYCLIC_CMAP if colouring.kind == "cyclic" else LEFT_CMAP, "", 0.5)])
        for axis, cmap, direction, x in bars:
            fig.update_layout({axis: {
                "colorscale": colorscale(cmap), "cmin": lo, "cmax": hi,
                "colorbar": {"orientation": "h", "x": x, "y": -0.02, "len": 0.4, "thickness": 12,
                             "title": {"text": f"{colouring.name}{direction}", "side": "bottom"}},
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
