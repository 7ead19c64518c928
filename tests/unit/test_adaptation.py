"""CEBRA.adapt: a new, unseen session embedded into a trained multi-session space."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cebra_core import CEBRA
from cebra_core.engine.adaptation import (
    adaptation_step,
    first_layer_preactivations,
    matched_hidden,
    new_session_encoder,
    regression_init,
    window_embedding_table,
)
from cebra_core.analysis.decoding import knn_classify
from cebra_core.analysis.metrics import consistency_score
from cebra_core.engine.architectures import architecture
from cebra_core.engine.model import Encoder, embed_sequence, gather_windows
from cebra_core.engine.sampling import AdaptationSampler, Labels
from cebra_core.sessions.simulate import Tuning, simulate_session

RATS = ("achilles", "buddy", "cicero", "gatsby")
PARAMS = dict(batch_size=128, max_iterations=300, seed=0, device="cpu")
OLD_METHOD = dict(layers="first", init="random")  # CEBRA.adapt before issue 12
OTHER_TUNING = Tuning(sigma=(0.25, 0.5), peak_rate=(1.0, 4.0), background=(0.5, 2.0))  # wide, weak fields

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def sessions():
    sims = [simulate_session(r, scale=0.08, seed=1) for r in RATS]
    return [s.neural for s in sims], [s.labels for s in sims]


@pytest.fixture(scope="module")
def trained_model(sessions):
    """A multi-session model of the first three rats (not to be changed: tests adapt copies)."""
    X, y = sessions
    return CEBRA(**PARAMS).fit(X[:3], y[:3])


@pytest.fixture(scope="module")
def adapted(sessions, trained_model):
    X, y = sessions
    model = copy.deepcopy(trained_model)
    trained = [model.transform(x, session_id=i) for i, x in enumerate(X[:3])]
    new_id = model.adapt(X[3], y[3])
    return model, new_id, trained


def _consistency_of_last(embeddings, labels) -> float:
    """Mean consistency of the last session against the others, both directions."""
    names = [f"session{i}" for i in range(len(embeddings))]
    scores, pairs, _ = consistency_score(embeddings, [l[:, 0] for l in labels], dataset_ids=names)
    return float(np.mean([s for s, p in zip(scores, pairs) if names[-1] in p]))


def test_adapt_returns_new_session_and_leaves_trained_sessions_unchanged(adapted, sessions):
    model, new_id, trained = adapted
    X, _ = sessions
    assert new_id == 3 and model.num_sessions_ == 4 and len(model.model_) == 4
    for i in range(3):
        np.testing.assert_array_equal(model.transform(X[i], session_id=i), trained[i])
    z = model.transform(X[3], session_id=new_id)
    assert z.shape == (X[3].shape[0], 3) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)


def test_default_trains_a_copy_of_all_layers(adapted):
    model, new_id, _ = adapted
    template, new = model.model_[0].state_dict(), model.model_[new_id].state_dict()
    assert new["net.0.weight"].shape == (32, 66, 2)  # gatsby's own neurons
    changed = [name for name in new if not name.startswith("net.0.") and not torch.equal(new[name], template[name])]
    assert len(changed) == len(new) - 2  # every later layer moved away from the template (a copy)
    assert all(p.requires_grad for p in model.model_[new_id].parameters())


def test_layers_first_trains_only_the_first_layer(sessions):
    X, y = sessions
    model = CEBRA(**{**PARAMS, "max_iterations": 20}).fit(X[:2], y[:2])
    new_id = model.adapt(X[3], y[3], max_iterations=20, **OLD_METHOD)
    template, new = model.model_[0].state_dict(), model.model_[new_id].state_dict()
    untrained = new_session_encoder(model.model_[0], 66, seed=model.seed_ + new_id).state_dict()
    assert not torch.equal(new["net.0.weight"], untrained["net.0.weight"])  # the first layer was trained
    for name, value in new.items():
        if not name.startswith("net.0."):
            torch.testing.assert_close(value, template[name], rtol=0, atol=0)  # the rest is frozen


def test_regression_init_recovers_a_known_first_layer():
    """A new 'rat' whose neurons are the template's, permuted, at the same labels: the ridge fit
    reproduces the template's pre-activations, with the permuted weights."""
    sim = simulate_session("buddy", scale=0.3, seed=2)
    x, labels = torch.from_numpy(sim.neural), torch.from_numpy(sim.labels)
    labels[:, 0] += torch.arange(len(labels)) * 1e-7  # unique labels: the match is the same time step
    template = new_session_encoder(Encoder(48), 48, seed=0)
    permutation = torch.from_numpy(np.random.default_rng(0).permutation(48))
    encoder = new_session_encoder(template, 48, seed=1)
    hidden = first_layer_preactivations(template, x)
    assert hidden.shape == (len(x) - 1, 32)  # one row per step of the kernel-2 first layer
    regression_init(encoder, x[:, permutation], Labels(labels), hidden, Labels(labels))
    torch.testing.assert_close(first_layer_preactivations(encoder, x[:, permutation]), hidden, rtol=0, atol=0.02)
    torch.testing.assert_close(encoder.first_layer.weight, template.first_layer.weight[:, permutation], rtol=0, atol=0.02)


def test_new_method_beats_the_old_on_a_rat_tuned_otherwise(sessions, trained_model):
    """Gatsby simulated with wide, weak place fields, adapted from its first 80 % for 100 steps: the
    regression-initialised all-layer adapt lands far closer to the trained rats than the old method."""
    X, y = sessions
    trained = [trained_model.transform(x, session_id=i) for i, x in enumerate(X[:3])]
    other = simulate_session("gatsby", scale=0.08, seed=1, tuning=OTHER_TUNING)
    split = int(0.8 * len(other.neural))
    scores = {}
    for name, options in {"old": OLD_METHOD, "new": {}}.items():
        fresh = copy.deepcopy(trained_model)
        new_id = fresh.adapt(other.neural[:split], other.labels[:split], max_iterations=100, **options)
        z = fresh.transform(other.neural, session_id=new_id)
        scores[name] = _consistency_of_last(trained + [z], y[:3] + [other.labels])
    assert scores["new"] > 0.78 and scores["new"] > scores["old"] + 0.1, scores


def test_adapted_session_lands_in_the_shared_space(adapted, sessions):
    X, y = sessions
    model, new_id, trained = adapted
    adapted_z = model.transform(X[3], session_id=new_id)
    random_encoder = new_session_encoder(model.model_[0], X[3].shape[1], seed=123)
    random_z = embed_sequence(random_encoder, torch.from_numpy(X[3]), model.offset_).numpy()
    full = CEBRA(**PARAMS).fit(X, y)
    full_z = [full.transform(x, session_id=i) for i, x in enumerate(X)]

    score_adapted = _consistency_of_last(trained + [adapted_z], y)
    score_random = _consistency_of_last(trained + [random_z], y)
    score_full = _consistency_of_last(full_z, y)
    assert score_adapted > score_random + 0.3, (score_adapted, score_random)
    assert score_adapted > score_full - 0.1, (score_adapted, score_full)


def test_adapt_into_a_multi_session_model_of_one_session(sessions):
    """With two sessions, the held-out one is adapted into a multi-session model of the other alone
    (config/local.example.yaml: buddy into achilles): the same method, that session the template."""
    X, y = sessions
    model = CEBRA(**{**PARAMS, "max_iterations": 100}).fit([X[0]], [y[0]])  # measured: 0.89 against 0.18
    trained = model.transform(X[0], session_id=0)
    new_id = model.adapt(X[1], y[1])
    assert model.num_sessions_ == 2 and new_id == 1
    np.testing.assert_array_equal(model.transform(X[0], session_id=0), trained)
    random_encoder = new_session_encoder(model.model_[0], X[1].shape[1], seed=123)
    random_z = embed_sequence(random_encoder, torch.from_numpy(X[1]), model.offset_).numpy()
    score_adapted = _consistency_of_last([trained, model.transform(X[1], session_id=new_id)], y[:2])
    score_random = _consistency_of_last([trained, random_z], y[:2])
    assert score_adapted > score_random + 0.3, (score_adapted, score_random)


def test_own_negatives_are_drawn_in_the_new_session_and_embedded_by_its_encoder(adapted, sessions):
    """``own_negatives``: B more negatives uniform in the new session, last in the batch, embedded by the
    new encoder (not looked up); the other draws of the batch are the plain sampler's."""
    X, y = sessions
    model, new_id, _ = adapted
    trained, new = [Labels(torch.from_numpy(l)) for l in y[:3]], Labels(torch.from_numpy(y[3]))
    kw = dict(conditional="time_delta", time_offset=10, delta=None)
    plain = AdaptationSampler(new, trained, generator=torch.Generator().manual_seed(0), **kw).sample(64)
    batch = AdaptationSampler(new, trained, generator=torch.Generator().manual_seed(0), own_negatives=True, **kw).sample(64)
    rows = sum(len(l) for l in y[:3])
    assert batch.negative.shape == (1, 4 * 64) and (batch.negative[0, :192] < rows).all()
    own = batch.negative[0, 192:] - rows
    assert (own >= 0).all() and (own < len(y[3])).all() and len(own.unique()) > 50
    torch.testing.assert_close(batch.reference, plain.reference)
    torch.testing.assert_close(batch.negative[:, :192], plain.negative)
    # the loss: the references and the own negatives through the new encoder, the rest looked up
    encoder, neural, offset = model.model_[new_id], torch.from_numpy(X[3]), model.offset_
    table = window_embedding_table([torch.from_numpy(model.transform(x, session_id=i)) for i, x in enumerate(X[:3])],
                                   offset)
    criterion = model._criterion()
    with torch.no_grad():
        loss = adaptation_step([encoder], [neural], batch, criterion, offset, trained_embeddings=table)
        embed = lambda index: encoder(gather_windows(neural, index, offset).permute(1, 2, 0))  # noqa: E731
        expected = criterion(embed(batch.reference[0]), table[batch.positive[0]],
                             torch.cat([table[batch.negative[0, :192]], embed(own)]))
    torch.testing.assert_close(loss.total, expected.total, rtol=1e-5, atol=1e-6)


def test_window_table_matches_training_windows(adapted, sessions):
    """The looked-up trained embedding of sample i equals the encoder on the clamped window of i."""
    model, _, _ = adapted
    X, _ = sessions
    x = torch.from_numpy(X[1])
    offset = model.offset_
    table = window_embedding_table([embed_sequence(model.model_[1], x, offset)], offset)
    index = torch.tensor([0, 3, 5, 100, x.shape[0] - 5, x.shape[0] - 1])
    direct = model.model_[1](gather_windows(x, index, offset).permute(1, 2, 0))
    torch.testing.assert_close(table[index], direct, rtol=0, atol=2e-6)
    # a causal window (rows i-9 … i) too: the table is what training embeds
    causal = architecture("offset10-model").offset(causal=True)
    table = window_embedding_table([embed_sequence(model.model_[1], x, causal)], causal)
    direct = model.model_[1](gather_windows(x, index, causal).permute(1, 2, 0))
    torch.testing.assert_close(table[index], direct, rtol=0, atol=2e-6)


def test_adapt_survives_save_and_load(adapted, sessions, tmp_path):
    model, new_id, _ = adapted
    X, _ = sessions
    model.save(tmp_path / "model.pt")
    loaded = CEBRA.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(loaded.transform(X[3], session_id=new_id), model.transform(X[3], session_id=new_id))
    another = loaded.adapt(X[3][:400], np.asarray(sessions[1][3])[:400], max_iterations=5)
    assert another == 4


def test_a_model_file_of_the_former_format_is_refused(sessions, tmp_path):
    """Files of cebra_core.CEBRA/1 (saved before the model family and label kinds; some without what
    init='regression' needs) are not read: refit the model."""
    X, y = sessions
    model = CEBRA(**{**PARAMS, "max_iterations": 2}).fit(X[:2], y[:2])
    model.save(tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state["format"] == "cebra_core.CEBRA/2"
    assert set(state["extra"]) == {"trained_continuous", "trained_discrete", "trained_embeddings", "template_hidden"}
    torch.save({**state, "format": "cebra_core.CEBRA/1"}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old\.pt: not a cebra_core or CEBRA model file"):
        CEBRA.load(tmp_path / "old.pt")
    # init='random' needs no template pre-activations: it adapts without them
    del model._extra_state["template_hidden"]
    assert model.adapt(X[3], y[3], max_iterations=2, init="random") == 2


def test_adapt_rejects_bad_input(sessions):
    X, y = sessions
    single = CEBRA(**{**PARAMS, "max_iterations": 2}).fit(X[0], y[0])
    with pytest.raises(ValueError, match="multi-session"):
        single.adapt(X[3], y[3])
    multi = CEBRA(**{**PARAMS, "max_iterations": 2}).fit(X[:2], y[:2])
    with pytest.raises(ValueError, match=r"new session 2: labels \{'continuous': 1, 'discrete': False\} differ from the "
                                         r"ones the model was trained on \{'continuous': 3, 'discrete': False\}"):
        multi.adapt(X[3], y[3][:, 0])
    with pytest.raises(ValueError, match=r"new session 2: labels \{'continuous': 3, 'discrete': True\} differ"):
        multi.adapt(X[3], y[3], (y[3][:, 1] > 0).astype(np.int64))
    with pytest.raises(ValueError, match=r"new session 2: labels \{'continuous': None, 'discrete': False\} differ"):
        multi.adapt(X[3])
    with pytest.raises(ValueError, match="new session 2: 8 samples is shorter than the model's receptive field"):
        multi.adapt(X[3][:8], y[3][:8])
    with pytest.raises(ValueError, match="new session 2: neural data has"):
        multi.adapt(X[3], y[3][:-1])
    with pytest.raises(ValueError, match="not fitted"):
        CEBRA().adapt(X[3], y[3])
    with pytest.raises(ValueError, match="layers='some' is not supported; supported: all, first"):
        multi.adapt(X[3], y[3], layers="some")
    with pytest.raises(ValueError, match="init='zeros' is not supported; supported: regression, random"):
        multi.adapt(X[3], y[3], init="zeros")
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        multi.adapt(X[3], y[3], learning_rate=0.0)
    assert multi.num_sessions_ == 2  # nothing was added by the failed calls


# ----------------------------------------------------------------------------- a discrete label
def class_sessions(T=600, K=4, seed=0):
    """Three sessions (20, 26, 31 neurons) whose neurons fire at a rate of their own per class of a
    discrete label (blocks of 20 bins, every class in every session): a label CEBRA can align on."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for n in (20, 26, 31):
        label = np.repeat(rng.integers(0, K, T // 20), 20)
        label[:K] = np.arange(K)
        rates = rng.gamma(2.0, 0.5, (K, n))
        X.append(rng.poisson(rates[label]).astype(np.float32))
        y.append(label.astype(np.int64))
    return X, y


def test_matched_hidden_of_a_discrete_label_is_the_class_mean():
    """With a discrete label alone, each new step is matched to the mean pre-activation of the
    template's steps of its class; with both kinds, to the nearest label within its class."""
    hidden = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    template = Labels(discrete=torch.tensor([0, 1, 0, 2, 1, 0]))
    new = Labels(discrete=torch.tensor([2, 0, 1, 1]))
    matched = matched_hidden(new, hidden, template, 4)
    np.testing.assert_array_equal(matched.numpy(), [[6, 7], [14 / 3, 17 / 3], [5, 6], [5, 6]])
    assert matched.dtype == torch.float64
    mixed = Labels(continuous=torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]]), discrete=template.discrete)
    query = Labels(continuous=torch.tensor([[4.9], [4.9], [0.2]]), discrete=torch.tensor([0, 1, 2]))
    # 4.9 in class 0 (rows 0, 2, 5) is row 5; in class 1 (rows 1, 4) row 4; 0.2 in class 2 is row 3, its only one
    np.testing.assert_array_equal(matched_hidden(query, hidden, mixed, 3).numpy(), hidden[[5, 4, 3]].double().numpy())


def test_adapt_a_new_session_with_a_discrete_label():
    """A multi-session model trained on a discrete label alone takes a new session: the trained
    sessions' embeddings do not change, and a kNN classifier fitted on them decodes the new
    session's classes from its adapted embedding (not from its untrained one)."""
    X, y = class_sessions()
    model = CEBRA(batch_size=64, max_iterations=80, seed=0, device="cpu").fit(X[:2], y[:2])
    assert model.label_kinds_ == {"continuous": None, "discrete": True}
    trained = [model.transform(x, session_id=i) for i, x in enumerate(X[:2])]
    untrained = model.untrained_encoder(X[2].shape[1])(X[2])
    assert model.adapt(X[2], y[2], max_iterations=80) == 2
    for i in range(2):
        np.testing.assert_array_equal(model.transform(X[i], session_id=i), trained[i])
    pooled, classes = np.concatenate(trained), np.concatenate(y[:2])
    adapted = np.mean(knn_classify(pooled, classes, model.transform(X[2], session_id=2), 10) == y[2])
    baseline = np.mean(knn_classify(pooled, classes, untrained, 10) == y[2])
    assert adapted > 0.95 and baseline < 0.5, (adapted, baseline)  # measured 0.995 and 0.418; chance 0.25
    # a class the trained sessions lack has no positive there
    with pytest.raises(ValueError, match=r"session 0 has no sample of class\(es\) \[4\], which other sessions have"):
        model.adapt(X[2], np.where(np.arange(600) < 10, 4, y[2]), max_iterations=2)
    assert model.num_sessions_ == 3


def test_adapt_needs_labels_and_a_conditional_other_than_time(sessions):
    """adapt places a new session by its labels: a model of CEBRA-Time (no labels, or conditional
    time) cannot take one."""
    X, y = sessions
    timed = CEBRA(**{**PARAMS, "max_iterations": 2, "conditional": "time"}).fit(X[:2], y[:2])
    with pytest.raises(ValueError, match="adapt\\(\\) places a new session by its labels: it needs labels and a "
                                         "conditional other than 'time'"):
        timed.adapt(X[3], y[3], max_iterations=2)
    unlabelled = CEBRA(**{**PARAMS, "max_iterations": 2}).fit(X[:2])
    assert unlabelled.label_kinds_ == {"continuous": None, "discrete": False}
    with pytest.raises(ValueError, match="it needs labels"):
        unlabelled.adapt(X[3], max_iterations=2)
    assert timed.num_sessions_ == unlabelled.num_sessions_ == 2
