"""OrthogonalProcrustesAlignment against a brute-force copy of CEBRA 0.6.1's algorithm."""

import tracemalloc

import numpy as np
import pytest
import scipy.linalg

import pandas as pd

from cebra_core.analysis.alignment import (
    OrthogonalProcrustesAlignment,
    align_to_reference,
    nearest_label_indices,
)
from cebra_core.analysis.tables import alignment_labels, embedding_frame, label_columns


def brute_force_rotation(ref_data, data, ref_label, label, top_k=5, subsample=None):
    """CEBRA's fit written plainly: full distance matrix, argsort, repeated rows, scipy solve."""
    ref_label = ref_label.reshape(len(ref_label), -1)
    label = label.reshape(len(label), -1)
    dist = (label**2).sum(1)[:, None] + (ref_label**2).sum(1)[None, :] - 2 * np.einsum("nd,md->nm", label, ref_label)
    target_idx = np.argsort(dist, axis=1)[:, :top_k]
    X = data[:, None].repeat(top_k, axis=1).reshape(-1, data.shape[1])
    Y = ref_data[target_idx].reshape(-1, ref_data.shape[1])
    if subsample is not None and subsample <= len(X):
        idc = np.random.choice(len(X), subsample)
        X, Y = X[idc], Y[idc]
    rotation, _ = scipy.linalg.orthogonal_procrustes(X, Y)
    return rotation


def random_rotation(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("label_dims,emb_dims", [(1, 3), (3, 3), (2, 8)])
def test_rotation_matches_brute_force_on_continuous_labels(label_dims, emb_dims):
    rng = np.random.default_rng(label_dims * 10 + emb_dims)
    ref_label = rng.uniform(0, 1.6, (700, label_dims))
    label = rng.uniform(0, 1.6, (1300, label_dims))
    ref_data = rng.normal(size=(700, emb_dims))
    data = rng.normal(size=(1300, emb_dims))
    expected = brute_force_rotation(ref_data, data, ref_label, label)
    got = OrthogonalProcrustesAlignment().fit(ref_data, data, ref_label, label).rotation_
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert got.shape == (emb_dims, emb_dims)
    np.testing.assert_allclose(got.T @ got, np.eye(emb_dims), atol=1e-12)


def test_1d_labels_and_other_top_k_match_brute_force():
    rng = np.random.default_rng(7)
    ref_label, label = rng.uniform(size=400), rng.uniform(size=900)
    ref_data, data = rng.normal(size=(400, 3)), rng.normal(size=(900, 3))
    for top_k in (1, 3, 12):
        expected = brute_force_rotation(ref_data, data, ref_label, label, top_k=top_k)
        got = OrthogonalProcrustesAlignment(top_k=top_k).fit(ref_data, data, ref_label, label).rotation_
        np.testing.assert_allclose(got, expected, atol=1e-10)


def test_neighbours_equal_cebra_distances_up_to_ties_for_float32_demo_labels():
    """Float32 [position, right, left] labels as dense as the real sessions: CEBRA's float32
    formula rounds neighbour distances to a few ulps, so its picks are not the exact nearest.
    Ours must have exactly CEBRA's rounded distances, ties broken by exact distance then index."""
    rng = np.random.default_rng(3)

    def labels(n):
        right = rng.random(n) < 0.5
        return np.c_[rng.uniform(0, 1.6, n), right, ~right].astype(np.float32)

    ref_label, label = labels(5000), labels(1500)
    dist = (label**2).sum(1)[:, None] + (ref_label**2).sum(1)[None, :] - 2 * np.einsum("nd,md->nm", label, ref_label)
    idx = nearest_label_indices(label, ref_label, 5)
    expected_d = np.sort(np.partition(dist, 5, axis=1)[:, :5], axis=1)
    np.testing.assert_array_equal(np.take_along_axis(dist, idx, 1), expected_d)
    # The exact nearest 5 differ from CEBRA's picks on many rows: the re-ranking is needed.
    exact = ((label.astype(np.float64)[:, None] - ref_label.astype(np.float64)[None]) ** 2).sum(-1)
    exact_top = np.argsort(exact, axis=1)[:, :5]
    assert not np.array_equal(np.take_along_axis(dist, exact_top, 1), expected_d)
    # Full-row reference of the tie rule: (CEBRA distance, exact distance, index).
    part = np.argpartition(dist, 64, axis=1)[:, :64]
    order = np.lexsort((part, np.take_along_axis(exact, part, 1), np.take_along_axis(dist, part, 1)), axis=-1)
    np.testing.assert_array_equal(idx, np.take_along_axis(part, order[:, :5], 1))
    assert np.all(ref_label[idx, 1] == label[:, None, 1])  # the direction flags always match


def test_many_duplicate_labels_stay_exact():
    """Heavy exact ties (a rat resting at the track end) widen the candidate search; still exact."""
    rng = np.random.default_rng(12)
    ref_label = np.r_[np.zeros(3000), rng.uniform(0, 1.6, 2000)].astype(np.float32)
    label = np.r_[np.zeros(50), rng.uniform(0, 1.6, 500)].astype(np.float32)
    idx = nearest_label_indices(label, ref_label, 5)
    np.testing.assert_array_equal(idx[:50], np.tile(np.arange(5), (50, 1)))  # lowest index among ties
    dist = (label**2)[:, None] + (ref_label**2)[None, :] - 2 * label[:, None] * ref_label[None]  # CEBRA's formula
    np.testing.assert_array_equal(np.take_along_axis(dist, idx, 1), np.sort(dist, axis=1)[:, :5])


def test_subsample_uses_cebra_draw():
    rng = np.random.default_rng(11)
    ref_label, label = rng.uniform(size=(500, 2)), rng.uniform(size=(800, 2))
    ref_data, data = rng.normal(size=(500, 3)), rng.normal(size=(800, 3))
    np.random.seed(5)
    expected = brute_force_rotation(ref_data, data, ref_label, label, subsample=1500)
    np.random.seed(5)
    got = OrthogonalProcrustesAlignment(subsample=1500).fit(ref_data, data, ref_label, label).rotation_
    np.testing.assert_allclose(got, expected, atol=1e-10)
    with pytest.warns(UserWarning, match="larger than"):
        full = OrthogonalProcrustesAlignment(subsample=10**6).fit(ref_data, data, ref_label, label).rotation_
    np.testing.assert_allclose(full, brute_force_rotation(ref_data, data, ref_label, label), atol=1e-10)


def test_recovers_known_rotation():
    rng = np.random.default_rng(0)
    q = random_rotation(rng, 3)
    # Reference: unit vectors that vary smoothly with a 1-D label; data: other samples, rotated.
    def embed(lab):
        e = np.c_[np.cos(lab * 2), np.sin(lab * 2), np.cos(lab * 5)]
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    ref_label, label = rng.uniform(0, 1.6, 3000), rng.uniform(0, 1.6, 5000)
    ref_data = embed(ref_label)
    data = embed(label) @ q.T  # data @ q is back in the reference frame
    align = OrthogonalProcrustesAlignment()
    aligned = align.fit_transform(ref_data, data, ref_label, label)
    np.testing.assert_allclose(align.rotation_, q, atol=2e-3)
    np.testing.assert_allclose(aligned, embed(label), atol=5e-3)
    # Exact when the labels coincide and top_k=1.
    exact = OrthogonalProcrustesAlignment(top_k=1).fit(ref_data, ref_data @ q.T, ref_label, ref_label)
    np.testing.assert_allclose(exact.rotation_, q, atol=1e-12)


def test_no_labels_same_length_uses_time_index():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(200, 4))
    q = random_rotation(rng, 4)
    got = OrthogonalProcrustesAlignment(top_k=1).fit(ref, ref @ q.T).rotation_
    np.testing.assert_allclose(got, q, atol=1e-12)
    t = np.arange(200)[:, None]
    np.testing.assert_allclose(OrthogonalProcrustesAlignment().fit(ref, ref @ q.T).rotation_,
                               brute_force_rotation(ref, ref @ q.T, t, t), atol=1e-12)


def test_transform_keeps_shape_dtype_and_norms():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(300, 3)).astype(np.float32)
    data = rng.normal(size=(400, 3)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    out = OrthogonalProcrustesAlignment().fit_transform(ref, data, rng.uniform(size=300), rng.uniform(size=400))
    assert out.shape == data.shape and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)


def test_memory_does_not_grow_with_n_times_m():
    """A full 20000 x 4000 float64 distance matrix would be 640 MB; the search must stay far below."""
    rng = np.random.default_rng(1)
    ref_label = rng.uniform(size=(4000, 3)).astype(np.float32)
    label = rng.uniform(size=(20000, 3)).astype(np.float32)
    ref, data = rng.normal(size=(4000, 3)), rng.normal(size=(20000, 3))
    tracemalloc.start()
    OrthogonalProcrustesAlignment().fit(ref, data, ref_label, label)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_align_to_reference_rotates_all_but_reference():
    rng = np.random.default_rng(8)
    lab = {r: rng.uniform(0, 1.6, (n, 1)) for r, n in (("a", 800), ("b", 600), ("c", 700))}
    emb = {r: np.c_[np.cos(x[:, 0] * 2), np.sin(x[:, 0] * 2), np.zeros(len(x))] for r, x in lab.items()}
    q = random_rotation(rng, 3)
    emb["b"] = emb["b"] @ q.T
    out = align_to_reference(emb, lab)
    assert list(out) == ["a", "b", "c"]
    assert out["a"] is not None and np.array_equal(out["a"], emb["a"])
    truth = np.c_[np.cos(lab["b"][:, 0] * 2), np.sin(lab["b"][:, 0] * 2), np.zeros(600)]
    np.testing.assert_allclose(out["b"][:, :2], truth[:, :2], atol=1e-2)
    with pytest.raises(ValueError, match="'z'"):
        align_to_reference(emb, lab, reference="z")


def test_errors():
    rng = np.random.default_rng(9)
    ref, data = rng.normal(size=(50, 3)), rng.normal(size=(60, 3))
    align = OrthogonalProcrustesAlignment()
    with pytest.raises(ValueError, match="call fit"):
        align.transform(data)
    with pytest.raises(ValueError, match="missing labels"):
        align.fit(ref, data)
    with pytest.raises(ValueError, match="both ref_label and label"):
        align.fit(ref, ref, ref_label=np.arange(50))
    with pytest.raises(ValueError, match="features"):
        align.fit(ref, data[:, :2], np.arange(50.0), np.arange(60.0))
    with pytest.raises(ValueError, match="data has 60 rows but label has 59"):
        align.fit(ref, data, np.arange(50.0), np.arange(59.0))
    with pytest.raises(ValueError, match="at least top_k"):
        align.fit(ref[:3], data, np.arange(3.0), np.arange(60.0))
    bad = data.copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        align.fit(ref, bad, np.arange(50.0), np.arange(60.0))


# ------------------------------------------------------------ what an embedding table aligns on


def test_the_rat_tracks_alignment_labels_are_its_columns_as_stored():
    rng = np.random.default_rng(13)
    right = rng.random(500) < 0.5
    labels = pd.DataFrame({"position": rng.uniform(0, 1.6, 500), "right": right, "left": ~right}).astype(np.float32)
    frame = embedding_frame("achilles", rng.normal(size=(500, 3)), labels, part="all")
    assert label_columns(frame) == ["position", "right", "left"] and "direction" not in frame.columns
    got = alignment_labels(frame)
    assert got.dtype == np.float32  # as stored: CEBRA's distances round in float32 on the demo's labels
    np.testing.assert_array_equal(got, labels.to_numpy())


def table_with_classes(rng, n, scale=1.0):
    """An embedding table with a continuous label x (0 .. ``scale``) and a discrete context (0 .. 3),
    whose embedding is a function of both (each context its own plane)."""
    x = rng.uniform(0, scale, n).astype(np.float32)
    context = rng.integers(0, 4, n)
    z = np.c_[np.cos(3 * x / scale), np.sin(3 * x / scale), np.zeros(n), np.zeros(n)]
    z[np.arange(n), 2 + context % 2] = 1.0 + context // 2
    return embedding_frame("s", z, pd.DataFrame({"x": x, "context": context.astype(np.int64)}))


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_alignment_labels_match_a_discrete_class_only_within_it(scale):
    rng = np.random.default_rng(14)
    ref, frame = table_with_classes(rng, 1500, scale), table_with_classes(rng, 800, scale)
    ref_label, label = alignment_labels(ref), alignment_labels(frame)
    assert ref_label.shape == (1500, 2) and label.shape == (800, 2)
    idx = nearest_label_indices(label, ref_label, 5)
    classes, ref_classes = frame["context"].to_numpy(), ref["context"].to_numpy()
    assert np.all(ref_classes[idx] == classes[:, None])  # every match within its class
    # within the class, the nearest rows in x (up to the rounding of CEBRA's distance formula)
    x, ref_x = frame["x"].to_numpy(np.float64), ref["x"].to_numpy(np.float64)
    for row in range(0, 800, 37):
        same = np.flatnonzero(ref_classes == classes[row])
        nearest = np.sort(np.abs(ref_x[same] - x[row]))[:5]
        np.testing.assert_allclose(np.sort(np.abs(ref_x[idx[row]] - x[row])), nearest, atol=1e-3 * scale)
    # Without the class, the nearest x of any class would be taken (the check above would fail).
    idx_x = nearest_label_indices(x, ref_x, 5)
    assert np.mean(ref_classes[idx_x] == classes[:, None]) < 0.5
    # The alignment on these labels recovers a rotation between two such tables.
    q = random_rotation(rng, 4)
    z = [f"z{d}" for d in range(4)]
    align = OrthogonalProcrustesAlignment().fit(ref[z].to_numpy(), frame[z].to_numpy() @ q.T, ref_label, label)
    np.testing.assert_allclose(align.rotation_, q, atol=5e-3)
    on_x = OrthogonalProcrustesAlignment().fit(ref[z].to_numpy(), frame[z].to_numpy() @ q.T, ref_x, x)
    assert np.abs(on_x.rotation_ - q).max() > 0.3  # matched across classes: the rotation is lost
    # A table whose only label is discrete aligns on its class alone.
    only = [f.drop(columns="x") for f in (ref, frame)]
    idx = nearest_label_indices(alignment_labels(only[1]), alignment_labels(only[0]), 5)
    assert alignment_labels(only[1]).shape == (800, 1) and np.all(ref_classes[idx] == classes[:, None])
