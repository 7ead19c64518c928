"""The analysis functions against CEBRA 0.6.1's own, on the same random inputs.

Runs only where ``cebra==0.6.1`` is importable (``pip install cebra==0.6.1 torch==2.13.0`` next
to the project: about 3 s, it adds cebra, scikit-learn and three small packages, no other torch).
"""

import warnings

import numpy as np
import pytest

cebra = pytest.importorskip(
    "cebra",
    reason="CEBRA 0.6.1 is not installed here: pip install cebra==0.6.1 torch==2.13.0 to run the reference tests")
if cebra.__version__ != "0.6.1":
    pytest.skip(f"reference tests are pinned to CEBRA 0.6.1, found {cebra.__version__}", allow_module_level=True)

import cebra.data.helper  # noqa: E402
import cebra.integrations.matplotlib  # noqa: E402
import cebra.integrations.sklearn.metrics  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402  (CEBRA's plot uses pyplot; headless it picks Agg)

from cebra_core.analysis.alignment import OrthogonalProcrustesAlignment, nearest_label_indices  # noqa: E402
from cebra_core.analysis.decoding import knn_predict  # noqa: E402
from cebra_core.analysis.metrics import consistency_score  # noqa: E402
from cebra_core.sessions.rats import PUBLISHED  # noqa: E402
from cebra_core.figures.plots import plot_consistency  # noqa: E402

pytestmark = pytest.mark.reference


def demo_labels(rng, n):
    right = rng.random(n) < 0.5
    return np.c_[rng.uniform(0, 1.6, n), right, ~right]


def test_alignment_rotation_equals_cebra():
    rng = np.random.default_rng(0)
    # Continuous float64 labels: no ties, the rotation must be CEBRA's to rounding.
    ref, data = rng.normal(size=(1200, 3)), rng.normal(size=(2000, 3))
    ref_label, label = rng.uniform(0, 1.6, (1200, 3)), rng.uniform(0, 1.6, (2000, 3))
    theirs = cebra.data.helper.OrthogonalProcrustesAlignment().fit(ref, data, ref_label, label)._transform
    ours = OrthogonalProcrustesAlignment().fit(ref, data, ref_label, label).rotation_
    np.testing.assert_allclose(ours, theirs, atol=1e-10)
    # Demo-like float32 data and labels, related embeddings (a rotated noisy copy of the same map):
    # CEBRA's float32 distances tie often, which changes the rotation only at rounding level.
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    ref_label, label = demo_labels(rng, 1500).astype(np.float32), demo_labels(rng, 2500).astype(np.float32)

    def embed(lab):
        e = np.c_[np.cos(2 * lab[:, 0]), np.sin(2 * lab[:, 0]), lab[:, 1] - 0.5] + rng.normal(0, 0.05, (len(lab), 3))
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)

    ref, data = embed(ref_label), (embed(label) @ q.T).astype(np.float32)
    # Our neighbours have exactly CEBRA's rounded distances (only the order among ties differs).
    dist = cebra.data.helper.OrthogonalProcrustesAlignment()._distance(label, ref_label)
    ours_idx = nearest_label_indices(label, ref_label, 5)
    np.testing.assert_array_equal(np.take_along_axis(dist, ours_idx, 1), np.sort(dist, axis=1)[:, :5])
    theirs_al = cebra.data.helper.OrthogonalProcrustesAlignment()
    aligned_theirs = theirs_al.fit_transform(ref, data, ref_label, label)
    ours_al = OrthogonalProcrustesAlignment()
    aligned_ours = ours_al.fit_transform(ref, data, ref_label, label)
    np.testing.assert_allclose(ours_al.rotation_, theirs_al._transform, atol=2e-4)
    np.testing.assert_allclose(aligned_ours, aligned_theirs, atol=5e-4)
    assert aligned_ours.dtype == aligned_theirs.dtype == np.float32


def test_alignment_subsample_equals_cebra():
    rng = np.random.default_rng(1)
    ref, data = rng.normal(size=(800, 3)), rng.normal(size=(1000, 3))
    ref_label, label = rng.uniform(size=800), rng.uniform(size=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(3)
        theirs = cebra.data.helper.OrthogonalProcrustesAlignment(top_k=4, subsample=1200).fit(
            ref, data, ref_label, label)._transform
        np.random.seed(3)
        ours = OrthogonalProcrustesAlignment(top_k=4, subsample=1200).fit(ref, data, ref_label, label).rotation_
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


def sessions(rng, lengths, dtype):
    labels = [rng.uniform(0, 1.6, n) for n in lengths]
    embs = []
    for lab in labels:
        e = np.c_[np.cos(2 * lab), np.sin(2 * lab), np.cos(3.7 * lab)] + rng.normal(0, 0.3, (len(lab), 3))
        embs.append((e / np.linalg.norm(e, axis=1, keepdims=True)).astype(dtype))
    return embs, labels


@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-9), (np.float32, 2e-5)])
def test_consistency_datasets_equals_cebra(dtype, atol):
    rng = np.random.default_rng(2)
    embs, labels = sessions(rng, (1000, 700, 1500, 900), dtype)
    embs[1][[5, 17]] = np.nan  # dropped by both
    labels[3] = labels[3][labels[3] < 1.575]  # the top bins need the +-1/+-2 fallback
    embs[3] = embs[3][: len(labels[3])]
    ids = list(PUBLISHED)
    theirs = cebra.integrations.sklearn.metrics.consistency_score(
        [e.copy() for e in embs], between="datasets", labels=[lab.copy() for lab in labels], dataset_ids=ids)
    with pytest.warns(RuntimeWarning, match="'buddy': dropped 2"):
        ours = consistency_score(embs, labels, ids)
    np.testing.assert_allclose(ours[0], theirs[0], atol=atol)
    assert ours[1].tolist() == theirs[1].tolist() and ours[1].shape == theirs[1].shape
    assert ours[2].tolist() == theirs[2].tolist()
    # Repeated ids: same averaging and the same (not de-duplicated) pairs.
    rep = ["a", "b", "a", "c"]
    theirs = cebra.integrations.sklearn.metrics.consistency_score(
        embs, between="datasets", labels=labels, dataset_ids=rep)
    with pytest.warns(RuntimeWarning):
        ours = consistency_score(embs, labels, rep)
    np.testing.assert_allclose(ours[0], theirs[0], atol=atol)
    assert ours[1].tolist() == theirs[1].tolist()


def test_consistency_runs_equals_cebra():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(800, 3))
    runs = [base, base @ rng.normal(size=(3, 3)) + rng.normal(0, 0.4, (800, 3)), rng.normal(size=(800, 4))]
    theirs = cebra.integrations.sklearn.metrics.consistency_score(runs, between="runs")
    ours = consistency_score(runs, between="runs")
    np.testing.assert_allclose(ours[0], theirs[0], atol=1e-10)
    assert ours[1].tolist() == theirs[1].tolist() and ours[2].tolist() == theirs[2].tolist()


def test_plot_consistency_matrix_and_text_equal_cebra():
    rng = np.random.default_rng(4)
    embs, labels = sessions(rng, (900, 800, 1000), np.float64)
    scores, pairs, ids = consistency_score(embs, labels, ["x", "y", "z"])
    theirs = cebra.integrations.matplotlib.plot_consistency(scores, pairs=pairs, datasets=ids)
    ours = plot_consistency(scores, pairs, ids)
    np.testing.assert_allclose(np.asarray(ours.images[0].get_array(), float),
                               np.asarray(theirs.images[0].get_array(), float), atol=1e-12)
    assert [t.get_text() for t in ours.texts] == [t.get_text() for t in theirs.texts]
    assert [t.get_text() for t in ours.get_xticklabels()] == [t.get_text() for t in theirs.get_xticklabels()]
    assert ours.figure.axes[1].get_ylabel() == theirs.figure.axes[1].get_ylabel()
    plt.close("all")


def test_knn_decoder_equals_cebra():
    rng = np.random.default_rng(5)
    train, test = rng.normal(size=(1500, 3)), rng.normal(size=(400, 3))
    target = rng.uniform(0, 1.6, 1500)
    theirs = cebra.KNNDecoder(n_neighbors=36, metric="cosine").fit(train, target).predict(test)
    np.testing.assert_allclose(knn_predict(train, target, test, n_neighbors=36), theirs, atol=1e-10)
