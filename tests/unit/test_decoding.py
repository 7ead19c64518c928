"""kNN position decoding within and across animals."""

import numpy as np
import pytest

from cebra_core.analysis.alignment import OrthogonalProcrustesAlignment
from cebra_core.analysis.decoding import (
    cross_decode,
    cross_decode_table,
    knn_decode,
    knn_predict,
    pooled_decode,
)


def ring_session(rng, T, noise=0.05, rotation=None):
    """Position runs back and forth on a 1.6 m track; the embedding is a noisy arc on the sphere."""
    pos = 0.8 + 0.8 * np.sin(np.arange(T) / 150)
    theta = pos / 1.6 * np.pi
    e = np.c_[np.cos(theta), np.sin(theta), np.full(T, 0.3)] + rng.normal(0, noise, (T, 3))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return (e if rotation is None else e @ rotation), pos


def test_knn_predict_equals_brute_force_cosine():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(600, 4)), rng.normal(size=(200, 4))
    target = rng.uniform(size=600)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    cos_dist = 1 - unit(test) @ unit(train).T
    idx = np.argsort(cos_dist, axis=1)[:, :7]
    np.testing.assert_allclose(knn_predict(train, target, test, n_neighbors=7), target[idx].mean(1), atol=1e-12)
    euc = ((test[:, None] - train[None]) ** 2).sum(-1)
    idx = np.argsort(euc, axis=1)[:, :3]
    np.testing.assert_allclose(knn_predict(train, target, test, 3, "euclidean"), target[idx].mean(1), atol=1e-12)


def test_knn_decode_time_split_and_scores():
    rng = np.random.default_rng(1)
    emb, pos = ring_session(rng, 5000)
    res = knn_decode(emb, pos)
    assert res.n_train == 4000 and res.n_test == 1000
    np.testing.assert_array_equal(res.truth, pos[4000:])
    assert res.r2 > 0.95
    assert 0.1 < res.median_error_cm < 5.0
    manual = np.median(np.abs(res.prediction - res.truth)) * 100
    assert res.median_error_cm == pytest.approx(manual)
    # Shuffled embedding: no information left.
    bad = knn_decode(rng.permutation(emb), pos)
    assert bad.r2 < 0.2 and bad.median_error_cm > 20


def test_cross_decode_needs_a_shared_space():
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    emb_a, pos_a = ring_session(rng, 4000)
    emb_b, pos_b = ring_session(rng, 3000, rotation=q)
    same_space = cross_decode(emb_a, pos_a, emb_b @ q.T, pos_b)
    assert same_space.r2 > 0.95 and same_space.n_train == 4000 and same_space.n_test == 3000
    rotated = cross_decode(emb_a, pos_a, emb_b, pos_b)
    assert rotated.r2 < 0.5
    aligned = OrthogonalProcrustesAlignment().fit_transform(emb_a, emb_b, pos_a, pos_b)
    assert cross_decode(emb_a, pos_a, aligned, pos_b).r2 > 0.95


def test_cross_decode_table():
    rng = np.random.default_rng(3)
    embs, positions = {}, {}
    for name, T in (("achilles", 2000), ("buddy", 1500)):
        embs[name], positions[name] = ring_session(rng, T)
    table = cross_decode_table(embs, positions, n_neighbors=10)
    assert list(table.columns) == ["train", "test", "r2", "median_error_cm", "n_train", "n_test"]
    assert table[["train", "test"]].values.tolist() == [["achilles", "achilles"], ["achilles", "buddy"],
                                                       ["buddy", "achilles"], ["buddy", "buddy"]]
    assert table.loc[0, "n_train"] == 1600 and table.loc[1, "n_train"] == 2000
    assert (table["r2"] > 0.9).all()


def test_pooled_decode_tests_on_the_samples_knn_decode_tests_on():
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    trained = [ring_session(rng, T) for T in (2000, 1500, 1000)]
    emb, pos = ring_session(rng, 3000)
    res = pooled_decode([e for e, _ in trained], [p for _, p in trained], emb, pos, n_neighbors=10)
    own = knn_decode(emb, pos, n_neighbors=10)
    assert res.n_train == 4500 and res.n_test == own.n_test == 600
    np.testing.assert_array_equal(res.truth, own.truth)
    manual = cross_decode(np.concatenate([e for e, _ in trained]), np.concatenate([p for _, p in trained]),
                          emb[2400:], pos[2400:], n_neighbors=10)
    np.testing.assert_array_equal(res.prediction, manual.prediction)
    assert res.r2 > 0.95 and res.median_error_cm < 5
    assert pooled_decode([trained[0][0]], [trained[0][1]], emb, pos, train_fraction=0).n_test == 3000
    rotated = pooled_decode([e for e, _ in trained], [p for _, p in trained], emb @ q, pos, n_neighbors=10)
    assert rotated.r2 < 0.5  # another space: the decoder does not transfer
    with pytest.raises(ValueError, match="need one position per embedding"):
        pooled_decode([emb, emb], [pos], emb, pos)
    with pytest.raises(ValueError, match="train 1: embedding has 3000 rows but position has 2999"):
        pooled_decode([emb, emb], [pos, pos[:-1]], emb, pos)
    with pytest.raises(ValueError, match="train_fraction"):
        pooled_decode([emb], [pos], emb, pos, train_fraction=1.0)


def test_errors():
    rng = np.random.default_rng(4)
    emb, pos = ring_session(rng, 500)
    with pytest.raises(ValueError, match="500 rows but position has 499"):
        knn_decode(emb, pos[:-1])
    with pytest.raises(ValueError, match="position must be 1-D"):
        knn_decode(emb, np.c_[pos, pos])
    with pytest.raises(ValueError, match="train_fraction"):
        knn_decode(emb, pos, train_fraction=1.0)
    with pytest.raises(ValueError, match="exceeds"):
        knn_predict(emb[:5], pos[:5], emb, n_neighbors=6)
    bad = emb.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="test: embedding or position contains NaN"):
        cross_decode(emb, pos, bad, pos)
    with pytest.raises(ValueError, match="metric"):
        knn_predict(emb, pos, emb, metric="manhattan")
