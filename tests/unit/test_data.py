"""Session files: loading (.jl only after its MD5 check, .npz, .parquet), validation, parquet I/O."""

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from cebra_core.analysis.tables import embedding_frame, frame_labels
from cebra_core.sessions.data import load_session, read_labels, read_session, write_session
from cebra_core.sessions.files import atomic_output, md5sum, write_table
from cebra_core.sessions.validation import SessionError
from cebra_core.sessions.rats import PUBLISHED
from helpers import REPO, shared_file


def make_session(t=200, n=7, seed=0):
    rng = np.random.default_rng(seed)
    neural = rng.poisson(0.3, (t, n)).astype(np.float64)
    right = (np.arange(t) // 50) % 2
    labels = np.stack([np.linspace(0, 1.6, t), right, 1 - right], axis=1)
    return neural, labels


class Trap:
    """Unpickling this creates a marker file: proof that a pickle was opened."""

    def __init__(self, marker):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_parquet_roundtrip(tmp_path):
    neural, labels = make_session()
    write_session(tmp_path / "s.parquet", neural, labels)
    frame = pd.read_parquet(tmp_path / "s.parquet")
    assert list(frame.columns) == [f"n{i}" for i in range(7)] + ["position", "right", "left"]
    assert all(dtype == np.float32 for dtype in frame.dtypes)
    x, y = read_session(tmp_path / "s.parquet")
    np.testing.assert_array_equal(x, neural.astype(np.float32))
    np.testing.assert_array_equal(y, labels.astype(np.float32))
    np.testing.assert_array_equal(read_labels(tmp_path / "s.parquet"), y)
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]  # no temporary left
    x2, _ = load_session(tmp_path / "s.parquet")  # a session table is also a valid input
    np.testing.assert_array_equal(x2, x)


def test_npz(tmp_path):
    neural, labels = make_session(n=11)
    np.savez(tmp_path / "rat.npz", spikes=neural, position=labels)
    x, y = load_session(tmp_path / "rat.npz", session="rat")
    assert x.shape == (200, 11) and y.shape == (200, 3) and x.dtype == np.float32
    np.savez(tmp_path / "bad.npz", spikes=neural, speed=labels)
    with pytest.raises(SessionError, match=r"session 'mouse' .*bad\.npz.*missing key\(s\) position or labels"):
        load_session(tmp_path / "bad.npz", session="mouse")
    np.savez(tmp_path / "obj.npz", spikes=np.array([neural, None], dtype=object), position=labels)
    with pytest.raises(SessionError, match="holds object arrays, which only pickle can read; refused"):
        load_session(tmp_path / "obj.npz")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: (x[:, 0], y), "must be 2-D"),
        (lambda x, y: (x, y[:, :2]), r"labels must have shape \(time, 3\)"),
        (lambda x, y: (x[:-5], y), "200 time bins but labels have 195|195 time bins but labels have 200"),
        (lambda x, y: (np.where(np.arange(200)[:, None] == 17, np.nan, x), y), "NaN/inf .*time bin 17"),
        (lambda x, y: (x, np.where(np.arange(200)[:, None] == 3, np.inf, y)), "labels contain"),
        (lambda x, y: (x, np.column_stack([y[:, 0], y[:, 1] * 2, y[:, 2]])), "only 0 and 1"),
        (lambda x, y: (x[:0], y[:0]), "has no time bins"),
        (lambda x, y: (x, np.column_stack([y[:, 0], y[:, 1], np.where(np.arange(200) == 60, 1, y[:, 2])])),
         r"flags must be one-hot \(right \+ left = 1 in every time bin\), but 0 bins have neither and 1 have both "
         r"\(first at time bin 60\)"),
        (lambda x, y: (x, np.column_stack([y[:, 0], np.zeros(200), np.zeros(200)])),
         "200 bins have neither and 0 have both"),
        (lambda x, y: (np.where(np.arange(200)[:, None] == 9, -1.0, x), y),
         "spike counts and must not be negative: 7 negative values \\(first at time bin 9\\)"),
        (lambda x, y: (np.zeros_like(x), y), "every spike count is zero \\(an all-silent session\\)"),
    ],
)
def test_bad_sessions_named_in_errors(tmp_path, change, message):
    neural, labels = change(*make_session())
    path = tmp_path / "odd.npz"
    np.savez(path, spikes=neural, position=labels)
    with pytest.raises(SessionError, match=message) as err:
        load_session(path, session="odd")
    assert "session 'odd'" in str(err.value) and str(path) in str(err.value)


def test_unverified_jl_is_never_unpickled(tmp_path):
    marker = tmp_path / "UNPICKLED"
    path = tmp_path / "evil.jl"
    joblib.dump(Trap(marker), path)
    with pytest.raises(SessionError, match="never opened unverified"):
        load_session(path, session="evil")
    with pytest.raises(SessionError, match="does not match the configured md5"):
        load_session(path, session="evil", md5="0" * 32)
    assert not marker.exists()
    # The guard is what stops it: with its own MD5 configured the pickle is opened.
    with pytest.raises(SessionError, match="expected a dict"):
        load_session(path, session="evil", md5=md5sum(path))
    assert marker.exists()


def test_jl_with_configured_md5(tmp_path):
    neural, labels = make_session()
    path = tmp_path / "mine.jl"
    joblib.dump({"spikes": neural, "position": labels}, path)
    x, y = load_session(path, md5=md5sum(path).upper())
    assert x.shape == (200, 7) and y.shape == (200, 3)
    joblib.dump({"spikes": neural}, path)
    with pytest.raises(SessionError, match="missing key"):
        load_session(path, md5=md5sum(path))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("text.npz", b"spikes,position\n1,2\n", r"not a \.npz archive \(a \.npz is a zip archive of arrays"),
        ("empty.npz", b"", r"the file is empty \(0 bytes\)"),
        ("damaged.npz", None, r"cannot be read as a \.npz archive \(BadZipFile: Bad CRC-32"),
        ("corrupt.parquet", b"PAR1 this is not a parquet file PAR1", r"cannot be read as a parquet table \(ArrowInvalid: "),
        ("empty.parquet", b"", r"cannot be read as a parquet table \("),
    ],
)
def test_unreadable_files_get_one_line(tmp_path, name, content, message):
    """Whatever numpy, zipfile or pyarrow raise: one line naming session, file and problem."""
    path = tmp_path / name
    if content is None:  # a real .npz with a few bytes of its array data overwritten
        neural, labels = make_session()
        np.savez(path, spikes=neural, position=labels)
        data = bytearray(path.read_bytes())
        data[400:410] = b"\xff" * 10
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(content)
    with pytest.raises(SessionError, match=message) as err:
        load_session(path, session="rat7")
    text = str(err.value)
    assert text.startswith(f"session 'rat7' ({path}): ") and "\n" not in text


def test_jl_with_the_right_md5_that_is_not_a_pickle(tmp_path):
    path = tmp_path / "notes.jl"
    path.write_text("these are my notes, not a pickle\n")
    with pytest.raises(SessionError, match=r"its MD5 matches, but it cannot be read as a joblib pickle \(\w+: ") as err:
        load_session(path, session="rat7", md5=md5sum(path))
    assert str(err.value).startswith(f"session 'rat7' ({path}): ") and "\n" not in str(err.value)


def test_other_problems(tmp_path):
    with pytest.raises(SessionError, match="file not found"):
        load_session(tmp_path / "none.npz", session="x")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(SessionError, match="unknown file type"):
        load_session(tmp_path / "x.csv")
    pd.DataFrame({"a": [1.0]}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(SessionError, match="session table needs columns"):
        load_session(tmp_path / "t.parquet")


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "out.parquet") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_outputs_get_the_usual_file_mode(tmp_path):
    """Not mkstemp's 0600: the umask's mode, as any other output (a shared results folder stays readable)."""
    import os

    old = os.umask(0o022)
    try:
        write_table(pd.DataFrame({"a": [1.0]}), tmp_path / "t.parquet", tmp_path / "t.csv")
    finally:
        os.umask(old)
    assert [(tmp_path / f).stat().st_mode & 0o777 for f in ("t.parquet", "t.csv")] == [0o644, 0o644]


def test_embedding_frame():
    _, labels = make_session(t=120)
    z = np.random.default_rng(0).normal(size=(120, 3))
    frame = embedding_frame("buddy", z, labels)
    assert list(frame.columns) == ["session", "time", "part", "z0", "z1", "z2", "position", "direction"]
    assert frame["time"].tolist() == list(range(120)) and set(frame["part"]) == {"all"}
    assert set(frame["direction"]) == {"left", "right"}
    assert (frame["direction"] == "right").tolist() == (labels[:, 1] == 1).tolist()
    np.testing.assert_array_equal(frame_labels(frame), labels.astype(np.float32))  # the labels come back from the table
    parts = np.where(np.arange(120) < 96, "train", "test")
    assert embedding_frame("buddy", z, labels, part=parts)["part"].tolist() == parts.tolist()


def test_real_sessions():
    buddy = shared_file("buddy.jl")
    assert md5sum(buddy) == PUBLISHED["buddy"]["jl_md5"]
    x, y = load_session(buddy)  # accepted: its MD5 is the published one
    assert x.shape == (6577, 48) and y.shape == (6577, 3)
    np.testing.assert_array_equal(y[:, 1] + y[:, 2], 1)
    x, y = load_session(shared_file("achilles_reconstructed.npz"), session="achilles")
    assert x.shape == (10178, 120) and y.shape == (10178, 3)
    assert 0 <= y[:, 0].min() and y[:, 0].max() <= 1.6


# ----------------------------------------------------------------------------- signal kinds
def z_scored(neural: np.ndarray) -> np.ndarray:
    """Per-neuron z-scores: real values of both signs, as a continuous signal is."""
    return (neural - neural.mean(axis=0)) / neural.std(axis=0)


def test_a_z_scored_session_is_continuous_not_counts(tmp_path):
    neural, labels = make_session()
    z = z_scored(neural)
    path = tmp_path / "z.npz"
    np.savez(path, spikes=z, position=labels)
    x, _ = load_session(path, session="z", signal="continuous")
    np.testing.assert_array_equal(x, z.astype(np.float32))
    with pytest.raises(SessionError, match=r"session 'z' .*z\.npz.*spike counts and must not be negative: "
                                           r"\d+ negative values \(first at time bin 0\)") as err:
        load_session(path, session="z")  # counts, the default
    assert "signals: {z: continuous}" in str(err.value)
    # a parquet file of the user's is checked as its declared kind too; the workflow's own session
    # tables (validated once, at import) are read back as they are
    write_session(tmp_path / "z.parquet", z, labels)
    x2, _ = load_session(tmp_path / "z.parquet", session="z", signal="continuous")
    np.testing.assert_array_equal(x2, x)
    with pytest.raises(SessionError, match="must not be negative"):
        load_session(tmp_path / "z.parquet", session="z")
    np.testing.assert_array_equal(read_session(tmp_path / "z.parquet")[0], x)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda z: np.where(np.arange(200)[:, None] == 17, np.nan, z),
         r"neural data contain 7 NaN/inf values \(first at time bin 17\)"),
        (lambda z: np.where((np.arange(200) == 42)[:, None] & (np.arange(7) == 3), -np.inf, z),
         r"neural data contain 1 NaN/inf values \(first at time bin 42\)"),
        (lambda z: np.full_like(z, 0.5), r"the neural data hold one value \(0\.5\) in every time bin and channel: "
                                         "a constant signal has nothing to learn from"),
    ],
)
def test_bad_continuous_sessions_named_in_errors(tmp_path, change, message):
    neural, labels = make_session()
    path = tmp_path / "trace.npz"
    np.savez(path, neural=change(z_scored(neural)), position=labels)
    with pytest.raises(SessionError, match=message) as err:
        load_session(path, session="trace", signal="continuous")
    assert str(err.value).startswith(f"session 'trace' ({path}): ")


def test_continuous_keeps_the_label_checks_and_counts_stay_valid_continuous():
    from cebra_core.sessions.validation import validate_session

    neural, labels = make_session()
    validate_session(neural, labels, signal="continuous")  # counts are a real-valued signal too
    flags = labels.copy()
    flags[5, 1:] = 1
    with pytest.raises(SessionError, match="one-hot"):
        validate_session(z_scored(neural), flags, session="z", signal="continuous")
    with pytest.raises(ValueError, match="signal 'rates' is not a signal kind; use one of counts, continuous"):
        validate_session(neural, labels, session="z", signal="rates")


def test_signals_map_names_sessions_and_kinds():
    from cebra_core.sessions.validation import session_signals, signal_of

    assert session_signals({}, ["a", "b"]) == {"a": "counts", "b": "counts"}
    assert session_signals(None, ["a"]) == {"a": "counts"}
    assert session_signals({"b": "continuous"}, ["a", "b"]) == {"a": "counts", "b": "continuous"}
    assert signal_of({"b": "continuous"}, "b") == "continuous" and signal_of({"b": "continuous"}, "a") == "counts"
    with pytest.raises(ValueError, match=r"signals: 'c' is not in sessions \(a, b\)"):
        session_signals({"c": "continuous"}, ["a", "b"])
    with pytest.raises(ValueError, match="signals.b: 'spikes' is not a signal kind; use one of counts, continuous"):
        session_signals({"b": "spikes"}, ["a", "b"])


def test_an_nwb_session_is_counts(tmp_path):
    path = tmp_path / "rec.nwb"
    path.write_bytes(b"not read")
    with pytest.raises(SessionError, match=r"signals.rec: 'continuous' does not apply to an NWB session, whose "
                                           "spike units are binned to counts"):
        load_session(path, session="rec", signal="continuous")


def test_schema_lists_the_signal_kinds():
    """The config schema's `signals` values are the library's SIGNAL_KINDS, its default counts for every session."""
    import yaml

    from cebra_core.sessions.validation import SIGNAL_KINDS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    signals = schema["properties"]["signals"]
    assert tuple(signals["additionalProperties"]["enum"]) == SIGNAL_KINDS and signals["default"] == {}
