"""kNN decoding within and across animals: a continuous label regressed (errors in the label's own
units), a discrete label classified, and the chance level beside every score."""

import numpy as np
import pytest

from cebra_core.analysis.alignment import OrthogonalProcrustesAlignment
from cebra_core.analysis.decoding import (
    CHANCE_SEED,
    METRICS,
    cross_decode,
    cross_decode_table,
    decode,
    knn_classify,
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
    assert 0.001 < res.median_error < 0.05  # metres, the label's own unit (0.1 to 5 cm)
    manual = np.median(np.abs(res.prediction - res.truth))  # no unit conversion
    assert res.median_error == pytest.approx(manual)
    assert not hasattr(res, "median_error_cm")
    # Shuffled embedding: no information left.
    bad = knn_decode(rng.permutation(emb), pos)
    assert bad.r2 < 0.2 and bad.median_error > 0.2


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
    assert list(table.columns) == ["train", "test", "r2", "median_error", "n_train", "n_test"]
    assert table[["train", "test"]].values.tolist() == [["achilles", "achilles"], ["achilles", "buddy"],
                                                       ["buddy", "achilles"], ["buddy", "buddy"]]
    assert table.loc[0, "n_train"] == 1600 and table.loc[1, "n_train"] == 2000
    assert (table["r2"] > 0.9).all()
    assert (table["median_error"] < 0.05).all()  # metres
    own = knn_decode(embs["buddy"], positions["buddy"], n_neighbors=10)
    assert table.loc[3, "median_error"] == own.median_error and table.loc[3, "r2"] == own.r2


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
    assert res.r2 > 0.95 and res.median_error < 0.05
    assert pooled_decode([trained[0][0]], [trained[0][1]], emb, pos, train_fraction=0).n_test == 3000
    rotated = pooled_decode([e for e, _ in trained], [p for _, p in trained], emb @ q, pos, n_neighbors=10)
    assert rotated.r2 < 0.5  # another space: the decoder does not transfer
    with pytest.raises(ValueError, match="need one label per embedding"):
        pooled_decode([emb, emb], [pos], emb, pos)
    with pytest.raises(ValueError, match="train 1: embedding has 3000 rows but the label has 2999"):
        pooled_decode([emb, emb], [pos, pos[:-1]], emb, pos)
    with pytest.raises(ValueError, match="train_fraction"):
        pooled_decode([emb], [pos], emb, pos, train_fraction=1.0)


def test_errors():
    rng = np.random.default_rng(4)
    emb, pos = ring_session(rng, 500)
    with pytest.raises(ValueError, match="500 rows but the label has 499"):
        knn_decode(emb, pos[:-1])
    with pytest.raises(ValueError, match="the label must be 1-D"):
        knn_decode(emb, np.c_[pos, pos])
    with pytest.raises(ValueError, match="train_fraction"):
        knn_decode(emb, pos, train_fraction=1.0)
    with pytest.raises(ValueError, match="exceeds"):
        knn_predict(emb[:5], pos[:5], emb, n_neighbors=6)
    bad = emb.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="test: embedding or label contains NaN"):
        cross_decode(emb, pos, bad, pos)
    with pytest.raises(ValueError, match="metric"):
        knn_predict(emb, pos, emb, metric="manhattan")


# ------------------------------------------------------------------ any label: decode() with chance


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


TETRAHEDRON = unit(np.array([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]))  # 4 class directions


def class_session(rng, n, weights=(0.25, 0.25, 0.25, 0.25), noise=0.5, carry=True):
    """A discrete label (classes 0..3, drawn with ``weights``) and an embedding that points to its
    class's corner of a tetrahedron plus noise (``carry``), or pure noise."""
    y = rng.choice(len(weights), n, p=weights).astype(np.int64)
    z = (TETRAHEDRON[y] if carry else 0.0) + rng.normal(0, noise, (n, 3))
    return z, y


def test_knn_classify_is_sklearns_majority_vote_with_cosine_neighbours():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(10)
    train, test = rng.normal(size=(500, 4)), rng.normal(size=(300, 4))
    classes = rng.integers(0, 5, 500) * 3 + 2  # classes 2, 5, 8, 11, 14
    ties = 0
    for k in (1, 2, 6, 15):
        ours = knn_classify(train, classes, test, n_neighbors=k)
        cosine = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(train, classes)
        np.testing.assert_array_equal(ours, cosine.predict(test))
        on_sphere = KNeighborsClassifier(n_neighbors=k).fit(unit(train), classes)  # cosine = Euclidean on unit vectors
        np.testing.assert_array_equal(ours, on_sphere.predict(unit(test)))
        euclidean = KNeighborsClassifier(n_neighbors=k).fit(train, classes)
        np.testing.assert_array_equal(knn_classify(train, classes, test, k, "euclidean"), euclidean.predict(test))
        # count the rows whose vote is tied, so the tie rule above was exercised
        neighbours = classes[np.argsort(1 - unit(test) @ unit(train).T, axis=1)[:, :k]]
        counts = np.stack([(neighbours == c).sum(1) for c in np.unique(classes)], axis=1)
        ties += int(((counts == counts.max(1, keepdims=True)).sum(1) > 1).sum())
    assert ties > 50
    # A tie goes to the smallest class, whichever neighbour is nearer.
    train = np.array([[1.0, 0.05], [0.05, 1.0]])
    for order in ([7, 3], [3, 7]):
        assert knn_classify(train, order, np.array([[1.0, 0.0]]), n_neighbors=2).tolist() == [3]
    assert knn_classify(train, [7, 3], np.array([[1.0, 0.0]]), n_neighbors=1).tolist() == [7]


def test_decode_a_discrete_label_scores_and_chance():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(11)
    z, y = class_session(rng, 2000)
    train_z, train_y, test_z, test_y = z[:1500], y[:1500], z[1500:], y[1500:]
    result = decode(train_z, train_y, test_z, test_y, "discrete", n_neighbors=15)
    assert list(result) == list(METRICS["discrete"]) == ["accuracy", "balanced_accuracy"]
    prediction = knn_classify(train_z, train_y, test_z, n_neighbors=15)
    assert result["accuracy"][0] == np.mean(prediction == test_y)
    assert result["balanced_accuracy"][0] == pytest.approx(balanced_accuracy_score(test_y, prediction), abs=1e-12)
    assert result["accuracy"][0] > 0.85
    # chance: the same decoder fitted on the training labels shuffled with CHANCE_SEED
    shuffled = train_y[np.random.default_rng(CHANCE_SEED).permutation(len(train_y))]
    guess = knn_classify(train_z, shuffled, test_z, n_neighbors=15)
    assert result["accuracy"][1] == np.mean(guess == test_y)
    assert result["balanced_accuracy"][1] == pytest.approx(balanced_accuracy_score(test_y, guess), abs=1e-12)
    for metric in METRICS["discrete"]:  # 1 / K for balanced classes, far below the real score
        assert result[metric][1] == pytest.approx(0.25, abs=0.06), result
        assert result[metric][0] - result[metric][1] > 0.55
    assert decode(train_z, train_y, test_z, test_y, "discrete", n_neighbors=15) == result  # a fixed shuffle
    # An embedding that does not carry the class decodes at chance too.
    z, y = class_session(rng, 2000, carry=False)
    blind = decode(z[:1500], y[:1500], z[1500:], y[1500:], "discrete", n_neighbors=15)
    assert blind["accuracy"][0] == pytest.approx(0.25, abs=0.06) and blind["accuracy"][1] == pytest.approx(0.25, abs=0.06)


def test_balanced_accuracy_is_the_mean_recall_over_classes():
    """Imbalanced classes (70 / 20 / 10 %): a decoder that leans to the large class has an accuracy well
    above its balanced accuracy; its chance accuracy is near the large class's share, its chance
    balanced accuracy near 1 / K."""
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(12)
    z, y = class_session(rng, 4000, weights=(0.7, 0.2, 0.1), noise=1.0)
    result = decode(z[:3000], y[:3000], z[3000:], y[3000:], "discrete", n_neighbors=25)
    prediction = knn_classify(z[:3000], y[:3000], z[3000:], n_neighbors=25)
    assert result["balanced_accuracy"][0] == pytest.approx(balanced_accuracy_score(y[3000:], prediction), abs=1e-12)
    assert result["accuracy"][0] - result["balanced_accuracy"][0] > 0.1
    assert result["accuracy"][1] == pytest.approx(0.7, abs=0.05)  # the shuffled decoder votes the large class
    assert result["balanced_accuracy"][1] == pytest.approx(1 / 3, abs=0.05)
    assert result["balanced_accuracy"][0] > result["balanced_accuracy"][1] + 0.1


def test_decode_a_continuous_label_scores_and_chance():
    rng = np.random.default_rng(13)
    emb, pos = ring_session(rng, 5000)
    result = decode(emb[:4000], pos[:4000], emb[4000:], pos[4000:], "continuous", n_neighbors=36)
    assert list(result) == list(METRICS["continuous"]) == ["median_abs_error", "r2"]
    same = cross_decode(emb[:4000], pos[:4000], emb[4000:], pos[4000:], n_neighbors=36)
    assert result["median_abs_error"][0] == same.median_error and result["r2"][0] == same.r2
    shuffled = pos[:4000][np.random.default_rng(CHANCE_SEED).permutation(4000)]
    chance = cross_decode(emb[:4000], shuffled, emb[4000:], pos[4000:], n_neighbors=36)
    assert result["median_abs_error"][1] == chance.median_error and result["r2"][1] == chance.r2
    # The shuffled level: neighbours' labels are a random draw, so the prediction is about the
    # training mean; its error is that of predicting the mean, its R² about 0.
    level = np.median(np.abs(pos[4000:] - pos[:4000].mean()))
    assert result["median_abs_error"][1] == pytest.approx(level, rel=0.05)
    assert -0.15 < result["r2"][1] < 0.05
    assert result["median_abs_error"][0] < 0.05 < 0.3 < result["median_abs_error"][1]
    assert result["r2"][0] > 0.95
    with pytest.raises(ValueError, match=r"kind must be one of \['continuous', 'discrete'\]"):
        decode(emb, pos, emb, pos, "ordinal")
