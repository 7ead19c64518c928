"""Sessions checked against what the fits and analyses need, before any fit: one test per case."""

from dataclasses import replace

import pytest
import torch

from cebra_core.steps.checks import MAX_POSITION_SPAN_M, SessionNeeds, check_sessions, session_problems
from cebra_core.sessions.data import load_session
from cebra_core.sessions.validation import SessionError
from cebra_core.engine.model import RECEPTIVE_FIELD, Offset10Model
from cebra_core.sessions.simulate import simulate_session
from helpers import shared_file

DEMO = SessionNeeds(batch_size=512, time_offsets=10, consistency_bins=100, decoding_neighbors=36, train_fraction=0.8,
                    alignment_top_k=5)


def track_session(t=2000, seed=0, scale=1.0):
    """A session on a 1.6 m track (positions times ``scale``): laps of the simulator."""
    sim = simulate_session("s", shape=(t, 9), seed=seed)
    labels = sim.labels.copy()
    labels[:, 0] *= scale
    return sim.neural, labels


def only_problem(neural, labels, needs=DEMO) -> str:
    problems = session_problems(neural, labels, needs)
    assert len(problems) == 1, problems
    return problems[0]


def test_receptive_field_comes_from_the_model():
    """10 for the offset10-model: one embedding row is computed from exactly that many input bins."""
    model = Offset10Model(4)
    assert RECEPTIVE_FIELD == 10 and DEMO.receptive_field == RECEPTIVE_FIELD
    assert model(torch.ones(1, 4, RECEPTIVE_FIELD)).shape == (1, 3)
    with pytest.raises(RuntimeError):
        model(torch.ones(1, 4, RECEPTIVE_FIELD - 1))


def test_a_good_session_passes():
    neural, labels = track_session()
    assert session_problems(neural, labels, DEMO) == []
    check_sessions({"a": track_session(seed=1), "b": track_session(seed=2)}, DEMO)


def test_the_trial_protocol_needs_enough_trials():
    """evaluation.protocol trials cuts a session into 3 blocks x 3 folds of trials: a session of too
    few round trips is named before any fit; the same session passes the contiguous protocol."""
    neural, labels = track_session(t=900)
    assert session_problems(neural, labels, DEMO) == []
    problem = only_problem(neural, labels, replace(DEMO, protocol="trials"))
    assert problem.startswith("evaluation.protocol trials: the trial split needs at least 9")
    long_neural, long_labels = track_session(t=6000)
    assert session_problems(long_neural, long_labels, replace(DEMO, protocol="trials")) == []


def test_shorter_than_the_receptive_field():
    neural, labels = track_session(t=100)
    needs = replace(DEMO, batch_size=4, time_offsets=2, consistency_bins=3, decoding_neighbors=1, alignment_top_k=1)
    problem = only_problem(neural[:9], labels[:9], needs)
    assert problem == "9 time bins are fewer than the model's receptive field of 10 bins"


def test_no_position_differences_at_the_time_offset():
    neural, labels = track_session(t=100)
    needs = replace(DEMO, batch_size=4, time_offsets=30, consistency_bins=3, decoding_neighbors=1)
    assert only_problem(neural[:30], labels[:30], needs) == (
        "30 time bins leave no position differences over cebra.time_offsets=30 bins (needs more than 30)")


def test_batch_larger_than_the_session_is_refused():
    """cebra.batch_size 100000 on a sample rat ran at ~250 s per iteration: refused, with both numbers."""
    neural, labels = track_session(t=2000)
    problem = only_problem(neural, labels, replace(DEMO, batch_size=100000))
    assert problem.startswith("cebra.batch_size=100000 is more than the session's 2000 time bins")
    assert problem.endswith("set cebra.batch_size to at most 2000")
    assert session_problems(neural, labels, replace(DEMO, batch_size=2000)) == []  # equal is fine


def test_too_few_bins_for_the_decoder():
    """A 12-row session failed at decoding after every fit: 'n_neighbors=36 exceeds the 12 training samples'."""
    neural, labels = track_session(t=100)
    needs = replace(DEMO, batch_size=12, consistency_bins=3)
    assert only_problem(neural[:12], labels[:12], needs) == (
        "the position decoder is fitted on the first 9 of its 12 time bins (evaluation.test_fraction=0.2) and "
        "tested on the other 3: it needs at least analysis.decoding_neighbors=36 to fit and 1 to test; "
        "lower analysis.decoding_neighbors or use a longer session")
    # the split follows the configured test fraction (the decoder's train_fraction = 1 - test_fraction)
    neural, labels = track_session(t=100)
    assert session_problems(neural, labels, replace(DEMO, batch_size=64, train_fraction=0.3)) != []
    assert session_problems(neural, labels, replace(DEMO, batch_size=64, train_fraction=0.8)) == []


def test_fewer_bins_than_alignment_neighbours():
    neural, labels = track_session(t=100)
    needs = replace(DEMO, batch_size=12, consistency_bins=3, decoding_neighbors=1, alignment_top_k=20)
    assert only_problem(neural[:12], labels[:12], needs) == (
        "12 time bins are fewer than analysis.alignment_top_k=20 label neighbours for the alignment")


def test_constant_position():
    neural, labels = track_session()
    labels[:, 0] = 0.8
    assert only_problem(neural, labels).startswith("the position is the same (0.8) in every time bin")


def test_positions_in_centimetres():
    neural, labels = track_session(scale=100.0)
    problem = only_problem(neural, labels)
    assert problem.startswith(f"positions span {labels[:, 0].min():g} to {labels[:, 0].max():g}, more than "
                              f"{MAX_POSITION_SPAN_M:g} m: they look like centimetres")
    assert "give positions in metres" in problem


def test_consistency_bins_need_positions_along_the_whole_track():
    """The consistency score bins positions on the common range of all sessions: a session that
    never visits part of that range cannot be binned."""
    a, b = track_session(seed=1), track_session(seed=2)
    b_labels = b[1].copy()
    b_labels[:, 0] *= 0.5  # b only runs the first half of the track
    with pytest.raises(SessionError) as caught:
        check_sessions({"a": a, "b": (b[0], b_labels)}, DEMO, sources={"a": "a.npz", "b": "b.npz"})
    message = str(caught.value)
    assert message.startswith("session 'b' (b.npz): the consistency score cannot bin its positions with "
                              "analysis.consistency_bins=100: label bin ")
    assert "is empty even after the ±2-bin fallback" in message
    assert message.endswith("over all sessions; lower analysis.consistency_bins, or leave the session out")
    assert "\n" not in message
    # with 20 bins (8 cm wide) the half-track session still fails, and 100 bins on a gap-free range pass
    with pytest.raises(SessionError, match="session 'b'"):
        check_sessions({"a": a, "b": (b[0], b_labels)}, replace(DEMO, consistency_bins=20))
    check_sessions({"a": a, "b": b}, DEMO)


def test_every_problem_of_every_session_at_once():
    good = track_session(seed=1)
    short = track_session(t=300, seed=2)
    flat = track_session(seed=3)
    flat[1][:, 0] = 0.0
    with pytest.raises(SessionError) as caught:
        check_sessions({"good": good, "short": short, "flat": flat}, DEMO,
                       sources={"good": "g.parquet", "short": "s.parquet", "flat": "f.parquet"})
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["session 'short' (s.parquet)", "session 'flat' (f.parquet)"]
    assert "cebra.batch_size=512 is more than the session's 300 time bins" in lines[0]
    assert "the position is the same (0) in every time bin" in lines[1]


def test_sample_and_real_sessions_pass():
    """The sample config's rats (batch 256, 5% of the real lengths) and the two real sessions."""
    sample = {name: (s.neural, s.labels) for name in ("achilles", "buddy", "cicero", "gatsby")
              for s in [simulate_session(name, scale=0.05)]}
    check_sessions(sample, replace(DEMO, batch_size=256))
    real = {
        "achilles": load_session(shared_file("achilles_reconstructed.npz")),
        "buddy": load_session(shared_file("buddy.jl")),
    }
    check_sessions(real, DEMO)


def test_signal_kinds_are_checked_per_session():
    """A z-scored session passes as continuous and fails as counts; a constant one fails as continuous."""
    neural, labels = track_session(seed=1)
    z = (neural - neural.mean(axis=0)) / (neural.std(axis=0) + 1e-6)
    sessions = {"a": track_session(seed=2), "z": (z, labels)}
    check_sessions(sessions, DEMO, signals={"z": "continuous"})
    with pytest.raises(SessionError) as caught:
        check_sessions(sessions, DEMO, sources={"z": "z.parquet"})  # counts, the default
    assert str(caught.value).startswith("session 'z' (z.parquet): neural data are spike counts and must not be negative")
    assert "\n" not in str(caught.value)
    flat = {"a": sessions["a"], "z": (neural * 0 + 1.5, labels)}
    with pytest.raises(SessionError) as caught:
        check_sessions(flat, DEMO, sources={"z": "z.parquet"}, signals={"z": "continuous"})
    assert str(caught.value) == (
        "session 'z' (z.parquet): the neural data hold one value (1.5) in every time bin and channel: "
        "a constant signal has nothing to learn from"
    )
    with pytest.raises(ValueError, match=r"signals: 'q' is not in sessions \(a, z\)"):
        check_sessions(sessions, DEMO, signals={"q": "continuous"})


def test_summary_names_the_signal_kind():
    from cebra_core.steps.checks import session_summary

    neural, labels = track_session(seed=1)
    summary = session_summary({"a": (neural, labels), "z": (neural - 0.5, labels)}, {"z": "continuous"})
    assert summary["signal"].tolist() == ["counts", "continuous"]
    assert summary["spikes_per_bin"].iloc[0] == pytest.approx(neural.sum(axis=1).mean())
    assert summary["spikes_per_bin"].isna().tolist() == [False, True]
