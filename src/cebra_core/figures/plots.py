"""Figures of the demo: embedding grid, consistency heatmaps, loss curves, a new session's scores,
a parameter sweep's scores; atomic PNG + PDF saving.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, no display), so they
render headless in workflow scripts and are freed when dropped. ``plot_consistency`` follows
CEBRA 0.6.1's ``cebra.plot_consistency`` (row = predictor, column = target, values x 100).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the "3d" projection)

from cebra_core.analysis.protocols import DEFAULT_SCORE
from cebra_core.analysis.tables import embedding_columns, is_discrete, label_columns, split_sessions
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
LEFT_CMAP = "viridis"  # also the colour map of a continuous label without a direction split
CYCLIC_CMAP = "twilight"  # an angle

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


@dataclass(frozen=True)
class Colouring:
    """How the embedding figures colour the points: by a label's values, ``kind`` continuous (one
    colour map and bar), discrete (a colour per class, a legend) or cyclic (an angle, a cyclic map);
    a panel whose third item is a right-running flag splits a continuous label into two colour maps
    (the rat track's position, as CEBRA's demo draws it). ``name`` titles the bar or legend."""

    name: str = "Position (m)"
    kind: str = "continuous"


POSITION = Colouring()


def check_panel(name: str, value) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Unpack (embedding (T, >=3), colour values (T,), right-running flag (T,) bool or None) and validate lengths."""
    if len(value) != 3:
        raise ValueError(f"{name}: expected (embedding, colour values, right flag or None), got {len(value)} items")
    emb, values = np.asarray(value[0]), np.asarray(value[1])
    right = None if value[2] is None else np.asarray(value[2])
    if emb.ndim != 2 or emb.shape[1] < 3:
        raise ValueError(f"{name}: embedding must be (T, 3) or wider, got shape {emb.shape}")
    if values.ndim != 1 or len(values) != len(emb) or (right is not None and (right.ndim != 1 or len(right) != len(emb))):
        raise ValueError(
            f"{name}: embedding {emb.shape}, colour values {values.shape} and right flag "
            f"{None if right is None else right.shape} must be (T, 3), (T,), (T,) or None")
    return emb, values, None if right is None else right.astype(bool)


def _class_colours(classes: Sequence) -> dict:
    """A colour per class, colour-blind friendly, in class order."""
    return dict(zip(classes, sns.color_palette("colorblind" if len(classes) <= 10 else "husl", len(classes))))


def plot_embedding(ax, embedding: npt.ArrayLike, values: npt.ArrayLike, right: npt.ArrayLike | None,
                   norm: Normalize | None = None, s: float = 0.5, title: str | None = None,
                   colouring: Colouring = POSITION, classes: Sequence | None = None):  # fmt: skip
    """3-D scatter of one embedding on a 3-D ``ax``, coloured as ``colouring`` says (with a right
    flag: one colour map per running direction)."""
    emb, values, right = check_panel(title or "embedding", (embedding, values, right))
    if colouring.kind == "discrete":
        colours = _class_colours(classes if classes is not None else sorted(np.unique(values)))
        for klass, colour in colours.items():
            mask = values == klass
            ax.scatter(emb[mask, 0], emb[mask, 1], emb[mask, 2], color=colour, s=s, linewidths=0,
                       depthshade=False, rasterized=True)
    else:
        norm = norm or Normalize(float(values.min()), float(values.max()))
        groups = [(np.ones(len(emb), bool), CYCLIC_CMAP if colouring.kind == "cyclic" else LEFT_CMAP)] if right is None \
            else [(right, RIGHT_CMAP), (~right, LEFT_CMAP)]
        for mask, cmap in groups:
            ax.scatter(emb[mask, 0], emb[mask, 1], emb[mask, 2], c=values[mask], cmap=cmap, norm=norm,
                       s=s, linewidths=0, depthshade=False, rasterized=True)
    _clean_3d(ax)
    if title:
        ax.set_title(title, fontsize=12, pad=0)
    return ax


def plot_embedding_grid(
    single: Mapping[str, tuple] | None,
    multi: Mapping[str, tuple] | None,
    s: float = 0.5,
    colouring: Colouring = POSITION,
) -> Figure:
    """The demo's embedding figure: single-session (aligned) on top, multi-session below, one column per session.

    ``single`` / ``multi`` map session -> (embedding (T, 3), colour values (T,), right-running flag
    (T,) bool or None). Titles are ``Single-<session>`` / ``Multi-<session>``; both rows share one
    colour scale (one class colour each, for a discrete label), shown by a colour bar (one per
    running direction with a right flag) or a legend.
    """
    rows = [(label, data) for label, data in (("Single", single), ("Multi", multi)) if data]
    if not rows:
        raise ValueError("nothing to plot: both single and multi are empty")
    rats: list[str] = []
    for _, data in rows:
        rats += [r for r in data if r not in rats]
    checked = {(label, rat): check_panel(f"{label}-{rat}", data[rat])
               for label, data in rows for rat in data}
    everything = np.concatenate([v[1] for v in checked.values()])
    norm = Normalize(float(everything.min()), float(everything.max()))
    classes = sorted(np.unique(everything)) if colouring.kind == "discrete" else None
    split = all(v[2] is not None for v in checked.values())

    fig = Figure(figsize=(3.2 * len(rats), 3.2 * len(rows) + 0.9))
    grid = fig.add_gridspec(len(rows) + 1, len(rats), height_ratios=[1] * len(rows) + [0.07],
                            hspace=0.12, wspace=0.02, left=0.02, right=0.98, top=0.95, bottom=0.08)
    for r, (label, data) in enumerate(rows):
        for c, rat in enumerate(rats):
            if rat not in data:
                continue
            ax = fig.add_subplot(grid[r, c], projection="3d")
            emb, values, right = checked[(label, rat)]
            plot_embedding(ax, emb, values, right if split else None, norm=norm, s=s, title=f"{label}-{rat}",
                           colouring=colouring, classes=classes)

    bar_row = grid[len(rows), :].subgridspec(1, 5, width_ratios=[0.6, 1, 0.3, 1, 0.6], wspace=0.0)
    if colouring.kind == "discrete":  # a legend of the classes under the grid
        ax = fig.add_subplot(bar_row[0, :])
        ax.set_axis_off()
        handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=str(klass))
                   for klass, colour in _class_colours(classes).items()]
        ax.legend(handles=handles, title=colouring.name, loc="center", ncol=min(len(handles), 10), frameon=False)
        return fig
    bars = ([(1, RIGHT_CMAP, ", right-running"), (3, LEFT_CMAP, ", left-running")] if split
            else [(2, CYCLIC_CMAP if colouring.kind == "cyclic" else LEFT_CMAP, "")])
    for slot, cmap, direction in bars:  # one colour bar (per running direction) under the grid
        cax = fig.add_subplot(bar_row[0, slot] if split else bar_row[0, 1:4])
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
        bar.outline.set_visible(False)
        bar.set_label(f"{colouring.name}{direction}", fontsize=10)
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


def plot_new_session(consistency: Mapping[str, Sequence[float]], decoding: Mapping[str, float], held_out: str,
                     decoding_label: str = "median abs error of position", consistency_label: str = "position",
                     ) -> Figure:  # fmt: skip
    """A new session's consistency with the trained animals and its decoding, by kind of embedding.

    ``consistency`` maps kind -> the session's scores against each trained animal, both directions
    (fractions): the bar is their mean, the dots the single scores, in %. ``decoding`` maps kind ->
    that kind's decoder's score (``decoding_label`` says which), shown beside. A kind keeps its
    colour in both panels.
    """
    if not consistency:
        raise ValueError("no consistency scores given")
    kinds = list(dict.fromkeys([*consistency, *decoding]))
    colors = dict(zip(kinds, sns.color_palette("colorblind", len(kinds))))
    fig = Figure(figsize=(4 + 1.1 * len(kinds), 3.8), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[len(consistency), max(len(decoding), 1)])
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
    left.set_ylabel(f"Consistency with trained animals on {consistency_label} (%)")
    left.set_title(f"{held_out}: consistency", fontsize=11)
    for i, (kind, score) in enumerate(decoding.items()):
        right.bar(i, float(score), width=0.7, color=colors[kind])
        right.text(i, float(score), f"{float(score):.3g}", ha="center", va="bottom", fontsize=9)
    right.set_xticks(np.arange(len(decoding)), labels=list(decoding))
    right.set_ylabel(decoding_label[0].upper() + decoding_label[1:])
    right.set_title(f"{held_out}: decoding", fontsize=11)
    for ax in (left, right):
        ax.tick_params(axis="x", length=0)
        sns.despine(ax=ax)
    return fig


def plot_summary(statistics: pd.DataFrame, sessions: Sequence[str], column: str = DEFAULT_SCORE["column"],
                 metric: str = DEFAULT_SCORE["metric"]) -> Figure:
    """Seeds and pairs at a glance, from ``cebra_core.analysis.stats.summary_table``'s table.

    Left: each ordered pair's consistency, single- vs multi-session (mean ± sd over seeds, a line
    per pair), with the paired t-test in the title. Right: held-out decoding of the label ``column``
    by ``metric`` per session (within-session, test parts), mean ± sd over seeds and folds, its
    chance level (the decoder fitted on shuffled labels) as a grey tick over each bar.
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
    left.set_ylabel("Consistency of a pair of sessions (%)")
    test = statistics[statistics["measure"] == "consistency_paired_test"]
    title = "Consistency per ordered pair"
    if len(test):
        t = test.iloc[0]
        title += f"\npaired t({int(t['n']) - 1}) = {t['statistic']:.2f}, p = {t['p_value']:.3g}"
    left.set_title(title, fontsize=10)
    rows = statistics["label"] == column
    errors = statistics[rows & (statistics["measure"] == f"decoding_{metric}")]
    chance = statistics[rows & (statistics["measure"] == f"chance_{metric}")]
    width = 0.38
    for j, kind in enumerate(kinds):
        part = errors[errors["kind"] == kind].set_index("subject").reindex(list(sessions))
        level = chance[chance["kind"] == kind].set_index("subject").reindex(list(sessions))["mean"]
        x = np.arange(len(sessions)) + (j - 0.5) * width
        sd = np.nan_to_num(part["sd"].to_numpy(dtype=np.float64))
        right.bar(x, part["mean"].to_numpy(dtype=np.float64), width, yerr=sd, capsize=2, color=colors[kind], label=kind)
        right.hlines(level.to_numpy(dtype=np.float64), x - width / 2, x + width / 2, color="0.45", lw=1.5,
                     label="chance (shuffled labels)" if j == 0 else None)
    right.set_xticks(np.arange(len(sessions)), labels=list(sessions))
    right.set_ylabel(f"{metric.replace('_', ' ')} of {column}")
    n = int(errors["n"].max()) if len(errors) else 0
    right.set_title(f"Held-out decoding (test parts; mean ± sd of {n} fits)", fontsize=10)
    right.legend(frameon=False)
    return fig


def plot_online(table: pd.DataFrame) -> Figure:
    """A new animal online (`snakemake online`): the streamed part's decoding against the seconds of
    its data the causal model was adapted on, beside the offline score (the same adaptation into the
    centred leave-one-out fit, embedded in one batch) and the chance level; the latency per bin beside."""
    table = table.sort_values("seconds")
    column, metric, session = table["column"].iloc[0], table["metric"].iloc[0], table["session"].iloc[0]
    fig = Figure(figsize=(9, 3.8), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    colors = sns.color_palette("colorblind", 3)
    left.plot(table["seconds"], table["value"], "o-", color=colors[0], label="adapted causal model, streamed")
    left.plot(table["seconds"], table["offline_value"], "--", color=colors[1], label="offline (centred window, one batch)")
    left.plot(table["seconds"], table["chance"], ":", color="0.5", label="chance (shuffled labels)")
    left.set_xlabel(f"Seconds of {session}'s data adapted on")
    left.set_ylabel(f"{metric.replace('_', ' ')} of {column}")
    left.set_title(f"{session}: decoding of the streamed rest", fontsize=11)
    left.legend(frameon=False, fontsize=8)
    x = np.arange(len(table))
    right.bar(x - 0.2, table["latency_median_ms"], 0.4, color=colors[2], label="median")
    right.bar(x + 0.2, table["latency_p99_ms"], 0.4, color=colors[2], alpha=0.5, label="99th percentile")
    right.set_xticks(x, labels=[f"{s:g} s" for s in table["seconds"]])
    right.set_ylabel(f"Latency per bin (ms, {int(table['threads'].iloc[0])} CPU thread)")
    right.set_title("Embedding one new bin", fontsize=11)
    right.legend(frameon=False, fontsize=8)
    for ax in (left, right):
        sns.despine(ax=ax)
    return fig


SWEEP_MEASURES = {"validation_decoding": "Validation decoding", "validation_consistency": "Validation consistency (%)",
                  "final_loss": "Final training loss"}


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


def embedding_panels(table: pd.DataFrame, sessions: Sequence[str], colour_by: str | Sequence[str] = "position"
                     ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]], Colouring]:
    """The panels of the embedding figures (static and interactive) of an embedding table, coloured by
    ``colour_by``: {session: (first 3 embedding columns, colour values, right-running flag or None)}
    and the `Colouring`. ``colour_by`` is a label column (continuous or discrete), or two
    continuous columns (a 2-D position), coloured by the angle around their centre (the middle of
    their range over all sessions). The rat track's position is split by its right flag."""
    z = embedding_columns(table)[:3]
    columns = [colour_by] if isinstance(colour_by, str) else list(colour_by)
    missing = [c for c in columns if c not in label_columns(table)]
    if missing or len(columns) > 2:
        raise ValueError(f"figures.colour_by: {colour_by!r} is not one label column or two; the table's label "
                         f"columns are {label_columns(table)}")
    if len(columns) == 2:
        xy = table[columns].to_numpy(np.float64)
        centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
        values = np.degrees(np.arctan2(xy[:, 1] - centre[1], xy[:, 0] - centre[0]))
        colouring = Colouring(f"angle around the centre of ({columns[0]}, {columns[1]}) (degrees)", "cyclic")
    else:
        values = table[columns[0]].to_numpy()
        kind = "discrete" if is_discrete(values) else "continuous"
        colouring = POSITION if columns[0] == "position" else Colouring(columns[0], kind)
    values = pd.Series(values, index=table.index)
    split = columns == ["position"] and {"right", "left"} <= set(label_columns(table))
    panels = {name: (part[z].to_numpy(), values.loc[part.index].to_numpy(),
                     (part["right"] > 0.5).to_numpy() if split else None)
              for name, part in split_sessions(table, sessions).items()}
    return panels, colouring
