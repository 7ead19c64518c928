"""CEBRA.adapt: a new, unseen session embedded into a trained multi-session space."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cebra_core import CEBRA
from cebra_core.engine.adaptation import (
    first_layer_preactivations,
    new_session_encoder,
    regression_init,
    window_embedding_table,
)
from cebra_core.analysis.metrics import consistency_score
from cebra_core.engine.model import Offset10Model, embed_sequence, gather_windows
from cebra_core.sessions.simulate import Tuning, simulate_session

RATS = ("achilles", "buddy", "cicero", "gatsby")
PARAMS = dict(batch_size=128, max_iterations=300, seed=0, device="cpu")
OLD_METHOD = dict(layers="first", init="random")  # CEBRA.adapt before issue 12
OTHER_TUNING = Tuning(sigma=(0.25, 0.5), peak_rate=(1.0, 4.0), background=(0.5, 2.0))  # wide, weak fields


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
    template = new_session_encoder(Offset10Model(48), 48, seed=0)
    permutation = torch.from_numpy(np.random.default_rng(0).permutation(48))
    encoder = new_session_encoder(template, 48, seed=1)
    hidden = first_layer_preactivations(template, x)
    regression_init(encoder, x[:, permutation], labels, hidden, labels[:-1])
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
    random_z = embed_sequence(random_encoder, torch.from_numpy(X[3])).numpy()
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
    random_z = embed_sequence(random_encoder, torch.from_numpy(X[1])).numpy()
    score_adapted = _consistency_of_last([trained, model.transform(X[1], session_id=new_id)], y[:2])
    score_random = _consistency_of_last([trained, random_z], y[:2])
    assert score_adapted > score_random + 0.3, (score_adapted, score_random)


def test_window_table_matches_training_windows(adapted, sessions):
    """The looked-up trained embedding of sample i equals the encoder on the clamped window of i."""
    model, _, _ = adapted
    X, _ = sessions
    x = torch.from_numpy(X[1])
    table = window_embedding_table([embed_sequence(model.model_[1], x)])
    index = torch.tensor([0, 3, 5, 100, x.shape[0] - 5, x.shape[0] - 1])
    direct = model.model_[1](gather_windows(x, index).permute(1, 2, 0))
    torch.testing.assert_close(table[index], direct, rtol=0, atol=2e-6)


def test_adapt_survives_save_and_load(adapted, sessions, tmp_path):
    model, new_id, _ = adapted
    X, _ = sessions
    model.save(tmp_path / "model.pt")
    loaded = CEBRA.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(loaded.transform(X[3], session_id=new_id), model.transform(X[3], session_id=new_id))
    another = loaded.adapt(X[3][:400], np.asarray(sessions[1][3])[:400], max_iterations=5)
    assert another == 4


def test_regression_init_needs_what_old_model_files_lack(sessions):
    X, y = sessions
    model = CEBRA(**{**PARAMS, "max_iterations": 2}).fit(X[:2], y[:2])
    del model._extra_state["template_hidden"]  # as in a model saved before init="regression"
    with pytest.raises(ValueError, match="refit the model, or pass init='random'"):
        model.adapt(X[3], y[3], max_iterations=2)
    assert model.adapt(X[3], y[3], max_iterations=2, init="random") == 2


def test_adapt_rejects_bad_input(sessions):
    X, y = sessions
    single = CEBRA(**{**PARAMS, "max_iterations": 2}).fit(X[0], y[0])
    with pytest.raises(ValueError, match="multi-session"):
        single.adapt(X[3], y[3])
    multi = CEBRA(**{**PARAMS, "max_iterations": 2}).fit(X[:2], y[:2])
    with pytest.raises(ValueError, match="new session 2: labels have 1 columns but the model was trained on 3"):
        multi.adapt(X[3], y[3][:, 0])
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
