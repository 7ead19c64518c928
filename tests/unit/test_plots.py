"""Figures render headless, are saved as real non-blank PNG + PDF, and carry the expected numbers."""

import os

import matplotlib.colors
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.figure import Figure

from cebra_core.analysis.metrics import consistency_score
from cebra_core.analysis.stats import summary_table
from cebra_core.analysis.tables import embedding_frame
from cebra_core.figures.plots import (
    POSITION,
    Colouring,
    consistency_matrix,
    embedding_panels,
    plot_consistency,
    plot_consistency_comparison,
    plot_embedding_grid,
    plot_loss_curves,
    plot_new_session,
    plot_summary,
    save_figure,
)

RATS = ("achilles", "buddy", "cicero", "gatsby")


def session(rng, T, noise):
    pos = 0.8 + 0.8 * np.sin(np.arange(T) / 120)
    right = np.gradient(pos) > 0
    theta, phi = pos / 1.6 * np.pi, np.where(right, 0.6, -0.6)
    e = np.c_[np.cos(theta) * np.cos(phi), np.sin(theta) * np.cos(phi), np.sin(phi)] + rng.normal(0, noise, (T, 3))
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32), pos, right


@pytest.fixture(scope="module")
def sessions():
    rng = np.random.default_rng(0)
    single = {r: session(rng, 1500 + 300 * i, 0.15) for i, r in enumerate(RATS)}
    multi = {r: session(rng, 1500 + 300 * i, 0.05) for i, r in enumerate(RATS)}
    return single, multi


def assert_real_image(png, pdf, min_ink=0.02):
    """PNG decodes, is not blank (enough non-white pixels, real contrast); PDF is a PDF with content."""
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(png)[..., :3]
    assert img.shape[0] > 200 and img.shape[1] > 200
    ink = (img.min(axis=2) < 0.9).mean()
    assert ink > min_ink, f"only {ink:.1%} of pixels are not white"
    assert img.std() > 0.05
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2000


def test_save_figure_writes_png_and_pdf_atomically(tmp_path):
    fig = Figure()
    fig.add_subplot().plot([0, 1], [0, 1], linewidth=8)
    written = save_figure(fig, tmp_path / "sub" / "line.png")
    assert written == [tmp_path / "sub" / "line.png", tmp_path / "sub" / "line.pdf"]
    assert sorted(os.listdir(tmp_path / "sub")) == ["line.pdf", "line.png"]  # no temp files left
    assert_real_image(*written, min_ink=0.005)
    mode = (tmp_path / "sub" / "line.png").stat().st_mode & 0o777
    assert mode & 0o044  # readable by others under a usual umask, unlike mkstemp's 0600
    assert save_figure(fig, tmp_path / "line", formats=("svg",)) == [tmp_path / "line.svg"]
    assert save_figure(fig, tmp_path / "fig.svg") == [tmp_path / "fig.png", tmp_path / "fig.pdf"]
    # Vector output is reproducible: no timestamps.
    pdf1 = (tmp_path / "sub" / "line.pdf").read_bytes()
    save_figure(fig, tmp_path / "sub" / "line.png")
    assert (tmp_path / "sub" / "line.pdf").read_bytes() == pdf1


def test_embedding_grid(tmp_path, sessions):
    single, multi = sessions
    fig = plot_embedding_grid(single, multi)
    axes3d = [ax for ax in fig.axes if ax.name == "3d"]
    assert [ax.get_title() for ax in axes3d] == [f"Single-{r}" for r in RATS] + [f"Multi-{r}" for r in RATS]
    # Every panel: right-running then left-running points, coloured by position with two colormaps.
    for ax in axes3d:
        right, left = ax.collections
        assert right.get_cmap().name == "cool" and left.get_cmap().name == "viridis"
    first = axes3d[0].collections[0]
    assert len(first.get_offsets()) == single["achilles"][2].sum()
    bars = [ax.get_xlabel() for ax in fig.axes if ax.name != "3d"]
    assert bars == ["Position (m), right-running", "Position (m), left-running"]
    png, pdf = save_figure(fig, tmp_path / "embeddings.png")
    assert_real_image(png, pdf)


def test_consistency_heatmap_numbers(tmp_path, sessions):
    single, _ = sessions
    embs, labels = [v[0] for v in single.values()], [v[1] for v in single.values()]
    scores, pairs, ids = consistency_score(embs, labels, list(single))
    ax = plot_consistency(scores, pairs, ids, title="single animal", vmin=0, vmax=100)
    matrix = np.asarray(ax.images[0].get_array(), dtype=float)
    assert matrix.shape == (4, 4) and np.isnan(np.diag(matrix)).all()
    for (a, b), s in zip(pairs.tolist(), scores):
        i, j = RATS.index(a), RATS.index(b)
        assert matrix[i, j] == pytest.approx(100 * s)  # row = predictor, column = target
    texts = {(t.get_position(), t.get_text()) for t in ax.texts}
    expected = {((RATS.index(b), RATS.index(a)), f"{100 * s:.1f}") for (a, b), s in zip(pairs.tolist(), scores)}
    assert texts == expected and all(t.get_color() == "white" for t in ax.texts)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(RATS)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(RATS)
    assert ax.get_title() == "single animal"
    assert ax.images[0].get_cmap().name == "binary"
    assert ax.figure.axes[1].get_ylabel() == "Consistency score (%)"
    png, pdf = save_figure(ax.figure, tmp_path / "consistency.png")
    assert_real_image(png, pdf)


def test_consistency_matrix_known_values_and_runs_labels():
    pairs = [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]
    mat, labels = consistency_matrix([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], pairs, ["a", "b", "c"])
    np.testing.assert_allclose(mat, [[np.nan, 10, 20], [30, np.nan, 40], [50, 60, np.nan]])
    assert labels.tolist() == ["a", "b", "c"]
    # Between-runs output: integer run ids in pairs and ids.
    run_pairs = np.array([[0, 1], [1, 0]])
    mat, labels = consistency_matrix(np.array([0.9, 0.8]), run_pairs, np.array([0, 1]))
    np.testing.assert_allclose(mat, [[np.nan, 90], [80, np.nan]])
    with pytest.raises(ValueError, match="do not fit"):
        consistency_matrix([0.1, 0.2], pairs[:2], ["a", "b", "c"])


def test_consistency_comparison_figure(tmp_path, sessions):
    single, multi = sessions
    res = [consistency_score([v[0] for v in d.values()], [v[1] for v in d.values()], list(d)) for d in (single, multi)]
    fig = plot_consistency_comparison(*res)
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in heatmaps] == ["single animal", "multi-animal"]
    for ax in heatmaps:  # which way a cell reads: the row predicts the column
        assert ax.get_ylabel() == "predictor (row)"
        assert ax.get_xlabel() == "predicted (column): R² of the row's linear map"
    for ax, (scores, _, _) in zip(heatmaps, res):
        assert sorted(t.get_text() for t in ax.texts) == sorted(f"{100 * s:.1f}" for s in scores)
        assert ax.images[0].get_clim() == (0.0, 100.0)
    png, pdf = save_figure(fig, tmp_path / "comparison.png")
    assert_real_image(png, pdf)


def test_loss_curves(tmp_path):
    rng = np.random.default_rng(1)
    hist = {"single-achilles": 6 + np.exp(-np.arange(2000) / 300) + rng.normal(0, 0.05, 2000),
            "multi-session": 7.8 + np.exp(-np.arange(2000) / 300) + rng.normal(0, 0.05, 2000)}
    fig = plot_loss_curves(hist, note="multi sits higher: 4 × 512 negatives")
    assert fig.get_supxlabel() == "multi sits higher: 4 × 512 negatives"
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(hist)
    assert ax.get_xlabel() == "Iteration" and ax.get_ylabel() == "InfoNCE loss"
    smoothed = next(line for line in ax.lines if line.get_label() == "multi-session")
    assert smoothed.get_ydata()[-1] == pytest.approx(hist["multi-session"][-100:].mean())
    png, pdf = save_figure(fig, tmp_path / "loss.png")
    assert_real_image(png, pdf)


def test_new_session_bars(tmp_path):
    consistency = {"random": [0.1, 0.05, 0.12, 0.08], "single": [0.8, 0.7, 0.9, 0.85],
                   "multi": [0.97, 0.96, 0.98, 0.97], "adapted": [0.95, 0.96, 0.97, 0.94]}
    errors = {"random": 18.1, "single": 4.8, "multi": 3.9, "adapted": 7.2}
    fig = plot_new_session(consistency, errors, held_out="gatsby")
    left, right = fig.axes
    assert left.get_title() == "gatsby: consistency" and right.get_title() == "gatsby: decoding"
    assert [t.get_text() for t in left.get_xticklabels()] == list(consistency)
    assert [t.get_text() for t in right.get_xticklabels()] == list(errors)
    heights = [bar.get_height() for bar in left.patches]
    np.testing.assert_allclose(heights, [100 * np.mean(v) for v in consistency.values()])
    assert sorted(t.get_text() for t in left.texts) == sorted(f"{100 * np.mean(v):.1f}" for v in consistency.values())
    dots = np.concatenate([c.get_offsets()[:, 1] for c in left.collections])
    np.testing.assert_allclose(np.sort(dots), np.sort(100 * np.concatenate(list(consistency.values()))))
    np.testing.assert_allclose([bar.get_height() for bar in right.patches], list(errors.values()))
    # the labels say which label and metric (defaults: position, its median absolute error)
    assert left.get_ylabel() == "Consistency with trained animals on position (%)"
    assert right.get_ylabel() == "Median abs error of position"
    # one colour per kind, the same in both panels
    assert [b.get_facecolor() for b in left.patches] == [b.get_facecolor() for b in right.patches]
    assert len({b.get_facecolor() for b in left.patches}) == 4
    png, pdf = save_figure(fig, tmp_path / "new_session.png")
    assert_real_image(png, pdf)
    accuracy = plot_new_session(consistency, {"single": 0.61, "multi": 0.93}, held_out="monkey",
                                decoding_label="accuracy of target", consistency_label="x+y")
    left, right = accuracy.axes
    assert left.get_ylabel() == "Consistency with trained animals on x+y (%)" and right.get_ylabel() == "Accuracy of target"
    assert sorted(t.get_text() for t in right.texts) == ["0.61", "0.93"]
    with pytest.raises(ValueError, match="no consistency scores for 'multi'"):
        plot_new_session({"multi": []}, {}, held_out="gatsby")
    with pytest.raises(ValueError, match="no consistency scores given"):
        plot_new_session({}, errors, held_out="gatsby")


def test_plot_errors(sessions):
    single, _ = sessions
    emb, pos, right = single["achilles"]
    with pytest.raises(ValueError, match="Single-achilles"):
        plot_embedding_grid({"achilles": (emb, pos[:-1], right)}, None)
    with pytest.raises(ValueError, match="empty"):
        plot_embedding_grid({}, None)
    with pytest.raises(ValueError, match="scores but"):
        plot_consistency([0.5], [("a", "b"), ("b", "a")], ["a", "b"])


# ------------------------------------------------------------- colouring by any label column


def rat_table(sessions):
    """An embedding table of the rat track (position, right, left) from ``session`` panels."""
    return pd.concat([embedding_frame(name, emb, pd.DataFrame({"position": pos, "right": right, "left": ~right})
                                      .astype(np.float32))
                      for name, (emb, pos, right) in sessions.items()], ignore_index=True)


CLASSES = (0, 2, 5)  # a discrete label's classes (not 0..K-1)


def field_table(seed=0):
    """An embedding table of two open-field sessions: x, y (continuous) and context (discrete);
    session 'b' never visits context 5."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, n, classes in (("a", 900, CLASSES), ("b", 700, CLASSES[:2])):
        t = np.arange(n)
        x, y = 0.5 + 0.5 * np.sin(t / 13), 0.5 + 0.5 * np.cos(t / 9)
        context = np.asarray(classes)[rng.integers(0, len(classes), n)]
        z = np.c_[x - 0.5, y - 0.5, context / 5] + rng.normal(0, 0.02, (n, 3))
        labels = pd.DataFrame({"x": x.astype(np.float32), "y": y.astype(np.float32), "context": context.astype(np.int64)})
        frames.append(embedding_frame(name, z, labels))
    return pd.concat(frames, ignore_index=True)


def test_embedding_panels_of_the_rat_track_split_position_by_the_right_flag(tmp_path, sessions):
    single, _ = sessions
    table = rat_table(single)
    panels, colouring = embedding_panels(table, ["buddy", "achilles"])
    assert colouring == POSITION == Colouring("Position (m)", "continuous")
    assert list(panels) == ["buddy", "achilles"]  # in the order asked for
    for name, (emb, values, right) in panels.items():
        np.testing.assert_array_equal(emb, single[name][0])
        np.testing.assert_array_equal(values, single[name][1].astype(np.float32))
        np.testing.assert_array_equal(right, single[name][2])  # the right flag splits position
    fig = plot_embedding_grid(panels, panels, colouring=colouring)
    for ax in (ax for ax in fig.axes if ax.name == "3d"):
        right, left = ax.collections
        assert right.get_cmap().name == "cool" and left.get_cmap().name == "viridis"
    assert [ax.get_xlabel() for ax in fig.axes if ax.name != "3d"] == ["Position (m), right-running",
                                                                       "Position (m), left-running"]
    # another column of the track is coloured without the split, by one colour map
    panels, colouring = embedding_panels(table, ["achilles"], "left")
    assert colouring == Colouring("left", "continuous") and panels["achilles"][2] is None
    fig = plot_embedding_grid(panels, None, colouring=colouring)
    (ax,) = [ax for ax in fig.axes if ax.name == "3d"]
    assert [c.get_cmap().name for c in ax.collections] == ["viridis"]
    assert [ax.get_xlabel() for ax in fig.axes if ax.name != "3d"] == ["left"]


def test_a_discrete_colouring_draws_a_colour_per_class_and_a_legend(tmp_path):
    table = field_table()
    panels, colouring = embedding_panels(table, ["a", "b"], "context")
    assert colouring == Colouring("context", "discrete")
    assert all(right is None for _, _, right in panels.values())
    np.testing.assert_array_equal(panels["b"][1], table.loc[table.session == "b", "context"])
    fig = plot_embedding_grid(panels, panels, s=4, colouring=colouring)
    palette = sns.color_palette("colorblind", len(CLASSES))
    axes3d = [ax for ax in fig.axes if ax.name == "3d"]
    assert [ax.get_title() for ax in axes3d] == ["Single-a", "Single-b", "Multi-a", "Multi-b"]
    for ax, name in zip(axes3d, ["a", "b", "a", "b"]):
        values = panels[name][1]
        # one scatter per class of all sessions (b's has no point of class 5), the same colour everywhere
        assert len(ax.collections) == len(CLASSES)
        for collection, klass, colour in zip(ax.collections, CLASSES, palette):
            assert len(collection.get_offsets()) == (values == klass).sum()
            if (values == klass).any():
                np.testing.assert_allclose(collection.get_facecolor()[0, :3], colour, atol=1e-6)
    legends = [ax.get_legend() for ax in fig.axes if ax.name != "3d" and ax.get_legend() is not None]
    assert len(legends) == 1  # a legend of the classes, no colour bar
    assert legends[0].get_title().get_text() == "context"
    assert [t.get_text() for t in legends[0].get_texts()] == [str(c) for c in CLASSES]
    for handle, colour in zip(legends[0].legend_handles, palette):
        np.testing.assert_allclose(matplotlib.colors.to_rgb(handle.get_color()), colour, atol=1e-6)
    assert not any(ax.get_xlabel() for ax in fig.axes if ax.name != "3d")
    png, pdf = save_figure(fig, tmp_path / "context.png")
    assert_real_image(png, pdf)


def test_two_columns_colour_by_the_angle_with_a_cyclic_map(tmp_path):
    table = field_table()
    panels, colouring = embedding_panels(table, ["a", "b"], ["x", "y"])
    assert colouring == Colouring("angle around the centre of (x, y) (degrees)", "cyclic")
    # the angle around the middle of the range over both sessions
    xy = table[["x", "y"]].to_numpy(np.float64)
    centre = (xy.min(0) + xy.max(0)) / 2
    a = table[table.session == "a"]
    want = np.degrees(np.arctan2(a.y.to_numpy(np.float64) - centre[1], a.x.to_numpy(np.float64) - centre[0]))
    np.testing.assert_allclose(panels["a"][1], want, atol=1e-9)
    assert panels["a"][1].min() < -170 and panels["a"][1].max() > 170  # all the way round
    east = np.argmin(np.abs(a.y.to_numpy() - centre[1]) + np.abs(a.x.to_numpy() - xy[:, 0].max()))
    assert panels["a"][1][east] == pytest.approx(0, abs=15)  # the right edge, at mid height: 0 degrees
    fig = plot_embedding_grid(panels, panels, colouring=colouring)
    for ax in (ax for ax in fig.axes if ax.name == "3d"):
        assert [c.get_cmap().name for c in ax.collections] == ["twilight"]
    bars = [ax for ax in fig.axes if ax.name != "3d"]
    assert [ax.get_xlabel() for ax in bars] == [colouring.name]
    png, pdf = save_figure(fig, tmp_path / "angle.png")
    assert_real_image(png, pdf)
    for bad in ("speed", ["x", "y", "context"]):
        with pytest.raises(ValueError, match=r"figures.colour_by: .* the table's label columns are \['x', 'y', 'context'\]"):
            embedding_panels(table, ["a", "b"], bad)


def summary_statistics():
    """summary_table's table of single and multi fits of sessions A and B, two seeds: position decoded
    (median abs error, chance) and a context (accuracy, chance)."""
    consistency = pd.DataFrame([("single", 0, "A", "B", 0.5), ("single", 1, "A", "B", 0.6),
                                ("single", 0, "B", "A", 0.5), ("single", 1, "B", "A", 0.45),
                                ("multi", 0, "A", "B", 0.8), ("multi", 1, "A", "B", 0.9),
                                ("multi", 0, "B", "A", 0.9), ("multi", 1, "B", "A", 0.85)],
                               columns=["kind", "seed", "source", "target", "score"])
    rows = []
    for kind, error in (("single", 0.06), ("multi", 0.03)):
        for seed in (0, 1):
            for i, session in enumerate("AB"):
                rows.append((kind, seed, session, session, "position", "median_abs_error", error + 0.01 * (seed + i),
                             0.40 + 0.02 * i))
                rows.append((kind, seed, session, session, "context", "accuracy", 0.7 + 0.1 * i, 0.33))
    decoding = pd.DataFrame(rows, columns=["kind", "seed", "train", "test", "column", "metric", "value", "chance"])
    return summary_table(consistency, decoding)


def horizontal_ticks(ax):
    """The line collections of ``ax`` made of horizontal segments (the error bars are vertical)."""
    return [c for c in ax.collections if hasattr(c, "get_segments") and len(c.get_segments())
            and all(seg[0][1] == seg[-1][1] and seg[0][0] != seg[-1][0] for seg in c.get_segments())]


def test_summary_figure_draws_decoding_beside_its_chance_ticks(tmp_path):
    statistics = summary_statistics()
    fig = plot_summary(statistics, ["A", "B"])
    left, right = fig.axes
    assert right.get_ylabel() == "median abs error of position"
    # bars: single then multi, per session, the mean over seeds
    np.testing.assert_allclose([b.get_height() for b in right.patches], [0.065, 0.075, 0.035, 0.045])
    # chance ticks: one grey tick over each bar, at the chance level's mean
    ticks = horizontal_ticks(right)
    assert [c.get_label() for c in ticks][0] == "chance (shuffled labels)"  # the first kind's: the legend entry
    assert len(ticks) == 2 and all(len(c.get_segments()) == 2 for c in ticks)
    heights = np.concatenate([np.array(c.get_segments())[:, 0, 1] for c in ticks])
    np.testing.assert_allclose(heights, [0.40, 0.42, 0.40, 0.42])
    for c, bars in zip(ticks, (right.patches[:2], right.patches[2:])):
        for (start, end), bar in zip(np.array(c.get_segments()), bars):  # each tick spans its bar
            assert (start[0], end[0]) == pytest.approx((bar.get_x(), bar.get_x() + bar.get_width()))
        assert all(colour == pytest.approx((0.45, 0.45, 0.45, 1.0)) for colour in c.get_colors())  # grey
    assert "chance (shuffled labels)" in [t.get_text() for t in right.get_legend().get_texts()]
    assert left.get_title().startswith("Consistency per ordered pair\npaired t(1) = ")
    png, pdf = save_figure(fig, tmp_path / "summary.png")
    assert_real_image(png, pdf)
    # another label column and metric: the context's accuracy, its chance 0.33
    fig = plot_summary(statistics, ["A", "B"], column="context", metric="accuracy")
    right = fig.axes[1]
    assert right.get_ylabel() == "accuracy of context"
    np.testing.assert_allclose([b.get_height() for b in right.patches], [0.7, 0.8, 0.7, 0.8])
    ticks = [np.array(c.get_segments())[:, 0, 1] for c in horizontal_ticks(right)]
    np.testing.assert_allclose(np.concatenate(ticks), [0.33] * 4)
