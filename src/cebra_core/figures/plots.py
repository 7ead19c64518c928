"""Figures of the demo: embedding grid, consistency heatmaps, loss curves, a new session's scores,
a parameter sweep's scores; atomic PNG + PDF saving.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, no display), so they
render headless in workflow scripts and are freed when dropped. ``plot_consistency`` follows
CEBRA 0.6.1's ``cebra.plot_consistency`` (row = predictor, column = target, values x 100).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the "3d" projection)

from cebra_core.analysis.tables import embedding_columns, split_sessions
from cebra_core.sessions.files import atomic_output

__all__ = [
    "consistency_matrix",
    "plot_consistency",
    "plot_consistency_comparison",
    "plot_embedding",
    "plot_embedding_grid",
    "plot_loss_curves",
    "plot_new_session",
    "plot_summary",
    "plot_sweep",
    "embedding_panels",
    "save_figure",
]

CONSISTENCY_ROW_LABEL = "predictor (row)"
CONSISTENCY_COLUMN_LABEL = "predicted (column): R² of the row's linear map"
RIGHT_CMAP = "cool"
LEFT_CMAP = "viridis"

# Fixed metadata so reruns of a workflow write byte-identical vector files.
_METADATA = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def save_figure(fig: Figure, path: str | os.PathLike, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 200) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats`` (default PNG + PDF), atomically.

    ``path`` may carry an image suffix or none: ``fig.png`` and ``fig`` both give fig.png + fig.pdf.
    Each file goes through `cebra_core.sessions.files.atomic_output`, so an interrupted job never leaves a
    half-written figure behind.
    """
    path = Path(path)
    image_suffixes = {"png", "pdf", "svg", "eps", "ps", "jpg", "jpeg", "tif", "tiff", *(f.lower() for f in formats)}
    base = path.with_suffix("") if path.suffix.lstrip(".").lower() in image_suffixes else path
    written = []
    for fmt in formats:
        target = base.with_name(f"{base.name}.{fmt}")
        with atomic_output(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_METADATA.get(fmt))
        written.append(target)
    return written


def _clean_3d(ax) -> None:
    """Demo style: no panes, grid, ticks or axis lines; just the point cloud."""
    ax.grid(False)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.pane.fill = False
        axis.pane.set_edgecolor("none")
        axis.line.set_color("none")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_zticks([])
    ax.set_box_aspect((1, 1, 1))


def check_panel(name: str, value) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unpack (embedding (T, >=3), position (T,), right (T,) bool) and validate lengths."""
    if len(value) != 3:
        raise ValueError(f"{name}: expected (embedding, position, right), got {len(value)} items")
    emb, pos, right = (np.asarray(v) for v in value)
    if emb.ndim != 2 or emb.shape[1] < 3:
        raise ValueError(f"{name}: embedding must be (T, 3) or wider, got shape {emb.shape}")
    if pos.ndim != 1 or right.ndim != 1 or not len(emb) == len(pos) == len(right):
        raise ValueError(
            f"{name}: embedding {emb.shape}, position {pos.shape} and right {right.shape} must be "
            "(T, 3), (T,), (T,)")
    return emb, pos, right.astype(bool)


def plot_embedding(ax, embedding: npt.ArrayLike, position: npt.ArrayLike, right: npt.ArrayLike,
                   norm: Normalize | None = None, s: float = 0.5, title: str | None = None):
    """3-D scatter of one embedding on a 3-D ``ax``; colour = position, cmap by running direction."""
    emb, pos, right = check_panel(title or "embedding", (embedding, position, right))
    norm = norm or Normalize(float(pos.min()), float(pos.max()))
    for mask, cmap in ((right, RIGHT_CMAP), (~right, LEFT_CMAP)):
        ax.scatter(emb[mask, 0], emb[mask, 1], emb[mask, 2], c=pos[mask], cmap=cmap, norm=norm,
                   s=s, linewidths=0, depthshade=False, rasterized=True)
    _clean_3d(ax)
    if title:
        ax.set_title(title, fontsize=12, pad=0)
    return ax


def plot_embedding_grid(
    single: Mapping[str, tuple] | None,
    multi: Mapping[str, tuple] | None,
    s: float = 0.5,
    position_label: str = "Position (m)",
) -> Figure:
    """The demo's embedding figure: single-session (aligned) on top, multi-session below, one column per rat.

    ``single`` / ``multi`` map rat name -> (embedding (T, 3), position (T,), right (T,) bool);
    left-running is ``~right``. Titles are ``Single-<rat>`` / ``Multi-<rat>``; both rows share one
    position scale, shown by a colour bar per running direction.
    """
    rows = [(label, data) for label, data in (("Single", single), ("Multi", multi)) if data]
    if not rows:
        raise ValueError("nothing to plot: both single and multi are empty")
    rats: list[str] = []
    for _, data in rows:
        rats += [r for r in data if r not in rats]
    checked = {(label, rat): check_panel(f"{label}-{rat}", data[rat])
               for label, data in rows for rat in data}
    lo = min(float(v[1].min()) for v in checked.values())
    hi = max(float(v[1].max()) for v in checked.values())
    norm = Normalize(lo, hi)

    fig = Figure(figsize=(3.2 * len(rats), 3.2 * len(rows) + 0.9))
    grid = fig.add_gridspec(len(rows) + 1, len(rats), height_ratios=[1] * len(rows) + [0.07],
                            hspace=0.12, wspace=0.02, left=0.02, right=0.98, top=0.95, bottom=0.08)
    for r, (label, data) in enumerate(rows):
        for c, rat in enumerate(rats):
            if rat not in data:
                continue
            ax = fig.add_subplot(grid[r, c], projection="3d")
            emb, pos, right = checked[(label, rat)]
            plot_embedding(ax, emb, pos, right, norm=norm, s=s, title=f"{label}-{rat}")

    # One colour bar per running direction, side by side under the grid.
    bar_row = grid[len(rows), :].subgridspec(1, 5, width_ratios=[0.6, 1, 0.3, 1, 0.6], wspace=0.0)
    for slot, cmap, direction in ((1, RIGHT_CMAP, "right-running"), (3, LEFT_CMAP, "left-running")):
        cax = fig.add_subplot(bar_row[0, slot])
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
        bar.outline.set_visible(False)
        bar.set_label(f"{position_label}, {direction}", fontsize=10)
        bar.ax.tick_params(labelsize=9, length=2)
    return fig


def _consistency_labels(scores: np.ndarray, pairs: np.ndarray, datasets: np.ndarray) -> np.ndarray:
    """Axis labels as CEBRA chooses them: ``datasets`` when they fit, else the ids in ``pairs``."""
    compared = sorted(set(pairs[:, 0].tolist()))
    k = len(datasets)
    if len(scores) == k * k - k and all(d in compared for d in datasets.tolist()):
        return datasets
    if len(scores) == len(compared) ** 2 - len(compared) and not any(d in compared for d in datasets.tolist()):
        return np.array(compared)
    raise ValueError(
        f"scores ({len(scores)}), datasets ({k}) and pairs ({len(pairs)}) do not fit together: "
        "expected K*K - K scores for K datasets; pass the three outputs of consistency_score")


def consistency_matrix(scores: npt.ArrayLike, pairs: npt.ArrayLike, datasets: npt.ArrayLike
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(K x K matrix of scores x 100, row = predictor, column = target, NaN diagonal; axis labels)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    pairs = np.asarray(pairs)
    if pairs.ndim == 3:  # several runs of pairs, as CEBRA accepts: use the first
        pairs = pairs[0]
    pairs = pairs.reshape(-1, 2)
    datasets = np.asarray(datasets).reshape(-1)
    if len(pairs) != len(scores):
        raise ValueError(f"got {len(scores)} scores but {len(pairs)} pairs; they must match one to one")
    labels = _consistency_labels(scores, pairs, datasets)
    lookup = {tuple(p): v for p, v in zip(pairs.tolist(), scores)}
    mat = np.full((len(labels), len(labels)), np.nan)
    for i, a in enumerate(labels.tolist()):
        for j, b in enumerate(labels.tolist()):
            if i != j:
                if (a, b) not in lookup:
                    raise ValueError(f"no score for the pair ({a!r}, {b!r})")
                mat[i, j] = lookup[(a, b)]
    return mat * 100, labels


def plot_consistency(
    scores: npt.ArrayLike,
    pairs: npt.ArrayLike,
    datasets: npt.ArrayLike,
    ax: Axes | None = None,
    cmap: str = "binary",
    text_color: str | None = "white",
    colorbar_label: str | None = "Consistency score (%)",
    title: str | None = None,
    figsize: tuple[float, float] = (5, 5),
    dpi: float = 100,
    **kwargs,
) -> Axes:
    """Consistency heatmap as ``cebra.plot_consistency``: cell [i, j] = score of (i predicts j) x 100.

    Values are printed with one decimal in ``text_color``; the diagonal is empty; extra kwargs
    (e.g. ``vmin=0, vmax=100``) go to ``imshow``. Returns the Axes (``ax.figure`` to save it).
    """
    matrix, labels = consistency_matrix(scores, pairs, datasets)
    if ax is None:
        ax = Figure(figsize=figsize, dpi=dpi).add_subplot()
    im = ax.imshow(matrix, cmap=cmap, **kwargs)
    if text_color is not None:
        for (i, j), z in np.ndenumerate(matrix):
            if not np.isnan(z):
                ax.text(j, i, f"{z:0.1f}", ha="center", va="center", color=text_color)
    if title is not None:
        ax.set_title(title)
    if colorbar_label is not None:
        bar = ax.figure.colorbar(im, ax=ax)
        bar.outline.set_visible(False)
        bar.ax.set_ylabel(colorbar_label, rotation=-90, va="bottom")
    names = [str(x) for x in labels.tolist()]
    ax.set_xticks(np.arange(len(names)), labels=names)
    ax.set_yticks(np.arange(len(names)), labels=names)
    ax.tick_params(left=False, bottom=False, labelleft=True, labelbottom=True)
    for tick in ax.get_yticklabels():
        tick.set_rotation(90)
        tick.set_ha("center")
        tick.set_rotation_mode("anchor")
    ax.tick_params(axis="y", which="major", pad=10)
    ax.spines[:].set_visible(False)
    ax.tick_params(which="minor", bottom=False, left=False)
    return ax


def plot_consistency_comparison(
    single: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    multi: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    titles: tuple[str, str] = ("single animal", "multi-animal"),
    vmin: float = 0.0,
    vmax: float = 100.0,
) -> Figure:
    """The demo's side-by-side consistency heatmaps; each of ``single``/``multi`` is ``(scores, pairs, ids)``.

    Both panels share one colour scale (``vmin``..``vmax``, in %) so their shades compare. The axes
    say which way a cell reads: the row's embedding predicts the column's.
    """
    fig = Figure(figsize=(10, 4.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (scores, pairs, ids), title in zip(axes, (single, multi), titles):
        plot_consistency(scores, pairs, ids, ax=ax, title=title, vmin=vmin, vmax=vmax)
        ax.set_ylabel(CONSISTENCY_ROW_LABEL)
        ax.set_xlabel(CONSISTENCY_COLUMN_LABEL)
    return fig


def plot_loss_curves(histories: Mapping[str, npt.ArrayLike], smooth: int | None = 100,
                     ylabel: str = "InfoNCE loss", note: str | None = None) -> Figure:
    """Training loss per model vs iteration: raw values faint, a running mean over ``smooth`` steps on top.

    ``note``, if given, is printed under the axes (e.g. why curves sit at different heights).
    """
    if not histories:
        raise ValueError("no loss histories given")
    fig = Figure(figsize=(8, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colors = sns.color_palette("colorblind", len(histories))
    for color, (name, values) in zip(colors, histories.items()):
        y = np.asarray(values, dtype=np.float64).reshape(-1)
        if y.size == 0:
            raise ValueError(f"loss history {name!r} is empty")
        x = np.arange(1, len(y) + 1)
        if smooth and smooth > 1 and len(y) >= smooth:
            ax.plot(x, y, color=color, alpha=0.25, linewidth=0.6)
            kernel = np.ones(smooth) / smooth
            ax.plot(x[smooth - 1:], np.convolve(y, kernel, mode="valid"), color=color, linewidth=1.6,
                    label=name)
        else:
            ax.plot(x, y, color=color, linewidth=1.4, label=name)
    ax.set_xlabel("Iteration")
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, never on them
    if note:
        fig.supxlabel(note, fontsize=8, color="0.3", wrap=True)
    sns.despine(ax=ax)
    return fig


def plot_new_session(consistency: Mapping[str, Sequence[float]], decoding_error_cm: Mapping[str, float],
                     held_out: str) -> Figure:
    """A new session's consistency with the trained rats and its decoding error, by kind of embedding.

    ``consistency`` maps kind -> the session's scores against each trained rat, both directions
    (fractions): the bar is their mean, the dots the single scores, in %. ``decoding_error_cm``
    maps kind -> median position error of that kind's decoder (cm), shown beside. A kind keeps
    its colour in both panels.
    """
    if not consistency:
        raise ValueError("no consistency scores given")
    kinds = list(dict.fromkeys([*consistency, *decoding_error_cm]))
    colors = dict(zip(kinds, sns.color_palette("colorblind", len(kinds))))
    fig = Figure(figsize=(4 + 1.1 * len(kinds), 3.8), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[len(consistency), max(len(decoding_error_cm), 1)])
    rng = np.random.default_rng(0)  # dot jitter only; fixed so the figure is reproducible
    for i, (kind, values) in enumerate(consistency.items()):
        scores = 100 * np.asarray(values, dtype=np.float64).reshape(-1)
        if scores.size == 0:
            raise ValueError(f"no consistency scores for {kind!r}")
        mean = float(scores.mean())
        left.bar(i, mean, width=0.7, color=colors[kind], label=kind)
        left.scatter(i + rng.uniform(-0.18, 0.18, scores.size), scores, s=14, color="black", zorder=3, linewidths=0)
        left.text(i, max(mean, float(scores.max()), 0) + 2, f"{mean:.1f}", ha="center", va="bottom", fontsize=9)
    left.set_xticks(np.arange(len(consistency)), labels=list(consistency))
    left.set_ylim(min(0.0, float(left.get_ylim()[0])), 110)
    left.set_ylabel("Consistency with trained rats (%)")
    left.set_title(f"{held_out}: consistency", fontsize=11)
    for i, (kind, error) in enumerate(decoding_error_cm.items()):
        right.bar(i, float(error), width=0.7, color=colors[kind])
        right.text(i, float(error), f"{float(error):.1f}", ha="center", va="bottom", fontsize=9)
    right.set_xticks(np.arange(len(decoding_error_cm)), labels=list(decoding_error_cm))
    right.set_ylabel("Median decoding error (cm)")
    right.set_title(f"{held_out}: position decoding", fontsize=11)
    for ax in (left, right):
        ax.tick_params(axis="x", length=0)
        sns.despine(ax=ax)
    return fig


def plot_summary(statistics: pd.DataFrame, sessions: Sequence[str]) -> Figure:
    """Seeds and pairs at a glance, from ``cebra_core.analysis.stats.summary_table``'s table.

    Left: each ordered rat pair's consistency, single- vs multi-session (mean ± sd over seeds,
    a line per pair), with the paired t-test in the title. Right: held-out decoding error per rat
    (within-rat, test parts), mean ± sd over seeds and folds.
    """
    fig = Figure(figsize=(10, 4.2), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.6])
    kinds = ["single", "multi"]
    colors = dict(zip(kinds, sns.color_palette("colorblind", 2)))
    pairs = statistics[statistics["measure"] == "consistency_pair"].pivot(index="subject", columns="kind")
    for subject, row in pairs.iterrows():
        means = [100 * row[("mean", k)] for k in kinds]
        left.plot([0, 1], means, color="0.7", lw=0.8, zorder=1)
        for x, k in enumerate(kinds):
            sd = row[("sd", k)]
            left.errorbar(x, 100 * row[("mean", k)], yerr=None if np.isnan(sd) else 100 * sd, fmt="o",
                          color=colors[k], ms=4, capsize=2, zorder=2)
    left.set_xticks([0, 1], labels=kinds)
    left.set_xlim(-0.5, 1.5)
    left.set_ylabel("Consistency of a rat pair (%)")
    test = statistics[statistics["measure"] == "consistency_paired_test"]
    title = "Consistency per ordered pair"
    if len(test):
        t = test.iloc[0]
        title += f"\npaired t({int(t['n']) - 1}) = {t['statistic']:.2f}, p = {t['p_value']:.3g}"
    left.set_title(title, fontsize=10)
    errors = statistics[statistics["measure"] == "decoding_error_cm"]
    width = 0.38
    for j, kind in enumerate(kinds):
        part = errors[errors["kind"] == kind].set_index("subject").reindex(list(sessions))
        x = np.arange(len(sessions)) + (j - 0.5) * width
        sd = np.nan_to_num(part["sd"].to_numpy(dtype=np.float64))
        right.bar(x, part["mean"].to_numpy(dtype=np.float64), width, yerr=sd, capsize=2, color=colors[kind], label=kind)
    right.set_xticks(np.arange(len(sessions)), labels=list(sessions))
    right.set_ylabel("Median decoding error (cm)")
    n = int(errors["n"].max()) if len(errors) else 0
    right.set_title(f"Held-out decoding (test parts; mean ± sd of {n} fits)", fontsize=10)
    right.legend(frameon=False)
    return fig


SWEEP_MEASURES = {"validation_error_cm": "Validation decoding error (cm)",
                  "validation_consistency": "Validation consistency (%)", "final_loss": "Final training loss"}


def plot_sweep(table: pd.DataFrame, keys: Sequence[str]) -> Figure:
    """A sweep's scores against each grid parameter, from ``cebra_core.analysis.sweep.sweep_table``'s table.

    A column per parameter with more than one value, a row per measure (validation decoding error,
    validation consistency, final training loss): each grid point is a dot at its value, mean ± sd
    over seeds; points that share the other parameters are joined by a line (a colour each). The
    chosen point is ringed. The loss row shows what CEBRA's GridSearch would choose by.
    """
    rows = table[table["candidate"]]
    keys = list(keys)
    varied = [k for k in keys if rows[k].nunique() > 1] or keys[:1]
    measures = [m for m in SWEEP_MEASURES if rows[m].notna().any()]
    summary = rows.groupby("point", sort=False).agg(
        **{k: (k, "first") for k in keys}, chosen=("chosen", "any"),
        **{f"{m} mean": (m, "mean") for m in measures}, **{f"{m} sd": (m, "std") for m in measures})
    fig = Figure(figsize=(1.0 + 3.3 * len(varied), 0.6 + 2.6 * len(measures)), dpi=100, layout="constrained")
    axes = np.asarray(fig.subplots(len(measures), len(varied), squeeze=False))
    for j, key in enumerate(varied):
        others = [k for k in keys if k != key]
        values = list(dict.fromkeys(summary[key]))
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)
        position = {v: (float(v) if numeric else float(i)) for i, v in enumerate(values)}
        lines = list(summary.groupby(others, sort=False)) if others else [((), summary)]
        colors = sns.color_palette("colorblind", len(lines))
        for i, measure in enumerate(measures):
            ax = axes[i, j]
            scale = 100.0 if measure == "validation_consistency" else 1.0
            for (line, points), color in zip(lines, colors):
                points = points.assign(x=points[key].map(position)).sort_values("x")
                y, sd = scale * points[f"{measure} mean"], scale * points[f"{measure} sd"].fillna(0.0)
                label = ", ".join(f"{k}={v}" for k, v in zip(others, np.atleast_1d(line))) or None
                ax.errorbar(points["x"], y, yerr=sd, fmt="o-", color=color, ms=4, lw=1, capsize=2, label=label)
                ax.plot(points["x"][points["chosen"]], y[points["chosen"]], "o", ms=12, mfc="none", mec="black",
                        mew=1.5, zorder=3)
            if numeric and min(values) > 0 and max(values) / min(values) >= 10:
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(list(position.values()), labels=[str(v) for v in values])
            ax.set_xlabel(key if i == len(measures) - 1 else "")
            ax.set_ylabel(SWEEP_MEASURES[measure] if j == 0 else "")
            sns.despine(ax=ax)
        if len(lines) > 1:
            axes[0, j].legend(fontsize=7, frameon=False)
    n = table.groupby("point")["seed"].nunique().max()
    fig.suptitle(f"Parameter sweep: mean ± sd over {n} seed(s); ringed: the chosen point (by validation)", fontsize=10)
    return fig


def embedding_panels(table: pd.DataFrame, sessions: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{session: (first 3 embedding columns, position, right-running flag)} of an embedding table:
    the panels of the embedding figures (static and interactive)."""
    z = embedding_columns(table)[:3]
    return {
        name: (part[z].to_numpy(), part["position"].to_numpy(), (part["direction"] == "right").to_numpy())
        for name, part in split_sessions(table, sessions).items()
    }
