"""CEBRA 0.6.1's model file both ways (`cebra_core.engine.cebra_format`).

cebra_core's ``save(path, format="cebra")`` must give a file that ``cebra.CEBRA.load`` turns into a
model with the same transform (every architecture, single- and multi-session, both distances and
temperature modes), and cebra_core's ``CEBRA.load`` must open what ``cebra.CEBRA.save`` wrote.
The tests that run CEBRA itself are marked ``reference`` and skip where ``cebra==0.6.1`` is not
importable; the others (GPU-saved file, refused pickles, our own format) run everywhere.
"""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from cebra_core.engine import cebra_format
from cebra_core.engine.architectures import ARCHITECTURES
from cebra_core.engine.estimator import CEBRA

try:
    import cebra
except ImportError:  # the reference tests skip
    cebra = None

NO_CEBRA = ("CEBRA 0.6.1 is not installed here: pip install cebra==0.6.1 torch==2.13.0 to run the reference tests"
            if cebra is None else f"reference tests are pinned to CEBRA 0.6.1, found {cebra.__version__}")
HAVE_CEBRA = cebra is not None and cebra.__version__ == "0.6.1"


def reference(test):
    """A test that runs CEBRA 0.6.1 itself: marked ``reference``, skipped where it is not importable."""
    return pytest.mark.reference(pytest.mark.skipif(not HAVE_CEBRA, reason=NO_CEBRA)(test))


pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = 1e-5
# (temperature_mode, distance): CEBRA's _prepare_criterion builds FixedCosineInfoNCE / LearnableEuclideanInfoNCE
CRITERIA = [("constant", "cosine"), ("auto", "euclidean")]


def data(seed: int = 0, multi: bool = False, discrete: bool = False):
    """Tiny sessions (80 and 90 rows, 6 and 4 neurons) with 2 continuous label columns (or a discrete label)."""
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(80, 6)).astype(np.float32), rng.normal(size=(90, 4)).astype(np.float32)]
    if discrete:
        y = [rng.integers(0, 3, 80), rng.integers(0, 3, 90)]
    else:
        y = [rng.normal(size=(80, 2)).astype(np.float32), rng.normal(size=(90, 2)).astype(np.float32)]
    return (X, y) if multi else (X[0], y[0])


def ours(architecture="offset10-model", multi=False, temperature_mode="constant", distance="cosine", **params):
    X, y = data(multi=multi, discrete=params.pop("discrete", False))
    model = CEBRA(architecture, batch_size=16, max_iterations=3, device="cpu", seed=0, num_hidden_units=8,
                  temperature=0.5, temperature_mode=temperature_mode, distance=distance, **params)
    return model.fit(X, y), X


def embeddings(model, X) -> list[np.ndarray]:
    """Every session's embedding (CEBRA's transform takes no session_id for a single-session model)."""
    if not isinstance(X, list):
        return [model.transform(X)]
    return [model.transform(x, session_id=i) for i, x in enumerate(X)]


# ---------------------------------------------------------------------------------- ours -> CEBRA
@pytest.mark.parametrize("temperature_mode, distance", CRITERIA)
@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
@reference
def test_cebra_opens_our_file(tmp_path, architecture, multi, temperature_mode, distance):
    model, X = ours(architecture, multi, temperature_mode, distance)
    path = tmp_path / "model.pt"
    model.save(path, format="cebra")
    theirs = cebra.CEBRA.load(path)
    for a, b in zip(embeddings(model, X), embeddings(theirs, X)):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=ATOL, rtol=0)
    # the fitted state CEBRA's own fit would have set
    assert theirs.device_ == "cpu" and theirs.solver_name_ == ("multi-session" if multi else "single-session")
    assert isinstance(theirs.offset_, cebra.data.datatypes.Offset)
    assert len(theirs.offset_) == ARCHITECTURES[architecture].receptive_field
    assert (theirs.offset_.left, theirs.offset_.right) == (model.offset_.left, model.offset_.right)
    assert type(theirs.num_sessions_) is (int if multi else type(None))
    assert theirs.n_features_in_ == ([6, 4] if multi else 6) == theirs.n_features_
    expected = {("constant", "cosine"): "FixedCosineInfoNCE", ("auto", "euclidean"): "LearnableEuclideanInfoNCE"}
    assert type(theirs.solver_.criterion).__name__ == expected[temperature_mode, distance]
    assert theirs.solver_.criterion.temperature == pytest.approx(model.criterion_.temperature)
    assert theirs.solver_.log == model.log_
    group = theirs.solver_.optimizer.param_groups[0]  # Adam as CEBRA builds it, over model + criterion params
    assert group["lr"] == model.learning_rate and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
    assert len(group["params"]) == len(list(model.model_.parameters())) + (temperature_mode == "auto")
    np.testing.assert_array_equal(theirs.solver_.history, model.loss_history_)
    assert theirs.label_types_ == (
        [[(np.dtype("float32"), (80, 2)), (np.dtype("float32"), (90, 2))]] if multi
        else [(np.dtype("float32"), (cebra_format.UNKNOWN_ROWS, 2))])
    assert set(theirs.get_params()) == set(cebra.CEBRA().get_params())  # every constructor argument written


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_our_cebra_file_names_only_cebras_allowed_classes(tmp_path, multi):
    """Our CEBRA-format file names CEBRA's Offset and numpy's dtype and nothing else (CEBRA's allowlist)."""
    model, X = ours("offset5-model", multi, "auto", "cosine", discrete=True)
    path = tmp_path / "model.pt"
    model.save(path, format="cebra")
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) == {"cebra.data.datatypes.Offset",
                                                                              "numpy.dtype"}
    contents = cebra_format.read(path)
    offset = contents["state"]["offset_"]
    assert (offset.left, offset.right, len(offset)) == (2, 3, 5)
    assert contents["state"]["label_types_"] == ([[(np.dtype("int64"), (80,)), (np.dtype("int64"), (90,))]] if multi
                                                 else [(np.dtype("int64"), (cebra_format.UNKNOWN_ROWS,))])
    assert contents["state_dict"]["optimizer"]["param_groups"][0]["params"] == list(
        range(sum(1 for _ in model.model_.parameters()) + 1))  # + log_inverse_temperature
    # and it opens back in cebra_core as CEBRA's file, with the same transform
    back = CEBRA.load(path)
    assert back.label_kinds_ == model.label_kinds_ == {"continuous": None, "discrete": True}
    for a, b in zip(embeddings(model, X), embeddings(back, X)):
        np.testing.assert_array_equal(a, b)


@reference
def test_cebra_loads_our_file_with_its_weights_only_allowlist(tmp_path):
    """CEBRA's own allowlist (CEBRA_LOAD_SAFE_GLOBALS) is enough for our file under weights_only=True."""
    from cebra.integrations.sklearn.cebra import CEBRA_LOAD_SAFE_GLOBALS

    model, X = ours("offset10-model", True, "auto", "cosine")
    path = tmp_path / "model.pt"
    model.save(path, format="cebra")
    with torch.serialization.safe_globals(CEBRA_LOAD_SAFE_GLOBALS):
        contents = torch.load(path, weights_only=True)
    assert type(contents["state"]["offset_"]) is cebra.data.datatypes.Offset
    # a model CEBRA loaded from our file saves again in its own format (it needs label_types_ for that)
    theirs = cebra.CEBRA.load(path)
    theirs.save(tmp_path / "again.pt")
    again = cebra.CEBRA.load(tmp_path / "again.pt")
    np.testing.assert_allclose(again.transform(X[1], session_id=1), model.transform(X[1], session_id=1), atol=ATOL)


def test_causal_model_is_not_written_in_cebras_format(tmp_path):
    model, _ = ours("offset5-model", causal=True)
    with pytest.raises(ValueError, match="causal"):
        model.save(tmp_path / "model.pt", format="cebra")
    assert not (tmp_path / "model.pt").exists()


# ---------------------------------------------------------------------------------- CEBRA -> ours
# (architecture, multi, temperature_mode, distance, batch_size, discrete); batch_size None is CEBRA's full batch
THEIR_MODELS = [
    ("offset1-model", False, "constant", "cosine", 16, False),
    ("offset5-model", True, "auto", "cosine", 16, False),
    ("offset10-model", False, "auto", "euclidean", None, False),
    ("offset36-model", True, "constant", "cosine", 16, False),
    ("offset10-model-mse", False, "constant", "euclidean", 16, False),
    ("offset1-model-mse", True, "auto", "euclidean", 16, False),
    ("offset5-model", False, "constant", "cosine", 16, True),
]


@pytest.mark.parametrize("architecture, multi, temperature_mode, distance, batch_size, discrete", THEIR_MODELS)
@reference
def test_cebra_core_opens_cebras_file(tmp_path, architecture, multi, temperature_mode, distance, batch_size, discrete):
    X, y = data(1, multi, discrete)
    torch.manual_seed(0)
    theirs = cebra.CEBRA(model_architecture=architecture, batch_size=batch_size, max_iterations=3, device="cpu",
                         num_hidden_units=8, output_dimension=3, temperature=0.5, temperature_mode=temperature_mode,
                         distance=distance, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.fit(X, y)
    path = tmp_path / "theirs.pt"
    theirs.save(path)  # the default backend ("sklearn"); offset10-model cannot be saved with backend="torch"
    model = CEBRA.load(path)
    for a, b in zip(embeddings(model, X), embeddings(theirs, X)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
    assert model.num_sessions_ == (2 if multi else None)
    assert model.n_features_in_ == ([6, 4] if multi else 6)
    assert model.label_kinds_ == ({"continuous": None, "discrete": True} if discrete
                                  else {"continuous": 2, "discrete": False})
    assert model.criterion_.temperature == pytest.approx(theirs.solver_.criterion.temperature)
    for column in ("pos", "neg", "total", "temperature"):  # float32 in our log, Python floats in CEBRA's
        np.testing.assert_allclose(model.log_[column], theirs.solver_.log[column], rtol=1e-6)
    np.testing.assert_allclose(model.loss_history_, theirs.solver_.history)
    assert model.seed_ == 0 and model._extra_state == {} and model.device_ == "cpu"
    params = model.get_params()
    assert (params["model_architecture"], params["temperature_mode"], params["distance"]) == (
        architecture, temperature_mode, distance)
    assert params["batch_size"] == (512 if batch_size is None else batch_size)  # full batch: our default
    assert params["conditional"] == "time_delta"  # CEBRA's None
    model._check_params()  # every mapped parameter is a valid cebra_core one (the model can be refitted)


def test_unsupported_cebra_architecture_is_refused(tmp_path):
    model, _ = ours("offset10-model")
    contents = cebra_format.to_cebra(model)
    contents["args"]["model_architecture"] = "offset40-model"
    cebra_format.write(contents, tmp_path / "offset40.pt")
    with pytest.raises(ValueError, match="offset40-model.*supported: offset1-model, offset1-model-mse, offset5-model"):
        CEBRA.load(tmp_path / "offset40.pt")


# ---------------------------------------------------------------------------------- GPU-saved file
def test_gpu_saved_cebra_file_loads_on_the_cpu(tmp_path, monkeypatch):
    """CEBRA issue #295: a model saved on a GPU (``device_`` 'cuda', storages tagged 'cuda:0') loads here.

    A real CUDA storage cannot be made on this CPU-only machine: the file is written from CPU
    tensors with torch's storage location tag patched to 'cuda:0', which is what a GPU save records
    (torch.load without map_location then refuses it on a machine without CUDA, as for a real one).
    """
    model, X = ours("offset10-model", True, "auto", "cosine")
    contents = cebra_format.to_cebra(model)
    contents["state"]["device_"] = "cuda"
    contents["args"]["device"] = "cuda"
    path = tmp_path / "gpu.pt"
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        cebra_format.write(contents, path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"), torch.serialization.safe_globals(cebra_format._allowed()):
            torch.load(path, weights_only=True)  # without map_location: the storages want a GPU
        if HAVE_CEBRA:  # CEBRA 0.6.1 itself cannot open it here (issue #295)
            with pytest.raises(RuntimeError):
                cebra.CEBRA.load(path)
    loaded = CEBRA.load(path)
    assert loaded.device_ == "cpu" and loaded.get_params()["device"] == "cuda"
    for a, b in zip(embeddings(model, X), embeddings(loaded, X)):
        np.testing.assert_array_equal(a, b)
    assert loaded.criterion_.log_inverse_temperature.device.type == "cpu"


# ---------------------------------------------------------------------------------- refused pickles
class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("payload", ["call", "reference"])
def test_file_with_a_foreign_global_is_refused_unrun(tmp_path, payload):
    model, _ = ours("offset1-model")
    contents = cebra_format.to_cebra(model)
    marker = tmp_path / "ran"
    contents["state"]["offset_"] = (0, 1)  # plain torch.save: no stand-in class; CEBRA accepts a tuple too
    contents["metadata"]["extra"] = _RunsACommand(marker) if payload == "call" else os.system
    path = tmp_path / "evil.pt"
    torch.save(contents, path)
    with pytest.raises(ValueError, match=r"not a cebra_core or CEBRA model file \(it names posix.system, "):
        CEBRA.load(path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="not a cebra_core or CEBRA model file"):
        CEBRA.load(_write_bytes(tmp_path / "plain.pt", pickle.dumps({"args": 1}, protocol=2)))


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------- our own format
def test_our_format_round_trips_and_a_cebra_file_cannot_adapt(tmp_path):
    model, X = ours("offset5-model", True, "auto", "euclidean")
    model.save(tmp_path / "ours.pt")
    back = CEBRA.load(tmp_path / "ours.pt")
    assert back.get_params() == model.get_params() and back.seed_ == model.seed_
    assert back.label_kinds_ == model.label_kinds_ and back.log_ == model.log_
    assert set(back._extra_state) == set(model._extra_state) != set()
    for a, b in zip(embeddings(model, X), embeddings(back, X)):
        np.testing.assert_array_equal(a, b)
    model.save(tmp_path / "cebra.pt", format="cebra")
    from_cebra = CEBRA.load(tmp_path / "cebra.pt")
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="needs the training data"):
        from_cebra.adapt(rng.normal(size=(60, 5)).astype(np.float32), rng.normal(size=(60, 2)).astype(np.float32),
                         max_iterations=2)


def test_file_sizes_of_both_formats(tmp_path):
    """Both formats of one model (offset10-model, 32 units, 120 neurons, 3 outputs, a 1000-step log)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 120)).astype(np.float32), rng.normal(size=(200, 2)).astype(np.float32)
    model = CEBRA("offset10-model", batch_size=16, max_iterations=2, device="cpu", seed=0).fit(X, y)
    model._set_log(torch.rand(1000, 4))
    model.save(tmp_path / "ours.pt")
    model.save(tmp_path / "cebra.pt", format="cebra")
    sizes = {name: os.path.getsize(tmp_path / f"{name}.pt") for name in ("ours", "cebra")}
    print(f"\nfile sizes: cebra_core {sizes['ours']} B, CEBRA format {sizes['cebra']} B")
    weights = 4 * sum(p.numel() for p in model.model_.parameters())  # float32
    for size in sizes.values():
        assert weights < size < weights + 150_000
    np.testing.assert_array_equal(CEBRA.load(tmp_path / "cebra.pt").transform(X), model.transform(X))
