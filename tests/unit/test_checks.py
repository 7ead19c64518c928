"""Sessions checked against what the fits and analyses need, before any fit: one test per case."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from cebra_core.engine.architectures import ARCHITECTURES, architecture
from cebra_core.engine.model import Encoder
from cebra_core.sessions.data import load_session
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.simulate import simulate_session
from cebra_core.sessions.validation import SessionError
from cebra_core.steps.checks import (
    MAX_POSITION_SPAN_M,
    SessionNeeds,
    bin_problems,
    check_sessions,
    class_problems,
    session_problems,
    session_summary,
)
from helpers import shared_file

DEMO = SessionNeeds(batch_size=512, time_offsets=10, consistency_bins=100, decoding_neighbors=36, train_fraction=0.8,
                    alignment_top_k=5)
OPENFIELD = {"continuous": ["x", "y"], "discrete": ["context"]}
MICE = replace(DEMO, batch_size=64, labels=OPENFIELD, consistency_label=("x", "y"))


def track_session(t=2000, seed=0, scale=1.0):
    """A session on a 1.6 m track (positions times ``scale``): laps of the simulator."""
    sim = simulate_session("s", shape=(t, 9), seed=seed)
    labels = pd.DataFrame(sim.labels.astype(np.float32), columns=["position", "right", "left"])
    labels["position"] *= scale
    return sim.neural, labels


def field_session(t=1500, seed=0, x_max=0.5, contexts=(0, 1)):
    """A mouse in a 0.5 m arena: x uniform on [0, x_max], y on [0, 0.5], contexts in blocks."""
    rng = np.random.default_rng(seed)
    neural = rng.poisson(0.5, (t, 6)).astype(np.float32)
    context = np.asarray(contexts)[(np.arange(t) * len(contexts)) // t]
    labels = pd.DataFrame({"x": rng.uniform(0, x_max, t).astype(np.float32),
                           "y": rng.uniform(0, 0.5, t).astype(np.float32), "context": context.astype(np.int64)})
    return neural, labels


def only_problem(neural, labels, needs=DEMO) -> str:
    problems = session_problems(neural, labels, needs)
    assert len(problems) == 1, problems
    return problems[0]


def test_receptive_field_comes_from_the_model():
    """10 for the offset10-model: one embedding row is computed from exactly that many input bins;
    each architecture's field is what its encoder needs (offset1: one bin, an MLP)."""
    model = Encoder(4)
    assert architecture("offset10-model").receptive_field == 10 == DEMO.receptive_field
    assert model(torch.ones(1, 4, 10)).shape == (1, 3)
    with pytest.raises(RuntimeError):
        model(torch.ones(1, 4, 9))
    fields = {}
    for name in ARCHITECTURES:
        needs = replace(DEMO, model_architecture=name)
        fields[name] = needs.receptive_field
        if name.startswith("offset1-"):
            assert Encoder(4, architecture_name=name)(torch.ones(2, 4)).shape == (2, 3)
            continue
        encoder = Encoder(4, architecture_name=name)
        assert encoder(torch.ones(1, 4, needs.receptive_field)).shape == (1, 3)
        with pytest.raises(RuntimeError):
            encoder(torch.ones(1, 4, needs.receptive_field - 1))
    assert fields == {"offset1-model": 1, "offset1-model-mse": 1, "offset5-model": 5, "offset10-model": 10,
                      "offset10-model-mse": 10, "offset36-model": 36}


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


def test_the_trial_protocol_is_refused_for_other_labels():
    """The trial split cuts at the rat track's running-direction flag: other labels have none."""
    neural, labels = field_session()
    needs = replace(MICE, protocol="trials")
    assert only_problem(neural, labels, needs) == (
        "evaluation.protocol trials cuts trials at the rat track's running-direction flag (labels position, right, "
        "left), but the labels are ['x', 'y', 'context']; use evaluation.protocol contiguous")
    assert session_problems(neural, labels, MICE) == []


def test_shorter_than_the_receptive_field():
    neural, labels = track_session(t=100)
    needs = replace(DEMO, batch_size=4, time_offsets=2, consistency_bins=3, decoding_neighbors=1, alignment_top_k=1)
    problem = only_problem(neural[:9], labels[:9], needs)
    assert problem == "9 time bins are fewer than the model's receptive field of 10 bins"
    # the field is the configured architecture's
    problem = only_problem(neural[:30], labels[:30], replace(needs, model_architecture="offset36-model"))
    assert problem == "30 time bins are fewer than the model's receptive field of 36 bins"
    assert session_problems(neural[:9], labels[:9], replace(needs, model_architecture="offset5-model")) == []


def test_no_label_differences_at_the_time_offset():
    neural, labels = track_session(t=100)
    needs = replace(DEMO, batch_size=4, time_offsets=30, consistency_bins=3, decoding_neighbors=1)
    assert only_problem(neural[:30], labels[:30], needs) == (
        "30 time bins leave no label differences over cebra.time_offsets=30 bins (needs more than 30)")


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
        "the kNN decoder is fitted on the first 9 of its 12 time bins (evaluation.test_fraction=0.2) and "
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


def test_constant_position_cannot_be_binned():
    """A constant label is refused when a session is imported (`validate_session`, tests/unit/test_data.py);
    a session table that holds one anyway fails the consistency bins, named with its session and file."""
    neural, labels = track_session()
    labels["position"] = 0.8
    assert session_problems(neural, labels, DEMO) == []  # nothing per session: the binning names it
    with pytest.raises(SessionError) as caught:
        check_sessions({"a": track_session(seed=1), "flat": (neural, labels)}, DEMO, sources={"flat": "f.parquet"})
    message = str(caught.value)
    assert message.startswith("session 'flat' (f.parquet): the consistency score cannot bin "
                              "analysis.consistency_label='position' with analysis.consistency_bins=100: label bin 1 of 99")
    assert "its labels span [0.8, 0.8]" in message and "\n" not in message


def test_positions_in_centimetres():
    neural, labels = track_session(scale=100.0)
    problem = only_problem(neural, labels)
    position = labels["position"]
    assert problem.startswith(f"positions span {position.min():g} to {position.max():g}, more than "
                              f"{MAX_POSITION_SPAN_M:g} m: they look like centimetres")
    assert "give the rat track's positions in metres" in problem
    # another label than the rat track's position is in its own units: no span is checked
    neural, labels = field_session()
    labels["x"] *= 1000
    assert session_problems(neural, labels, MICE) == []


def test_consistency_bins_need_positions_along_the_whole_track():
    """The consistency score bins positions on the common range of all sessions: a session that
    never visits part of that range cannot be binned."""
    a, b = track_session(seed=1), track_session(seed=2)
    b_labels = b[1].copy()
    b_labels["position"] *= 0.5  # b only runs the first half of the track
    with pytest.raises(SessionError) as caught:
        check_sessions({"a": a, "b": (b[0], b_labels)}, DEMO, sources={"a": "a.npz", "b": "b.npz"})
    message = str(caught.value)
    assert message.startswith("session 'b' (b.npz): the consistency score cannot bin analysis.consistency_label="
                              "'position' with analysis.consistency_bins=100: label bin ")
    assert "is empty even after the ±2-bin fallback" in message
    assert message.endswith("over all sessions; lower analysis.consistency_bins, choose another label, or leave the "
                            "session out")
    assert "\n" not in message
    # with 20 bins (8 cm wide) the half-track session still fails, and 100 bins on a gap-free range pass
    with pytest.raises(SessionError, match="session 'b'"):
        check_sessions({"a": a, "b": (b[0], b_labels)}, replace(DEMO, consistency_bins=20))
    check_sessions({"a": a, "b": b}, DEMO)
    # bin_problems on its own: the same line, one per session that fails
    lines = bin_problems({"a": a[1], "b": b_labels}, DEMO, {"b": "b.npz"})
    assert lines == [message]


def test_consistency_bins_of_a_2d_label():
    """analysis.consistency_label [x, y]: a grid of cells (100 bin edges: 10 x 10 edges); a cell
    that some sessions visit and others do not is named with the sessions; cells no session visits
    (outside the arena) are left out."""
    m1, m2 = field_session(seed=1), field_session(seed=2)
    check_sessions({"m1": m1, "m2": m2}, MICE)
    half = field_session(seed=3, x_max=0.2)  # m3 never goes beyond x = 0.2
    with pytest.raises(SessionError) as caught:
        check_sessions({"m1": m1, "m2": m2, "m3": half}, MICE, sources={"m3": "m3.parquet"})
    assert str(caught.value) == (
        "the consistency score cannot bin analysis.consistency_label=('x', 'y') with analysis.consistency_bins=100: "
        "grid cell x 0.333-0.389, y 7.92e-06-0.0556 has no samples in ['m3'] but has in ['m1', 'm2'] (27 such bins); "
        "lower analysis.consistency_bins, choose another label, or leave the session out")
    # no session beyond x = 0.2: those cells are outside every session's arena, and the rest bins
    check_sessions({"m1": field_session(seed=1, x_max=0.2), "m3": half}, MICE)
    # a coarser grid (9 edges: 3 x 3) borrows from the neighbouring cells and passes
    check_sessions({"m1": m1, "m3": half}, replace(MICE, consistency_bins=9))


def test_consistency_bins_of_a_discrete_label():
    """analysis.consistency_label context: one bin per class, every class in every session."""
    needs = replace(MICE, consistency_label="context")
    three = {"m1": field_session(seed=1, contexts=(0, 1, 2)), "m2": field_session(seed=2, contexts=(2, 1, 0))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the check's stand-in embeddings warn of nothing (3 classes, 2-D)
        check_sessions(three, needs)
        assert bin_problems({name: labels for name, (_, labels) in three.items()}, needs) == []


def test_a_class_missing_from_a_session_is_named():
    """Multi-session sampling draws the positive of a reference of class c in every session: a
    class that one session lacks is named with the sessions that have it and those that do not."""
    sessions = {"m1": field_session(seed=1, contexts=(0, 1, 2)), "m2": field_session(seed=2, contexts=(0, 1)),
                "m3": field_session(seed=3, contexts=(1, 2, 0))}
    expected = (
        "class 2 of the discrete label 'context' is in sessions ['m1', 'm3'] but not in ['m2']: multi-session "
        "sampling and the consistency score need every class in every session; leave the class out of every "
        "session, or those sessions out")
    assert class_problems({name: labels for name, (_, labels) in sessions.items()}, "context") == [expected]
    with pytest.raises(SessionError) as caught:
        check_sessions(sessions, MICE)
    assert str(caught.value) == expected
    # two classes missing from two sessions: a line each
    sessions["m2"] = field_session(seed=2, contexts=(0, 3))
    lines = class_problems({name: labels for name, (_, labels) in sessions.items()}, "context")
    assert [line.split(" of the")[0] for line in lines] == ["class 1", "class 2", "class 3"]
    assert "in sessions ['m2'] but not in ['m1', 'm3']" in lines[2]


def test_a_declared_column_missing_from_a_table_is_named():
    neural, labels = field_session()
    with pytest.raises(SessionError) as caught:
        check_sessions({"m1": field_session(seed=1), "m2": (neural, labels.drop(columns=["y"]))}, MICE,
                       sources={"m2": "m2.parquet"})
    assert str(caught.value) == ("session 'm2' (m2.parquet): label column(s) ['y'] (labels) are not in its table; "
                                 "its columns: ['x', 'context']")


def test_every_problem_of_every_session_at_once():
    good = track_session(seed=1)
    short = track_session(t=300, seed=2)
    huge = track_session(seed=3, scale=100.0)
    with pytest.raises(SessionError) as caught:
        check_sessions({"good": good, "short": short, "huge": huge}, DEMO,
                       sources={"good": "g.parquet", "short": "s.parquet", "huge": "h.parquet"})
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["session 'short' (s.parquet)", "session 'huge' (h.parquet)"]
    assert "cebra.batch_size=512 is more than the session's 300 time bins" in lines[0]
    assert "they look like centimetres" in lines[1]


def test_sample_and_real_sessions_pass():
    """The sample config's rats (batch 256, 5% of the real lengths) and the two real sessions."""
    sample = {}
    for name in ("achilles", "buddy", "cicero", "gatsby"):
        sim = simulate_session(name, scale=0.05)
        sample[name] = (sim.neural, pd.DataFrame(sim.labels, columns=["position", "right", "left"]))
    check_sessions(sample, replace(DEMO, batch_size=256))
    real = {
        "achilles": load_session(shared_file("achilles_reconstructed.npz")),
        "buddy": load_session(shared_file("buddy.jl")),
    }
    check_sessions(real, DEMO)


def test_simulated_mice_and_monkeys_pass():
    """The other simulators' sessions, as config/sample_openfield.yaml and sample_reaching.yaml
    simulate them, pass the checks of their own labels (multi-session: every context, every target
    in every session; the mice's [x, y] grid filled). The mice at 20 % of their length leave a
    corner cell of one mouse empty: named."""
    from cebra_core.sessions.simulate_openfield import simulate_openfield
    from cebra_core.sessions.simulate_reaching import simulate_reaching

    signals = {"mouse1": "continuous", "mouse2": "continuous"}
    mice = {name: (s.neural, s.labels) for name in signals for s in [simulate_openfield(name, scale=0.5)]}
    check_sessions(mice, replace(MICE, batch_size=256), signals=signals)
    short = {name: (s.neural, s.labels) for name in signals for s in [simulate_openfield(name, scale=0.2)]}
    with pytest.raises(SessionError, match=r"grid cell x .* has no samples in \['mouse1'\] but has in \['mouse2'\]"):
        check_sessions(short, replace(MICE, batch_size=256), signals=signals)
    monkeys = {name: (s.neural, s.labels) for name in ("monkey1", "monkey2") for s in [simulate_reaching(name, scale=0.3)]}
    reaching = replace(DEMO, batch_size=256, labels={"continuous": [], "discrete": ["target"]}, consistency_label="target")
    check_sessions(monkeys, reaching)
    assert reaching.spec == LabelSpec((), ("target",))


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
    neural, labels = track_session(seed=1)
    summary = session_summary({"a": (neural, labels), "z": (neural - 0.5, labels)}, {"z": "continuous"})
    assert summary["signal"].tolist() == ["counts", "continuous"]
    assert summary["spikes_per_bin"].iloc[0] == pytest.approx(neural.sum(axis=1).mean())
    assert summary["spikes_per_bin"].isna().tolist() == [False, True]


def test_summary_has_columns_per_label_column():
    """The range of every continuous column and the classes of the discrete one."""
    rat_neural, rat_labels = track_session(seed=1)
    summary = session_summary({"a": (rat_neural, rat_labels)})
    assert list(summary.columns) == ["session", "time_bins", "neurons", "position_min", "position_max", "right_min",
                                     "right_max", "left_min", "left_max", "spikes_per_bin", "signal"]
    assert (summary.loc[0, "right_min"], summary.loc[0, "right_max"]) == (0.0, 1.0)
    assert summary.loc[0, "position_min"] == pytest.approx(float(rat_labels["position"].min()))
    m1, m2 = field_session(seed=1, x_max=0.3), field_session(t=900, seed=2, contexts=(0, 1, 2))
    summary = session_summary({"m1": m1, "m2": m2}, {"m1": "continuous", "m2": "continuous"})
    assert list(summary.columns) == ["session", "time_bins", "neurons", "x_min", "x_max", "y_min", "y_max",
                                     "context_classes", "spikes_per_bin", "signal"]
    assert summary["time_bins"].tolist() == [1500, 900] and summary["neurons"].tolist() == [6, 6]
    assert summary["context_classes"].tolist() == [2, 3]
    assert summary["x_max"].iloc[0] == pytest.approx(float(m1[1]["x"].max())) and summary["x_max"].iloc[0] <= 0.3
    assert summary["y_min"].tolist() == pytest.approx([float(m1[1]["y"].min()), float(m2[1]["y"].min())])
