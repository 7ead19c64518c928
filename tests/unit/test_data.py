"""Session files: loading (.jl only after its MD5 check, .npz, .parquet), validation, parquet I/O."""

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from cebra_core.analysis.tables import alignment_labels, embedding_frame, label_columns
from cebra_core.sessions.data import load_session, read_session, write_session
from cebra_core.sessions.files import atomic_output, md5sum, write_table
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.validation import InputError, SessionError, label_problems, validate_session
from cebra_core.sessions.rats import PUBLISHED
from helpers import REPO, shared_file

RAT = LabelSpec()  # position, right, left
OPENFIELD = LabelSpec(("x", "y"), ("context",))  # a mouse in an open field: 2-D position and a context


def make_session(t=200, n=7, seed=0):
    """A rat-track session: counts (T, N) and the published (T, 3) labels [position, right, left]."""
    rng = np.random.default_rng(seed)
    neural = rng.poisson(0.3, (t, n)).astype(np.float64)
    right = (np.arange(t) // 50) % 2
    labels = np.stack([np.linspace(0, 1.6, t), right, 1 - right], axis=1)
    return neural, labels


def rat_frame(labels: np.ndarray) -> pd.DataFrame:
    """The rat track's (T, 3) labels as the session's label table."""
    return pd.DataFrame(labels.astype(np.float32), columns=["position", "right", "left"])


def make_openfield(t=200, n=6, seed=0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Counts and named 1-D label columns: x, y in [0, 0.5] (float64) and context 0/1 (int)."""
    rng = np.random.default_rng(seed)
    neural = rng.poisson(0.4, (t, n)).astype(np.float64)
    labels = {"x": rng.uniform(0, 0.5, t), "y": rng.uniform(0, 0.5, t), "context": (np.arange(t) // 40) % 2}
    return neural, labels


class Trap:
    """Unpickling this creates a marker file: proof that a pickle was opened."""

    def __init__(self, marker):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_parquet_roundtrip(tmp_path):
    neural, labels = make_session()
    write_session(tmp_path / "s.parquet", neural, rat_frame(labels))
    frame = pd.read_parquet(tmp_path / "s.parquet")
    assert list(frame.columns) == [f"n{i}" for i in range(7)] + ["position", "right", "left"]
    assert all(dtype == np.float32 for dtype in frame.dtypes)
    x, y = read_session(tmp_path / "s.parquet")
    np.testing.assert_array_equal(x, neural.astype(np.float32))
    assert isinstance(y, pd.DataFrame) and list(y.columns) == ["position", "right", "left"]
    np.testing.assert_array_equal(y.to_numpy(), labels.astype(np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]  # no temporary left
    x2, y2 = load_session(tmp_path / "s.parquet")  # a session table is also a valid input
    np.testing.assert_array_equal(x2, x)
    pd.testing.assert_frame_equal(y2, y)


def test_parquet_roundtrip_keeps_the_label_kinds(tmp_path):
    """Continuous label columns are stored float32, the discrete one int64, and come back so."""
    neural, columns = make_openfield()
    x, y = validate_session(neural, columns, spec=OPENFIELD, session="m", source="memory")
    assert y.dtypes.to_dict() == {"x": np.float32, "y": np.float32, "context": np.int64}
    write_session(tmp_path / "m.parquet", x, y)
    frame = pd.read_parquet(tmp_path / "m.parquet")
    assert list(frame.columns) == [f"n{i}" for i in range(6)] + ["x", "y", "context"]
    assert frame["context"].dtype == np.int64 and frame["x"].dtype == np.float32 and frame["n0"].dtype == np.float32
    x2, y2 = read_session(tmp_path / "m.parquet")
    np.testing.assert_array_equal(x2, x)
    pd.testing.assert_frame_equal(y2, y)
    np.testing.assert_array_equal(y2["context"], columns["context"])
    np.testing.assert_array_equal(y2["x"], columns["x"].astype(np.float32))


def test_write_and_read_session_do_not_validate(tmp_path):
    """The workflow's own session tables were validated once, at import: write_session and
    read_session check nothing (a constant label goes in and out); load_session checks it."""
    neural, labels = make_session()
    frame = rat_frame(labels)
    frame["position"] = 0.8
    write_session(tmp_path / "flat.parquet", neural, frame)
    x, y = read_session(tmp_path / "flat.parquet")
    assert (y["position"] == 0.8).all() and x.shape == (200, 7)
    with pytest.raises(SessionError, match=r"continuous label column 'position' holds one value \(0\.8\) in every "
                                           "time bin: a constant label can neither guide the fit nor be decoded"):
        load_session(tmp_path / "flat.parquet", session="flat")


def test_npz(tmp_path):
    """The published rat layout (spikes, position (T, 3); or neural, labels (T, 3)) reads as the rat
    track's three columns."""
    neural, labels = make_session(n=11)
    np.savez(tmp_path / "rat.npz", spikes=neural, position=labels)
    x, y = load_session(tmp_path / "rat.npz", session="rat")
    assert x.shape == (200, 11) and y.shape == (200, 3) and x.dtype == np.float32
    assert list(y.columns) == ["position", "right", "left"] and all(d == np.float32 for d in y.dtypes)
    np.testing.assert_array_equal(y.to_numpy(), labels.astype(np.float32))
    # the same rat as one 1-D array per column (neural + position, right, left) reads the same
    np.savez(tmp_path / "named.npz", neural=neural, position=labels[:, 0], right=labels[:, 1], left=labels[:, 2])
    x2, y2 = load_session(tmp_path / "named.npz", session="rat")
    np.testing.assert_array_equal(x2, x)
    pd.testing.assert_frame_equal(y2, y)
    np.savez(tmp_path / "old.npz", neural=neural, labels=labels)  # neural + labels (T, 3): read the same
    x3, y3 = load_session(tmp_path / "old.npz", session="rat")
    np.testing.assert_array_equal(x3, x)
    pd.testing.assert_frame_equal(y3, y)
    np.savez(tmp_path / "bad.npz", spikes=neural, speed=labels)
    with pytest.raises(SessionError, match=r"session 'mouse' .*bad\.npz.*label column\(s\) \['position', 'right', "
                                           r"'left'\] \(the labels key\) are missing; found \['spikes', 'speed'\]"):
        load_session(tmp_path / "bad.npz", session="mouse")
    np.savez(tmp_path / "nothing.npz", rates=neural, position=labels)
    with pytest.raises(SessionError, match=r"missing the neural data \(neural or spikes\); found \['rates', 'position'\]"):
        load_session(tmp_path / "nothing.npz")
    np.savez(tmp_path / "obj.npz", spikes=np.array([neural, None], dtype=object), position=labels)
    with pytest.raises(SessionError, match="holds object arrays, which only pickle can read; refused"):
        load_session(tmp_path / "obj.npz")


def test_npz_with_named_label_columns(tmp_path):
    """Another animal's .npz: `neural` and one 1-D array per declared column, named as in the
    labels key; arrays it does not declare are left out, the discrete column becomes int64."""
    neural, columns = make_openfield(t=240, n=9, seed=3)
    path = tmp_path / "mouse.npz"
    np.savez(path, neural=neural, x=columns["x"], y=columns["y"], context=columns["context"].astype(np.float64),
             speed=np.ones(240))
    x, y = load_session(path, session="mouse", labels=OPENFIELD)
    assert x.shape == (240, 9) and x.dtype == np.float32
    assert list(y.columns) == ["x", "y", "context"]
    assert y.dtypes.to_dict() == {"x": np.float32, "y": np.float32, "context": np.int64}
    assert y["context"].tolist() == ((np.arange(240) // 40) % 2).tolist()
    assert y["context"].value_counts().to_dict() == {0: 120, 1: 120}
    np.testing.assert_array_equal(y["y"], columns["y"].astype(np.float32))
    # the rat track is not read from these labels: its columns are not there
    with pytest.raises(SessionError, match=r"label column\(s\) \['position', 'right', 'left'\]"):
        load_session(path, session="mouse")
    # a discrete label alone (a reach target)
    targets = LabelSpec((), ("target",))
    np.savez(tmp_path / "monkey.npz", neural=neural, target=np.arange(240) % 8)
    _, y = load_session(tmp_path / "monkey.npz", labels=targets)
    assert list(y.columns) == ["target"] and y["target"].dtype == np.int64 and y["target"].nunique() == 8


def test_parquet_with_named_label_columns(tmp_path):
    """A user's parquet: neural columns n0 … (in numeric order, whatever the file's), the label
    columns by name; other columns are not labels."""
    neural, columns = make_openfield(t=150, n=12, seed=5)
    frame = pd.DataFrame({f"n{i}": neural[:, i] for i in reversed(range(12))})
    frame["context"], frame["x"], frame["y"], frame["note"] = columns["context"], columns["x"], columns["y"], 1.0
    frame.to_parquet(tmp_path / "m.parquet")
    x, y = load_session(tmp_path / "m.parquet", session="m", labels=OPENFIELD)
    np.testing.assert_array_equal(x, neural.astype(np.float32))  # n0, n1, …, n11: n10 and n11 after n9
    assert list(y.columns) == ["x", "y", "context"] and y["context"].dtype == np.int64
    np.testing.assert_array_equal(y["x"], columns["x"].astype(np.float32))
    frame.drop(columns=["y"]).to_parquet(tmp_path / "no_y.parquet")
    with pytest.raises(SessionError, match=r"session 'm' \(.*no_y\.parquet\): label column\(s\) \['y'\] \(the labels "
                                           r"key\) are missing"):
        load_session(tmp_path / "no_y.parquet", session="m", labels=OPENFIELD)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: (x[:, 0], y), "must be 2-D"),
        (lambda x, y: (x, y[:, :2]), r"labels of shape \(200, 2\) are not the declared label columns "
                                     r"\['position', 'right', 'left'\]"),
        (lambda x, y: (x[:-5], y), "neural data has 195 time bins but labels have 200"),
        (lambda x, y: (np.where(np.arange(200)[:, None] == 17, np.nan, x), y), "NaN/inf .*time bin 17"),
        (lambda x, y: (x, np.where(np.arange(200)[:, None] == 3, np.inf, y)),
         r"continuous label column 'position' holds 1 NaN/inf values \(first at time bin 3\)"),
        (lambda x, y: (x, np.column_stack([y[:, 0], y[:, 1] * 2, y[:, 2]])), "only 0 and 1"),
        (lambda x, y: (x[:0], y[:0]), "has no time bins"),
        (lambda x, y: (x, np.column_stack([y[:, 0], y[:, 1], np.where(np.arange(200) == 60, 1, y[:, 2])])),
         r"flags must be one-hot \(right \+ left = 1 in every time bin\), but 0 bins have neither and 1 have both "
         r"\(first at time bin 60\)"),
        (lambda x, y: (x, np.column_stack([y[:, 0], np.zeros(200), np.zeros(200)])),
         # the rat track's flags may each hold one value (a rat running one way), but not both zero
         "200 bins have neither and 0 have both \\(first at time bin 0\\)"),
        (lambda x, y: (x, np.column_stack([y[:, 0], np.where(np.arange(200) < 7, 0, y[:, 1]),
                                           np.where(np.arange(200) < 7, 0, y[:, 2])])),
         "7 bins have neither and 0 have both \\(first at time bin 0\\)"),
        (lambda x, y: (x, np.column_stack([np.full(200, 0.4), y[:, 1:]])),
         "continuous label column 'position' holds one value \\(0\\.4\\) in every time bin"),
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
    assert str(err.value).startswith(f"session 'odd' ({path}): ")


def _drop(column):
    return lambda labels: {k: v for k, v in labels.items() if k != column}


def _set(column, value):
    return lambda labels: {**labels, column: value(labels[column])}


def _at(row, value):
    """The column with one time bin changed (as float, so a NaN or a fraction fits)."""
    def change(column):
        column = column.astype(np.float64)
        column[row] = value
        return column
    return change


# (change of the open-field labels, the column it names, the problem)
BAD_LABELS = [
    (_drop("y"), "y", r"label column\(s\) \['y'\] \(the labels key\) are missing; found \[('neural', )?'x', 'context'\]"),
    (_set("x", lambda c: np.full_like(c, 0.25)), "x",
     r"continuous label column 'x' holds one value \(0\.25\) in every time bin: a constant label can neither guide "
     r"the fit nor be decoded"),
    (_set("y", _at(7, np.nan)), "y", r"continuous label column 'y' holds 1 NaN/inf values \(first at time bin 7\)"),
    (_set("x", _at(12, np.inf)), "x", r"continuous label column 'x' holds 1 NaN/inf values \(first at time bin 12\)"),
    (_set("context", _at(11, 0.5)), "context",
     r"discrete label column 'context' must hold integer classes, but time bin 11 holds 0\.5"),
    (_set("context", _at(4, -1)), "context",
     r"discrete label column 'context' must hold classes 0, 1, 2, …; it holds -1 \(a negative class\)"),
    (_set("context", lambda c: np.full_like(c, 2)), "context",
     r"discrete label column 'context' holds one class only \(2\): a contrast needs at least two"),
    (_set("context", _at(30, np.nan)), "context",
     r"discrete label column 'context' holds 1 NaN/inf values \(first at time bin 30\)"),
    (_set("context", lambda c: np.where(c == 1, "dark", "light")), "context",
     r"discrete label column 'context' must be real numbers, got dtype object"),
    (_set("x", lambda c: np.stack([c, c], axis=1)), "x",
     r"label column 'x' must be 1-D \(one value per time bin\), got shape \(200, 2\)"),
    (_set("y", lambda c: c[:-1]), "y", r"the label columns differ in length: \{'x': 200, 'y': 199, 'context': 200\}"),
]


@pytest.mark.parametrize("change, column, problem", BAD_LABELS)
def test_bad_labels_named_in_errors(tmp_path, change, column, problem):
    """Every problem of a declared label column names the session, its file, the column and the
    problem, as a file of the session (.npz) and as data (validate_session with its source)."""
    neural, labels = make_openfield()
    labels = change(labels)
    path = tmp_path / "mouse7.npz"
    np.savez(path, neural=neural, **labels)
    with pytest.raises(SessionError, match=problem) as err:
        load_session(path, session="mouse7", labels=OPENFIELD)
    text = str(err.value)
    assert text.startswith(f"session 'mouse7' ({path}): ") and f"'{column}'" in text and "\n" not in text
    with pytest.raises(SessionError, match=problem) as err:
        validate_session(neural, labels, spec=OPENFIELD, session="mouse7", source="mouse7.nwb")
    assert str(err.value).startswith("session 'mouse7' (mouse7.nwb): ")
    assert isinstance(err.value, InputError)


def test_label_problems_lists_every_problem_of_every_column():
    neural, labels = make_openfield()
    frame = pd.DataFrame(labels)
    assert label_problems(frame, OPENFIELD) == []
    frame["x"] = 0.25
    frame["context"] = 3
    assert label_problems(frame, OPENFIELD) == [
        "continuous label column 'x' holds one value (0.25) in every time bin: a constant label can neither guide the "
        "fit nor be decoded",
        "discrete label column 'context' holds one class only (3): a contrast needs at least two",
    ]
    with pytest.raises(SessionError) as err:
        validate_session(neural, frame, spec=OPENFIELD, session="m", source="m.parquet")
    assert str(err.value) == "session 'm' (m.parquet): " + "; ".join(label_problems(frame, OPENFIELD))


def test_rat_flags_are_checked_only_on_the_rat_track():
    """The right/left flags must be one-hot on the rat track; the same columns among other declared
    labels are ordinary continuous columns."""
    neural, labels = make_session()
    both = rat_frame(labels)
    both.loc[5, ["right", "left"]] = 1.0
    assert label_problems(both, RAT) == [
        "the right/left flags must be one-hot (right + left = 1 in every time bin), but 0 bins have neither and 1 "
        "have both (first at time bin 5)"]
    assert label_problems(both.assign(speed=np.arange(200.0)), LabelSpec(("position", "right", "left", "speed"))) == []
    assert label_problems(rat_frame(labels), RAT) == []
    # a (T, 3) array is the rat track's alone; other labels come by name
    with pytest.raises(SessionError, match=r"labels of shape \(200, 3\) are not the declared label columns \['x', 'y', "
                                           r"'context'\]: give one 1-D array per column"):
        validate_session(neural, labels, spec=OPENFIELD, session="m")


def test_label_spec_rules():
    assert RAT.is_rat_track and RAT.columns == ("position", "right", "left") and not OPENFIELD.is_rat_track
    assert OPENFIELD.columns == ("x", "y", "context") and OPENFIELD.kind("context") == "discrete"
    assert LabelSpec.from_config(None) == RAT and LabelSpec.from_config(OPENFIELD.to_config()) == OPENFIELD
    assert OPENFIELD.check_chosen("x", "k") == ("x",) and OPENFIELD.check_chosen(["x", "y"], "k") == ("x", "y")
    for bad, message in [
        (dict(continuous=(), discrete=()), "declare at least one column"),
        (dict(continuous=("x",), discrete=("a", "b")), r"at most one discrete column \(as CEBRA\)"),
        (dict(continuous=("x", "x")), r"\['x'\] declared more than once"),
        (dict(continuous=("session",)), "'session' cannot name a label column"),
        (dict(continuous=("z0",)), "'z0' cannot name a label column"),
        (dict(continuous=("2x",)), "'2x' cannot name a label column"),
    ]:
        with pytest.raises(ValueError, match=message):
            LabelSpec(**bad)
    with pytest.raises(ValueError, match=r"k: 'speed' is not a declared label column \(x, y, context; the labels key\)"):
        OPENFIELD.check_chosen("speed", "k")
    with pytest.raises(ValueError, match="k: a 2-D grid needs two continuous columns; 'context' is discrete"):
        OPENFIELD.check_chosen(["x", "context"], "k")
    with pytest.raises(ValueError, match=r"k: name one label column or two continuous ones, got \['x', 'y', 'x'\]"):
        OPENFIELD.check_chosen(["x", "y", "x"], "k")


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
    with pytest.raises(SessionError, match=r"label column\(s\) \['position', 'right', 'left'\] \(the labels key\) are "
                                           r"missing; found \['spikes'\]"):
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
    with pytest.raises(SessionError, match=r"a session table needs the neural columns n0 … n\{N-1\}; found none "
                                           r"\(columns: \['a'\]\)"):
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
    frame = embedding_frame("buddy", z, rat_frame(labels))
    assert list(frame.columns) == ["session", "time", "part", "z0", "z1", "z2", "position", "right", "left"]
    assert frame["time"].tolist() == list(range(120)) and set(frame["part"]) == {"all"}
    assert label_columns(frame) == ["position", "right", "left"]
    np.testing.assert_array_equal(alignment_labels(frame), labels.astype(np.float32))  # the labels come back from the table
    parts = np.where(np.arange(120) < 96, "train", "test")
    assert embedding_frame("buddy", z, rat_frame(labels), part=parts)["part"].tolist() == parts.tolist()
    with pytest.raises(ValueError, match="session 'buddy': 119 embedding rows but 120 labels"):
        embedding_frame("buddy", z[:-1], rat_frame(labels))


def test_embedding_frame_of_declared_labels():
    """Any declared labels follow z in their order and kinds; the alignment matches within a class."""
    neural, columns = make_openfield(t=120)
    _, labels = validate_session(neural, columns, spec=OPENFIELD)
    z = np.random.default_rng(1).normal(size=(120, 4))
    frame = embedding_frame("mouse", z, labels)
    assert list(frame.columns) == ["session", "time", "part", "z0", "z1", "z2", "z3", "x", "y", "context"]
    assert frame["context"].dtype == np.int64 and frame["x"].dtype == np.float32
    assert label_columns(frame) == ["x", "y", "context"]
    aligned = alignment_labels(frame)
    assert aligned.shape == (120, 3)
    np.testing.assert_array_equal(aligned[:, :2], labels[["x", "y"]].to_numpy(np.float64))
    # classes lie far apart: 1e3 x (1 + the largest |x|, |y|) between them
    spread = 1e3 * (1 + float(np.abs(labels[["x", "y"]].to_numpy(np.float64)).max()))
    np.testing.assert_allclose(aligned[:, 2], labels["context"].to_numpy() * spread)


def test_real_sessions():
    buddy = shared_file("buddy.jl")
    assert md5sum(buddy) == PUBLISHED["buddy"]["jl_md5"]
    x, y = load_session(buddy)  # accepted: its MD5 is the published one
    assert x.shape == (6577, 48) and y.shape == (6577, 3) and list(y.columns) == ["position", "right", "left"]
    np.testing.assert_array_equal(y["right"] + y["left"], 1)
    x, y = load_session(shared_file("achilles_reconstructed.npz"), session="achilles")
    assert x.shape == (10178, 120) and y.shape == (10178, 3)
    assert 0 <= y["position"].min() and y["position"].max() <= 1.6


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
    write_session(tmp_path / "z.parquet", z, rat_frame(labels))
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


def test_an_nwb_sessions_signal_is_its_neural_sources(tmp_path):
    """An NWB session's units give counts, its ophys ROI series a continuous signal: another declared
    kind is refused before the file is opened."""
    path = tmp_path / "rec.nwb"
    path.write_bytes(b"not read")
    with pytest.raises(SessionError, match=r"signals.rec: 'continuous' does not match its NWB neural data: neural: "
                                           r"units gives a counts signal; declare signals: \{rec: counts\} \(or read "):
        load_session(path, session="rec", signal="continuous")
    with pytest.raises(SessionError, match=r"signals.rec: 'counts' does not match its NWB neural data: neural: ophys "
                                           r"gives a continuous signal; declare signals: \{rec: continuous\}$"):
        load_session(path, session="rec", signal="counts", nwb={"neural": "ophys"})
    with pytest.raises(SessionError, match=r"session 'rec' \(.*rec\.nwb\): cannot be read as an NWB file"):
        load_session(path, session="rec", signal="continuous", nwb={"neural": "ophys"})


def test_schema_lists_the_signal_kinds():
    """The config schema's `signals` values are the library's SIGNAL_KINDS, its default counts for every session."""
    import yaml

    from cebra_core.sessions.validation import SIGNAL_KINDS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    signals = schema["properties"]["signals"]
    assert tuple(signals["additionalProperties"]["enum"]) == SIGNAL_KINDS and signals["default"] == {}
