"""consistency_score: CEBRA 0.6.1 semantics on constructed cases with known answers; label_consistency:
the same score on any declared label (one column, a 2-D grid, a discrete label's classes)."""

import numpy as np
import pytest

from cebra_core.analysis.metrics import EmptyBinError, bin_embedding, consistency_score, label_consistency, linear_r2
from cebra_core.sessions.rats import PUBLISHED


def reference_binning(embedding, label, lo, hi, n_bins=100):
    """CEBRA's align_embeddings for one embedding, written as its plain per-bin loop."""
    digit = np.digitize(label, np.linspace(lo, hi, n_bins))
    rows = []
    for k in range(1, n_bins):
        for width in (0, 1, 2):
            mask = np.abs(digit - k) <= width
            if mask.any():
                mean = embedding[mask].mean(axis=0)
                rows.append(mean / np.linalg.norm(mean))
                break
        else:
            raise AssertionError("empty bin")
    return np.array(rows)


def reference_r2(x, y):
    """R² of y on [x, 1] via the normal equations, uniform average over y's columns."""
    a = np.c_[x, np.ones(len(x))]
    coef = np.linalg.solve(a.T @ a, a.T @ y)
    res = ((y - a @ coef) ** 2).sum(0)
    tot = ((y - y.mean(0)) ** 2).sum(0)
    return float(np.mean(1 - res / tot))


def smooth_embedding(label, rng, noise=0.05):
    e = np.c_[np.cos(label * 2), np.sin(label * 2), np.cos(label * 3.7)] + rng.normal(0, noise, (len(label), 3))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def make_sessions(seed=0, lengths=(900, 1300, 700, 1100)):
    rng = np.random.default_rng(seed)
    labels = [rng.uniform(0, 1.6, n) for n in lengths]
    return [smooth_embedding(lab, rng) for lab in labels], labels, rng


def test_linear_r2_matches_normal_equations_and_edge_cases():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(99, 3)), rng.normal(size=(99, 4))
    y[:, 0] += x @ [1.0, -2.0, 0.5]
    assert linear_r2(x, y) == pytest.approx(reference_r2(x, y), abs=1e-12)
    assert linear_r2(x, x @ rng.normal(size=(3, 3)) + 4.0) == pytest.approx(1.0, abs=1e-12)
    # sklearn's r2_score rules for a constant target column: 1 if fitted exactly (always, with intercept).
    const = np.c_[y[:, 0], np.full(99, 2.0)]
    assert linear_r2(x, const) == pytest.approx((reference_r2(x, y[:, :1]) + 1.0) / 2, abs=1e-12)


def test_scores_equal_plain_reference_and_pair_order():
    embs, labels, _ = make_sessions()
    ids = list(PUBLISHED)
    scores, pairs, out_ids = consistency_score(embs, labels, ids)
    assert scores.shape == (12,) and pairs.shape == (12, 2) and out_ids.shape == (4,)
    assert out_ids.tolist() == ids
    expected_pairs = [(a, b) for a in ids for b in ids if a != b]
    assert [tuple(p) for p in pairs.tolist()] == expected_pairs
    assert pairs.tolist()[:4] == [["achilles", "buddy"], ["achilles", "cicero"], ["achilles", "gatsby"],
                                  ["buddy", "achilles"]]
    lo = min(lab.min() for lab in labels)
    hi = max(lab.max() for lab in labels)
    binned = [reference_binning(e, lab, lo, hi) for e, lab in zip(embs, labels)]
    expected = [reference_r2(binned[i], binned[j]) for i in range(4) for j in range(4) if i != j]
    np.testing.assert_allclose(scores, expected, atol=1e-10)
    assert 0.8 < scores.min() and scores.max() < 1.0  # related but noisy
    # Not symmetric: (a, b) predicts b from a.
    assert scores[0] != pytest.approx(scores[3], abs=1e-6)


def test_identical_and_rotated_copies_score_one_noise_near_zero():
    embs, labels, rng = make_sessions(seed=1, lengths=(1500, 1200))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    same = consistency_score([embs[0], embs[0]], [labels[0], labels[0]], ["a", "b"])[0]
    np.testing.assert_allclose(same, [1.0, 1.0], atol=1e-12)
    rotated = consistency_score([embs[0], embs[0] @ q], [labels[0], labels[0]], ["a", "b"])[0]
    np.testing.assert_allclose(rotated, [1.0, 1.0], atol=1e-12)
    noise = [rng.normal(size=(3000, 3)), rng.normal(size=(2500, 3))]
    unrelated = consistency_score(noise, [rng.uniform(0, 1.6, 3000), rng.uniform(0, 1.6, 2500)], ["a", "b"])[0]
    assert np.all(np.abs(unrelated) < 0.15), unrelated  # ~3/98 expected from 3 regressors on 99 bins
    related = consistency_score(embs, labels, ["a", "b"])[0]
    assert np.all(related > 0.9)


def test_default_ids_and_two_datasets_shapes():
    embs, labels, _ = make_sessions(lengths=(500, 600))
    scores, pairs, ids = consistency_score(embs, labels)
    assert scores.shape == (2,) and pairs.tolist() == [[0, 1], [1, 0]] and ids.tolist() == [0, 1]


def test_bin_edges_and_fallback():
    rng = np.random.default_rng(3)
    lo, hi = 0.0, 99.0  # edges at integers: label k - 0.5 lands in bin k
    label = np.arange(1, 100) - 0.5
    label = np.delete(label, [9])  # bin 10 empty -> falls back to bins 9..11
    emb = rng.normal(size=(len(label), 3))
    out = bin_embedding(emb, label, lo, hi)
    assert out.shape == (99, 3)
    fallback = emb[[8, 9]].mean(0)  # rows of bins 9 and 11
    np.testing.assert_allclose(out[9], fallback / np.linalg.norm(fallback), atol=1e-12)
    np.testing.assert_allclose(out, reference_binning(emb, label, lo, hi), atol=1e-12)
    # A value equal to the maximum is digitised to bin 100: only reachable through bin 99's fallback.
    label2 = np.r_[np.arange(1, 99) - 0.5, 99.0]  # bins 1..98, then the maximum in bin 100
    emb2 = rng.normal(size=(99, 3))
    out2 = bin_embedding(emb2, label2, lo, hi)
    last = emb2[[97, 98]].mean(0)  # bin 99 is empty: +-1 takes bins 98 and 100
    np.testing.assert_allclose(out2[98], last / np.linalg.norm(last), atol=1e-12)


def test_empty_bin_error_names_bin_and_dataset():
    rng = np.random.default_rng(4)
    gap = np.r_[np.linspace(0, 0.5, 400), np.linspace(1.0, 1.6, 400)]  # edges every 1.6 / 99
    full = np.linspace(0, 1.6, 800)
    # 0.5 lies in bin 31, so bin 34 is the first with nothing within 2 bins.
    with pytest.raises(ValueError, match=r"dataset 'buddy': label bin 34 of 99 .*no labels in \[0.501, 0.5818\)"):
        consistency_score([rng.normal(size=(800, 3)), rng.normal(size=(800, 3))], [full, gap], ["achilles", "buddy"])


def test_nan_rows_are_dropped_and_reported():
    embs, labels, _ = make_sessions(seed=5, lengths=(800, 900, 700))
    with_nan = [e.copy() for e in embs]
    with_nan[1][[3, 50, 51]] = np.nan
    with pytest.warns(RuntimeWarning, match=r"dataset 'b': dropped 3 of 900"):
        got = consistency_score(with_nan, labels, ["a", "b", "c"])[0]
    keep = np.ones(900, bool)
    keep[[3, 50, 51]] = False
    # Bin edges still come from all labels (CEBRA computes the range before dropping rows).
    lo, hi = min(lab.min() for lab in labels), max(lab.max() for lab in labels)
    binned = [reference_binning(embs[0], labels[0], lo, hi), reference_binning(embs[1][keep], labels[1][keep], lo, hi),
              reference_binning(embs[2], labels[2], lo, hi)]
    expected = [reference_r2(binned[i], binned[j]) for i in range(3) for j in range(3) if i != j]
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_repeated_ids_average_scores_but_keep_all_pairs():
    embs, labels, _ = make_sessions(seed=6)
    ids = ["a", "b", "a", "c"]
    scores, pairs, out_ids = consistency_score(embs, labels, ids)
    full, full_pairs, _ = consistency_score(embs, labels, [0, 1, 2, 3])
    # Pairs kept: every ordered pair of different ids, not de-duplicated (10 of 12), as CEBRA.
    assert pairs.shape == (10, 2) and out_ids.tolist() == ids
    # Scores: one per distinct (a, b) key in first-seen order: a-b, a-c, b-a, b-c, c-a, c-b.
    assert scores.shape == (6,)
    s = {tuple(p): v for p, v in zip(full_pairs.tolist(), full)}
    np.testing.assert_allclose(scores[0], (s[(0, 1)] + s[(2, 1)]) / 2, atol=1e-12)
    np.testing.assert_allclose(scores[3], s[(1, 3)], atol=1e-12)


def test_between_runs():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(500, 3))
    runs = [base, base @ rng.normal(size=(3, 3)) + rng.normal(0, 0.5, (500, 3)), rng.normal(size=(500, 5))]
    scores, pairs, ids = consistency_score(runs, between="runs")
    assert ids.tolist() == [0, 1, 2]
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    expected = [reference_r2(runs[i], runs[j]) for i in range(3) for j in range(3) if i != j]
    np.testing.assert_allclose(scores, expected, atol=1e-10)
    assert scores[0] > 0.5 and abs(scores[1]) < 0.05
    bad = [r.copy() for r in runs]
    bad[2][10] = np.nan
    with pytest.warns(RuntimeWarning, match="dropped 1 of 500"):
        consistency_score(bad, between="runs")
    with pytest.raises(ValueError, match="equal length"):
        consistency_score([base, base[:400]], between="runs")
    with pytest.raises(ValueError, match="no labels"):
        consistency_score(runs, labels=[np.zeros(500)] * 3, between="runs")
    with pytest.raises(ValueError, match="'datasets' or 'runs'"):
        consistency_score(runs, between="all")


def test_bad_input_errors():
    embs, labels, _ = make_sessions(lengths=(400, 500))
    with pytest.raises(ValueError, match=r"dataset 'b' \(index 1\): embedding has 500 rows but labels have 499"):
        consistency_score(embs, [labels[0], labels[1][:-1]], ["a", "b"])
    with pytest.raises(ValueError, match=r"dataset 'a' \(index 0\): labels must be 1-D, got shape \(400, 3\)"):
        consistency_score(embs, [np.c_[labels[0], labels[0], labels[0]], labels[1]], ["a", "b"])
    with pytest.raises(ValueError, match="at least two embeddings"):
        consistency_score(embs[:1], labels[:1])
    with pytest.raises(ValueError, match="at least two different datasets"):
        consistency_score(embs, labels, ["a", "a"])
    with pytest.raises(ValueError, match="needs labels"):
        consistency_score(embs)
    with pytest.raises(ValueError, match="2 embeddings but 1 label"):
        consistency_score(embs, labels[:1])
    nan_label = labels[1].copy()
    nan_label[0] = np.nan
    with pytest.raises(ValueError, match=r"'b'.*NaN"):
        consistency_score(embs, [labels[0], nan_label], ["a", "b"])


# ------------------------------------------------------------------------ label_consistency


def test_label_consistency_of_one_column_is_consistency_score():
    embs, labels, _ = make_sessions(seed=8)
    ids = list(PUBLISHED)
    for bins in (100, 40):
        ours = label_consistency(embs, labels, ids, "continuous", bins, columns=("position",))
        cebra = consistency_score(embs, labels, ids, num_discretization_bins=bins)
        for a, b in zip(ours, cebra):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"dataset 'buddy': label bin"):  # CEBRA's error, as is
        gap = [np.r_[np.linspace(0, 0.5, 400), np.linspace(1.0, 1.6, 400)]] * 2
        label_consistency([embs[0][:800], embs[1][:800]], [np.linspace(0, 1.6, 800), gap[1]], ["achilles", "buddy"])


def reference_grid(embedding, label, lo, hi, edges):
    """Mean embedding per cell of an (edges-1) x (edges-1) grid, row-major, written as a plain loop:
    a cell without rows takes the rows within 1, then 2 cells (a square around it); else NaN."""
    cells = edges - 1
    index = [np.clip(np.digitize(label[:, a], np.linspace(lo[a], hi[a], edges)), 1, cells) - 1 for a in (0, 1)]
    out = np.full((cells * cells, embedding.shape[1]), np.nan)
    for i in range(cells):
        for j in range(cells):
            for radius in (0, 1, 2):
                rows = (np.abs(index[0] - i) <= radius) & (np.abs(index[1] - j) <= radius)
                if rows.any():
                    mean = embedding[rows].mean(0)
                    out[i * cells + j] = mean / np.linalg.norm(mean)
                    break
    return out


def place_code(xy, rng, noise=0.05):
    """A smooth 3-D code of a 2-D place (the same function in every session)."""
    e = np.c_[np.cos(3 * xy[:, 0]), np.sin(3 * xy[:, 1]), xy[:, 0] * xy[:, 1] + 0.5]
    return e + rng.normal(0, noise, e.shape)


CORNERS = np.array([[0.0, 0.0], [1.0, 1.0]])  # in every session: the grid spans exactly [0, 1]^2


def test_label_consistency_on_a_2d_grid():
    rng = np.random.default_rng(9)
    places = [np.r_[CORNERS, rng.uniform(0, 1, (n, 2))] for n in (3000, 2500, 2000)]
    code = [place_code(p, rng) for p in places]
    scores, pairs, ids = label_consistency(code, places, ["a", "b", "c"], "continuous", 100)
    assert pairs.tolist() == [[a, b] for a in "abc" for b in "abc" if a != b] and ids.tolist() == ["a", "b", "c"]
    # the plain reference: 100 edges of a 1-D label -> 10 x 10 edges, 81 cells
    binned = [reference_grid(e, p, np.zeros(2), np.ones(2), 10) for e, p in zip(code, places)]
    assert not np.isnan(np.stack(binned)).any()
    np.testing.assert_allclose(scores, [reference_r2(binned[i], binned[j]) for i in range(3) for j in range(3) if i != j],
                               atol=1e-10)
    assert scores.min() > 0.99  # the same code of the place in every session
    same = label_consistency([code[0], code[0]], [places[0], places[0]], ["a", "b"], "continuous", 100)[0]
    np.testing.assert_allclose(same, [1.0, 1.0], atol=1e-12)
    noise = [rng.normal(size=(len(p), 3)) for p in places]
    unrelated = label_consistency(noise, places, ["a", "b", "c"], "continuous", 100)[0]
    assert np.all(np.abs(unrelated) < 0.15), unrelated  # about 3 / 80 from 3 regressors on 81 cells


def test_label_consistency_names_a_cell_that_only_some_sessions_miss():
    rng = np.random.default_rng(10)
    places = [np.r_[CORNERS, rng.uniform(0, 1, (2000, 2))] for _ in range(3)]
    quadrant = (places[1][:, 0] > 0.5) & (places[1][:, 1] > 0.5)
    places[1] = places[1][~quadrant]  # b never enters the top-right quadrant (the grid still spans [0, 1]^2)
    code = [place_code(p, rng) for p in places]
    # the cells from x, y > 0.778 on are more than 2 cells from b's rows: 2 x 2 cells, the first named
    with pytest.raises(EmptyBinError, match=r"^grid cell x 0.778-0.889, y 0.778-0.889 has no samples in \['b'\] "
                                            r"but has in \['a', 'c'\] \(4 such bins\)") as error:
        label_consistency(code, places, ["a", "b", "c"], "continuous", 100, columns=("x", "y"))
    assert error.value.problem.startswith("grid cell x 0.778-0.889, y 0.778-0.889 has no samples in ['b']")


def test_label_consistency_drops_cells_that_every_session_misses():
    """An L-shaped arena (x < 0.3 or y < 0.3) inside the grid's square: the cells far from it are
    empty in every session and left out; the others are compared."""
    rng = np.random.default_rng(11)
    places = []
    for n in (3000, 2500):
        xy = rng.uniform(0, 1, (3 * n, 2))
        places.append(np.r_[[[0.0, 0.0], [1.0, 0.1], [0.1, 1.0]], xy[(xy[:, 0] < 0.3) | (xy[:, 1] < 0.3)][:n]])
    code = [place_code(p, rng) for p in places]
    scores, _, _ = label_consistency(code, places, ["a", "b"], "continuous", 100)
    binned = [reference_grid(e, p, np.zeros(2), np.ones(2), 10) for e, p in zip(code, places)]
    empty = np.isnan(binned[0]).any(1)
    np.testing.assert_array_equal(empty, np.isnan(binned[1]).any(1))
    assert 10 < empty.sum() < 30  # the cells x, y >= 0.556 (4 x 4 = 16)
    kept = [b[~empty] for b in binned]
    np.testing.assert_allclose(scores, [reference_r2(kept[0], kept[1]), reference_r2(kept[1], kept[0])], atol=1e-10)
    assert scores.min() > 0.98


def class_code(classes, rng, centres, noise=0.3):
    return centres[classes] + rng.normal(0, noise, (len(classes), centres.shape[1]))


def test_label_consistency_on_a_discrete_label():
    """One bin per class: 30 classes, so a 3-D embedding cannot fit them all by chance."""
    rng = np.random.default_rng(12)
    centres = rng.normal(size=(30, 3))
    classes = [rng.integers(0, 30, n) for n in (3000, 2500, 2000)]
    code = [class_code(c, rng, centres) for c in classes]
    scores, pairs, ids = label_consistency(code, classes, ["a", "b", "c"], "discrete")
    means = [np.stack([e[c == k].mean(0) for k in range(30)]) for e, c in zip(code, classes)]
    means = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in means]
    np.testing.assert_allclose(scores, [reference_r2(means[i], means[j]) for i in range(3) for j in range(3) if i != j],
                               atol=1e-10)
    assert scores.min() > 0.99
    assert pairs.tolist() == [[a, b] for a in "abc" for b in "abc" if a != b]
    noise = [rng.normal(size=(len(c), 3)) for c in classes]
    unrelated = label_consistency(noise, classes, ["a", "b", "c"], "discrete")[0]
    assert np.all(np.abs(unrelated) < 0.3), unrelated  # about 3 / 29 from 3 regressors on 30 classes
    # A class one session never shows is an error naming it and the sessions.
    missing = [c.copy() for c in classes]
    missing[2][missing[2] == 7] = 8
    with pytest.raises(EmptyBinError, match=r"class 7 has no samples in \['c'\] but has in \['a', 'b'\]"):
        label_consistency(code, missing, ["a", "b", "c"], "discrete")
    missing = [c.copy() for c in classes]
    missing[0][missing[0] == 29] = 0  # the first session lacks a class: the classes are those of all sessions
    with pytest.raises(EmptyBinError, match=r"class 29 has no samples in \['a'\] but has in \['b', 'c'\]"):
        label_consistency(code, missing, ["a", "b", "c"], "discrete")


def test_label_consistency_warns_where_the_classes_fit_exactly():
    """4 classes in a 3-D embedding: an affine map fits 4 points exactly, so even noise scores 1 (a warning)."""
    rng = np.random.default_rng(3)
    classes = [rng.integers(0, 4, n) for n in (800, 900)]
    noise = [rng.normal(size=(len(c), 3)) for c in classes]
    with pytest.warns(UserWarning, match="4 classes of a 3-D embedding: an affine map fits 4 or fewer points exactly"):
        scores = label_consistency(noise, classes, ["a", "b"], "discrete")[0]
    np.testing.assert_allclose(scores, 1.0, atol=1e-9)
