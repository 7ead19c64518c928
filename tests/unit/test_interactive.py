"""Interactive 3-D embedding pages (cebra_core.figures.interactive): the figure (traces, colours, hover,
subsampling), the self-contained HTML file, and the page drawn in a real headless Chromium.

The browser test skips with the reason where Chromium is not installed (``apt-get install chromium``)
or offers no WebGL; with CEBRA_REQUIRE_CHROMIUM=1 (CI) it fails instead. Its screenshot's path is
printed in pytest's summary ("screenshots" section) and recorded as the test's property
``screenshot``; the file is kept in pytest's temporary folder.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from matplotlib import colormaps
from plotly.offline import get_plotlyjs_version

from cebra_core.figures.interactive import MAX_POINTS_PER_PANEL, colorscale, plot_embeddings_3d, subsample, write_html
from cebra_core.figures.plots import CYCLIC_CMAP, LEFT_CMAP, RIGHT_CMAP, Colouring
from cebra_core.sessions.rats import BIN_SECONDS, RAT_SHAPES, TRACK_LENGTH
from helpers import skip_or_fail
from helpers.browser import ChromiumUnavailable, find_chromium, render

PAGE_LIMIT = 10_000_000  # bytes: the "under ~10 MB" with the full-size rats


def laps(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A rat running laps and a CEBRA-like embedding of it: a half circle per direction on the sphere."""
    rng = np.random.default_rng(seed)
    phase = np.arange(n) * 2 * np.pi / 400  # a lap (there and back) every 10 s
    pos = (TRACK_LENGTH / 2 * (1 - np.cos(phase))).astype(np.float32)
    right = np.sin(phase) >= 0
    angle = np.pi * pos / TRACK_LENGTH
    emb = np.stack([np.cos(angle), np.sin(angle), np.where(right, 0.6, -0.6)], axis=1)
    emb += rng.normal(scale=0.05, size=emb.shape)
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32), pos, right


def tables(lengths: dict[str, int]) -> tuple[dict, dict]:
    single = {rat: laps(n, seed=i) for i, (rat, n) in enumerate(lengths.items())}
    multi = {rat: laps(n, seed=10 + i) for i, (rat, n) in enumerate(lengths.items())}
    return single, multi


def panel_points(fig, title_prefix: str) -> int:
    return sum(len(t.x) for t in fig.data if t.hovertemplate.split("(")[1].startswith(title_prefix))


# ------------------------------------------------------------------------------------------ the figure


def test_subsample_is_even_deterministic_and_capped():
    np.testing.assert_array_equal(subsample(509, 1000), np.arange(509))  # short sessions: every bin
    idx = subsample(47431, 20000)
    assert len(idx) == 20000 and len(np.unique(idx)) == 20000 and np.all(np.diff(idx) > 0)
    assert idx[0] == 0 and idx[-1] == 47430
    assert set(np.diff(idx).tolist()) == {2, 3}  # evenly spread: every 2nd or 3rd bin (47431 / 20000)
    np.testing.assert_array_equal(idx, subsample(47431, 20000))
    with pytest.raises(ValueError, match="max_points"):
        subsample(10, 1)


def test_colorscales_are_the_static_figures_colour_maps():
    cool, viridis = colorscale(RIGHT_CMAP), colorscale(LEFT_CMAP)
    assert (RIGHT_CMAP, LEFT_CMAP) == ("cool", "viridis")  # the notebook's colour maps
    assert cool[0] == [0.0, "rgb(0, 255, 255)"] and cool[-1] == [1.0, "rgb(255, 0, 255)"]
    assert viridis[0] == [0.0, "rgb(68, 1, 84)"] and viridis[-1] == [1.0, "rgb(253, 231, 37)"]


def test_figure_traces_colours_and_hover():
    single, multi = tables({"achilles": 600, "buddy": 300})
    multi["buddy"][1][:] = np.linspace(0.2, 1.7, 300)  # the colour range spans every rat of both
    fig = plot_embeddings_3d("buddy", single, multi)

    assert [a.text for a in fig.layout.annotations] == ["Single-buddy", "Multi-buddy"]
    assert [t.name for t in fig.data] == ["right-running", "left-running"] * 2
    assert [t.scene for t in fig.data] == ["scene", "scene", "scene2", "scene2"]
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    for trace, (label, data), right in zip(fig.data, [("single", single)] * 2 + [("multi", multi)] * 2,
                                           [True, False] * 2):
        emb, pos, is_right = data["buddy"]
        mask = is_right if right else ~is_right
        np.testing.assert_array_equal(np.stack([trace.x, trace.y, trace.z], axis=1), emb[mask])
        np.testing.assert_array_equal(trace.marker.color, pos[mask])  # coloured by position
        assert trace.marker.coloraxis == ("coloraxis" if right else "coloraxis2")
        time = np.flatnonzero(mask) * BIN_SECONDS
        np.testing.assert_allclose(trace.customdata[:, 0], time, rtol=1e-6)
        np.testing.assert_array_equal(trace.customdata[:, 1], pos[mask])
        assert trace.hovertemplate.startswith(f"<b>buddy</b> ({label})<br>")
        assert "time %{customdata[0]:.3f} s" in trace.hovertemplate
        assert "Position (m) %{customdata[1]:.3f}" in trace.hovertemplate  # the colouring's name, then the value
    lo = min(float(v[1].min()) for d in (single, multi) for v in d.values())
    for axis, cmap in ((fig.layout.coloraxis, RIGHT_CMAP), (fig.layout.coloraxis2, LEFT_CMAP)):
        assert [list(c) for c in axis.colorscale] == colorscale(cmap)
        assert (axis.cmin, axis.cmax) == pytest.approx((lo, 1.7))
    assert lo == pytest.approx(0.0, abs=1e-6)
    assert [axis.colorbar.title.text for axis in (fig.layout.coloraxis, fig.layout.coloraxis2)] == [
        "Position (m), right-running", "Position (m), left-running"]


def field_panels(classes_b=(0, 2, 5)):
    """Open-field panels of sessions a and b: (embedding, context (int), None) and (embedding, angle, None)."""
    rng = np.random.default_rng(3)
    context, angle = {}, {}
    for name, n, classes in (("a", 400, (0, 2, 5)), ("b", 300, classes_b)):
        emb = rng.normal(size=(n, 3)).astype(np.float32)
        context[name] = (emb, np.asarray(classes)[rng.integers(0, len(classes), n)].astype(np.int64), None)
        angle[name] = (emb, rng.uniform(-180, 180, n), None)
    return context, angle


def test_a_discrete_colouring_draws_a_trace_per_class_in_the_static_figures_colours():
    import seaborn as sns

    context, _ = field_panels(classes_b=(0, 2))  # b has no class 5: its classes still span both sessions
    colouring = Colouring("context", "discrete")
    fig = plot_embeddings_3d("b", context, context, colouring=colouring)
    names = ["context 0", "context 2", "context 5"]
    assert [t.name for t in fig.data] == names * 2  # a trace (legend entry) per class of every session
    assert [t.showlegend for t in fig.data] == [True] * 3 + [False] * 3
    palette = sns.color_palette("colorblind", 3)  # the static figure's class colours
    emb, values, _ = context["b"]
    for trace, klass, colour in zip(fig.data, [0, 2, 5] * 2, palette * 2):
        assert trace.marker.color == "rgb({}, {}, {})".format(*(int(round(255 * c)) for c in colour))
        assert trace.marker.coloraxis is None
        mask = values == klass
        np.testing.assert_array_equal(np.stack([trace.x, trace.y, trace.z], axis=1), emb[mask])
        np.testing.assert_array_equal(trace.customdata[:, 1], values[mask])
        assert "context %{customdata[1]:.3f}" in trace.hovertemplate and f"<extra>context {klass}</extra>" in trace.hovertemplate
    assert len(fig.data[2].x) == 0  # b has no point of class 5
    assert "coloraxis" not in fig.layout.to_plotly_json()  # no colour bar: the legend names the classes


def test_an_angle_colours_by_the_cyclic_map_and_one_colour_bar():
    _, angle = field_panels()
    colouring = Colouring("angle around the centre of (x, y) (degrees)", "cyclic")
    fig = plot_embeddings_3d("a", angle, angle, colouring=colouring)
    assert [t.name for t in fig.data] == [colouring.name] * 2
    for trace in fig.data:
        assert trace.marker.coloraxis == "coloraxis"
        np.testing.assert_allclose(trace.marker.color, angle["a"][1].astype(np.float32))
        assert f"{colouring.name} %{{customdata[1]:.3f}}" in trace.hovertemplate
    axis = fig.layout.coloraxis
    assert [list(c) for c in axis.colorscale] == colorscale(CYCLIC_CMAP) and CYCLIC_CMAP == "twilight"
    lo = min(float(v[1].min()) for v in angle.values())
    hi = max(float(v[1].max()) for v in angle.values())
    assert (axis.cmin, axis.cmax) == pytest.approx((lo, hi))  # one range over every session
    assert axis.colorbar.title.text == colouring.name
    assert "coloraxis2" not in fig.layout.to_plotly_json()  # no second (left-running) bar
    # a continuous label without a right flag: the same, with the continuous map
    fig = plot_embeddings_3d("a", angle, None, colouring=Colouring("speed", "continuous"))
    assert [list(c) for c in fig.layout.coloraxis.colorscale] == colorscale(LEFT_CMAP)
    assert fig.layout.coloraxis.colorbar.title.text == "speed" and [t.name for t in fig.data] == ["speed"]


def test_long_sessions_are_subsampled_to_the_cap():
    n = 3 * MAX_POINTS_PER_PANEL + 7
    single, multi = tables({"cicero": n})
    fig = plot_embeddings_3d("cicero", single, multi)
    assert panel_points(fig, "single") == panel_points(fig, "multi") == MAX_POINTS_PER_PANEL
    times = np.sort(np.concatenate([t.customdata[:, 0] for t in fig.data[:2]]))
    np.testing.assert_allclose(times, subsample(n) * BIN_SECONDS, rtol=1e-6)  # the evenly spread bins
    small = plot_embeddings_3d("cicero", single, multi, max_points=500)
    assert panel_points(small, "single") == 500
    again = plot_embeddings_3d("cicero", single, multi)
    assert fig.to_json() == again.to_json()  # deterministic


def test_missing_rat_or_bad_shapes_are_clear_errors():
    single, multi = tables({"achilles": 200})
    with pytest.raises(ValueError, match="'gatsby'.*neither"):
        plot_embeddings_3d("gatsby", single, multi)
    emb, pos, right = multi["achilles"]
    with pytest.raises(ValueError, match="Multi-achilles"):
        plot_embeddings_3d("achilles", single, {"achilles": (emb, pos[:-1], right)})
    only_multi = plot_embeddings_3d("achilles", None, multi)  # a single row is still a page
    assert [a.text for a in only_multi.layout.annotations] == ["Multi-achilles"]


def test_pages_of_an_embedding_table_follow_the_static_figures_colouring():
    """From an embedding table to the page, as the figure step does: embedding_panels' colouring."""
    import pandas as pd

    from cebra_core.analysis.tables import embedding_frame
    from cebra_core.figures.plots import embedding_panels

    rng = np.random.default_rng(4)
    frames = []
    for name, n in (("a", 300), ("b", 200)):
        labels = pd.DataFrame({"x": rng.uniform(0, 1, n).astype(np.float32), "y": rng.uniform(0, 1, n).astype(np.float32),
                               "context": rng.integers(0, 3, n)})
        frames.append(embedding_frame(name, rng.normal(size=(n, 3)), labels))
    table = pd.concat(frames, ignore_index=True)
    panels, colouring = embedding_panels(table, ["a", "b"], "context")
    fig = plot_embeddings_3d("a", panels, panels, colouring=colouring)
    assert [t.name for t in fig.data] == ["context 0", "context 1", "context 2"] * 2
    assert sum(len(t.x) for t in fig.data[:3]) == 300
    panels, colouring = embedding_panels(table, ["a", "b"], ["x", "y"])
    fig = plot_embeddings_3d("b", panels, None, colouring=colouring)
    assert [list(c) for c in fig.layout.coloraxis.colorscale] == colorscale(CYCLIC_CMAP)
    assert fig.layout.coloraxis.colorbar.title.text == "angle around the centre of (x, y) (degrees)"
    assert "angle around the centre of (x, y) (degrees) %{customdata[1]:.3f}" in fig.data[0].hovertemplate


# ------------------------------------------------------------------------------------------ the file


def test_page_is_self_contained_atomic_and_reproducible(tmp_path):
    single, multi = tables({"achilles": 500, "buddy": 300})
    old = os.umask(0o022)
    try:
        path = write_html(plot_embeddings_3d("achilles", single, multi), tmp_path / "out" / "achilles.html",
                          div_id="embeddings-3d-achilles")
    finally:
        os.umask(old)
    html = path.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["achilles.html"]  # no temporary file left
    assert html.startswith("<!doctype html>") and '<div id="embeddings-3d-achilles"' in html
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html)
    assert len(tags) == 3 and not any("src=" in t or "href=" in t for t in tags), tags  # plotly.js is inside
    assert '<script src="http' not in html
    assert "plotly.js v" in html and len(html) > 3_000_000
    first = path.read_bytes()
    write_html(plot_embeddings_3d("achilles", single, multi), path, div_id="embeddings-3d-achilles")
    assert path.read_bytes() == first  # byte-identical reruns


def test_full_size_pages_stay_under_10_mb(tmp_path):
    """The full-size rats' lengths (RAT_SHAPES): every page under ~10 MB; the longest is capped."""
    single, multi = tables({rat: shape[0] for rat, shape in RAT_SHAPES.items()})
    sizes = {}
    for rat in RAT_SHAPES:
        sizes[rat] = write_html(plot_embeddings_3d(rat, single, multi), tmp_path / f"{rat}.html").stat().st_size
    print("\nfull-size pages (MB): " + ", ".join(f"{r} {s / 1e6:.2f}" for r, s in sizes.items()))
    assert max(sizes.values()) < PAGE_LIMIT
    assert sizes["cicero"] > sizes["achilles"]  # 2 x 20,000 points against 2 x 10,178


# ------------------------------------------------------------------------------------------ the browser


def colour_map_fraction(pixels: np.ndarray, cmap: str, tolerance: float = 0.1) -> float:
    """Fraction of pixels within ``tolerance`` (RGB in 0..1) of a colour of ``cmap``: drawn points.

    White background, grey or black text and plotly's blue messages ("WebGL is not supported")
    are far from both colour maps: a panel that drew nothing scores 0.
    """
    rgb = pixels[..., :3].reshape(-1, 3).astype(np.float32)
    palette = colormaps[cmap](np.linspace(0.0, 1.0, 64))[:, :3].astype(np.float32)
    distance = np.full(len(rgb), np.inf, dtype=np.float32)
    for colour in palette:
        distance = np.minimum(distance, np.linalg.norm(rgb - colour, axis=1))
    return float((distance < tolerance).mean())


# Where the drawn page's panels are: each scene's box, cut off above the colour bars.
MEASURE = """(() => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const bars = Array.from(document.querySelectorAll('.colorbar')).map(box);
  return {scenes: ['scene', 'scene2'].map(id => box(document.getElementById(id))),
          barsTop: Math.min(...bars.map(b => b[1])), plotlyVersion: Plotly.version};
})()"""


def test_page_draws_in_headless_chromium(tmp_path, record_property):
    if find_chromium() is None:
        skip_or_fail("Chromium is not installed (apt-get install chromium)", "CEBRA_REQUIRE_CHROMIUM")
    single, multi = tables({"achilles": 509, "buddy": 329})  # the sample rats' lengths
    page = write_html(plot_embeddings_3d("buddy", single, multi), tmp_path / "buddy.html", div_id="embeddings-3d-buddy")
    screenshot = tmp_path / "buddy.png"
    record_property("screenshot", str(screenshot))
    ready = "document.querySelectorAll('#scene canvas, #scene2 canvas').length == 2"  # both panels' WebGL
    try:
        report = render(page.as_uri(), screenshot, ready=ready, measure=MEASURE, timeout=120)
    except ChromiumUnavailable as err:
        skip_or_fail(f"Chromium could not start: {err}", "CEBRA_REQUIRE_CHROMIUM")
    if not report.webgl:
        skip_or_fail("this Chromium offers no WebGL (3-D plots need it; SwiftShader missing?)", "CEBRA_REQUIRE_CHROMIUM")

    where = f"(screenshot: {screenshot})"
    assert report.errors == [], f"the page logged JavaScript errors {where}: {report.errors}"
    assert report.requests == [page.as_uri()], f"the page fetched more than itself {where}: {report.requests}"

    import matplotlib.image

    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[:2] == (800, 1400)
    measured = report.measured
    assert measured["plotlyVersion"] == get_plotlyjs_version()  # the embedded copy ran
    fractions = {}
    for title, (left, top, right, bottom) in zip(("Single", "Multi"), measured["scenes"]):
        bottom = min(bottom, measured["barsTop"])  # the colour bars are not the plot
        assert right - left > 300 and bottom - top > 250, f"panel too small {where}: {measured}"
        panel = pixels[int(top):int(bottom), int(left):int(right)]
        fractions[title] = {cmap: colour_map_fraction(panel, cmap) for cmap in (RIGHT_CMAP, LEFT_CMAP)}
    print(f"\nscreenshot {screenshot}: pixels in each colour map per panel {fractions}")
    # Both running directions drawn in both panels, each in its colour map. A blank panel (or one
    # showing "WebGL is not supported") scores 0; these panels score ~0.4% (cool), ~0.2% (viridis).
    for title, by_cmap in fractions.items():
        for cmap, fraction in by_cmap.items():
            assert fraction > 0.0005, f"{title}-buddy shows no {cmap} points {where}: {fractions}"
