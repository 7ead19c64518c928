"""Figures render headless, are saved as real non-blank PNG + PDF, and carry the expected numbers."""

import os

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from cebra_core.analysis.metrics import consistency_score
from cebra_core.figures.plots import (
    consistency_matrix,
    plot_consistency,
    plot_consistency_comparison,
    plot_embedding_grid,
    plot_loss_curves,
    plot_new_session,
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
    assert left.get_title() == "gatsby: consistency" and right.get_title() == "gatsby: position decoding"
    assert [t.get_text() for t in left.get_xticklabels()] == list(consistency)
    assert [t.get_text() for t in right.get_xticklabels()] == list(errors)
    heights = [bar.get_height() for bar in left.patches]
    np.testing.assert_allclose(heights, [100 * np.mean(v) for v in consistency.values()])
    assert sorted(t.get_text() for t in left.texts) == sorted(f"{100 * np.mean(v):.1f}" for v in consistency.values())
    dots = np.concatenate([c.get_offsets()[:, 1] for c in left.collections])
    np.testing.assert_allclose(np.sort(dots), np.sort(100 * np.concatenate(list(consistency.values()))))
    np.testing.assert_allclose([bar.get_height() for bar in right.patches], list(errors.values()))
    assert left.get_ylabel() == "Consistency with trained rats (%)" and right.get_ylabel() == "Median decoding error (cm)"
    # one colour per kind, the same in both panels
    assert [b.get_facecolor() for b in left.patches] == [b.get_facecolor() for b in right.patches]
    assert len({b.get_facecolor() for b in left.patches}) == 4
    png, pdf = save_figure(fig, tmp_path / "new_session.png")
    assert_real_image(png, pdf)
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
