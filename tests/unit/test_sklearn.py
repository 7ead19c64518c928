"""`CEBRA` follows scikit-learn's estimator protocol without depending on scikit-learn.

`clone`, `get_params`/`set_params`, a `Pipeline` (y reaches CEBRA's fit: CEBRA-Behavior),
`GridSearchCV` with contiguous folds, and sklearn's own `check_estimator`: every check passes but
the ones listed in `NOT_APPLICABLE`, each with the reason it cannot apply to an encoder of time
windows. cebra_core itself never imports scikit-learn at module level (only `__sklearn_tags__`,
which only scikit-learn calls, imports it).
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (the test extra brings it with cebra)")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.neighbors import KNeighborsRegressor  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

from cebra_core.engine.estimator import CEBRA  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = dict(batch_size=16, max_iterations=4, device="cpu", seed=0, num_hidden_units=8)

# check_estimator's checks that cannot apply to an encoder of time windows (offset10-model, the
# default: each embedding row is computed from the 10 samples around it), with the reason, and
# the error each must fail with (so that a failure for another reason is not taken for this one)
NOT_APPLICABLE = {
    "check_methods_subset_invariance": (
        "transform embeds a time series: a row's embedding uses the rows around it, and fewer rows than "
        "the receptive field (10 for offset10-model; one-row batches here) is an error"),
    "check_methods_sample_order_invariance": (
        "transform embeds a time series: each row's embedding uses its neighbours in time, so shuffling "
        "the rows changes the embeddings, not just their order"),
}
FAILS_WITH = {
    "check_methods_subset_invariance": r"samples is shorter than the model's receptive field \(10\)",
    "check_methods_sample_order_invariance": r"not invariant when applied to a datasetwith different sample order",
}


def behaviour(seed: int = 0, rows: int = 200, neurons: int = 12):
    """Neurons tuned to a 1-D position (float64, as users pass it) plus noise: a CEBRA-Behavior problem."""
    rng = np.random.default_rng(seed)
    position = np.cumsum(rng.normal(0, 0.1, rows))
    centres = rng.uniform(position.min(), position.max(), neurons)
    X = np.exp(-((position[:, None] - centres) ** 2)) + 0.1 * rng.normal(size=(rows, neurons))
    return X, position


def test_cebra_core_does_not_import_sklearn_at_module_level():
    """cebra_core runs without scikit-learn: no module imports it outside a function."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(inner) for f in functions for inner in ast.walk(f)}
        for node in ast.walk(tree):
            if id(node) in inside or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m == "sklearn" or m.startswith("sklearn.") for m in modules):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, f"module-level scikit-learn imports: {found}"


def test_clone_has_the_same_params_and_is_unfitted():
    model = CEBRA("offset5-model", temperature=0.3, output_dimension=4, conditional="time", **TINY)
    twin = clone(model)
    assert twin is not model and twin.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(twin)
    X, y = behaviour()
    model.fit(X, y)
    check_is_fitted(model)
    refit = clone(model)
    assert refit.get_params() == model.get_params() and not hasattr(refit, "model_")
    with pytest.raises(ValueError, match="not fitted"):
        refit.transform(X)


def test_set_params_round_trip_and_unknown_name():
    model = CEBRA()
    other = CEBRA("offset36-model", temperature=0.2, temperature_mode="auto", min_temperature=None, seed=3,
                  checkpoint_path="x.ckpt", causal=True)
    assert model.set_params(**other.get_params()) is model
    assert model.get_params() == other.get_params()
    assert repr(model) == repr(other)
    assert repr(CEBRA(temperature=0.5)) == "CEBRA(temperature=0.5)"
    with pytest.raises(ValueError, match="'temprature' is not a parameter of CEBRA; parameters: model_architecture"):
        model.set_params(temprature=1.0)
    assert model.get_params(deep=False) == model.get_params(deep=True)


def test_fit_transform_takes_y_as_sklearn_passes_it():
    X, y = behaviour()
    by_position = CEBRA(**TINY).fit_transform(X, y)
    by_keyword = CEBRA(**TINY).fit_transform(X, y=y)
    fitted = CEBRA(**TINY).fit(X, y=y)
    np.testing.assert_array_equal(by_position, by_keyword)
    np.testing.assert_array_equal(by_position, fitted.transform(X))
    assert fitted.label_kinds_ == {"continuous": 1, "discrete": False}
    # a nested list is one session (as in CEBRA); a list of 2-D arrays is a list of sessions
    np.testing.assert_array_equal(CEBRA(**TINY).fit_transform(X.tolist(), y.tolist()), by_position)


class _Stop(Exception):
    pass


NO_LABEL_CALLS = {
    "fit(X)": lambda model, X: model.fit(X),
    "fit(X, y=None)": lambda model, X: model.fit(X, y=None),
    "fit(X, None)": lambda model, X: model.fit(X, None),  # what Pipeline.fit(X) passes
    "fit_transform(X, y=None)": lambda model, X: model.fit_transform(X, y=None),
}


@pytest.mark.parametrize("call", list(NO_LABEL_CALLS))
def test_y_none_is_no_label(monkeypatch, call):
    """sklearn's y=None (a Pipeline without y) is CEBRA-Time: the sampler gets no labels. (Checked at
    the sampler's door, so that this tests the routing, not the time-contrastive sampler.)"""
    import cebra_core.engine.estimator as estimator

    seen = []

    def make_sampler(labels, **options):
        seen.append(labels)
        raise _Stop

    monkeypatch.setattr(estimator, "make_sampler", make_sampler)
    X, _ = behaviour()
    model = CEBRA(**TINY)
    with pytest.raises(_Stop):
        NO_LABEL_CALLS[call](model, X)
    [labels] = seen
    assert len(labels) == 1 and labels[0].continuous is None and labels[0].discrete is None
    assert model.label_kinds_ == {"continuous": None, "discrete": False}


def test_pipeline_trains_cebra_behaviour_on_y():
    X, y = behaviour()
    pipe = Pipeline([("cebra", CEBRA(**TINY)), ("knn", KNeighborsRegressor(n_neighbors=5))])
    predicted = pipe.fit(X, y).predict(X)
    assert predicted.shape == y.shape and np.isfinite(predicted).all()
    step = pipe.named_steps["cebra"]
    assert step.label_kinds_ == {"continuous": 1, "discrete": False}  # Pipeline.fit(X, y) gave CEBRA the labels
    np.testing.assert_array_equal(step.transform(X), CEBRA(**TINY).fit(X, y).transform(X))


def test_grid_search_over_temperature_with_contiguous_folds():
    X, y = behaviour()
    folds = KFold(n_splits=2)  # contiguous halves, not shuffled: time series
    assert [list(test) for _, test in folds.split(X)] == [list(range(100)), list(range(100, 200))]
    pipe = Pipeline([("cebra", CEBRA(**TINY)), ("knn", KNeighborsRegressor(n_neighbors=5))])
    search = GridSearchCV(pipe, {"cebra__temperature": [0.5, 1.0]}, scoring="r2", cv=folds)
    search.fit(X, y)
    assert search.best_params_["cebra__temperature"] in (0.5, 1.0)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.named_steps["cebra"].temperature == search.best_params_["cebra__temperature"]
    assert search.predict(X).shape == y.shape


@pytest.mark.parametrize("architecture, not_applicable", [
    ("offset10-model", NOT_APPLICABLE),
    ("offset1-model", {}),  # an MLP embeds every row on its own: every check applies
])
def test_check_estimator(architecture, not_applicable):
    estimator = CEBRA(architecture, max_iterations=2, batch_size=16, device="cpu", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, expected_failed_checks=not_applicable, on_fail="raise", on_skip=None)
    status = {}
    for result in results:
        name = result["check_name"]
        if name in not_applicable:
            assert result["status"] == "xfail", f"{name} now passes: take it out of NOT_APPLICABLE"
            assert re.search(FAILS_WITH[name], str(result["exception"])), (
                f"{name} fails for another reason: {result['exception']!r}")
        status.setdefault(result["status"], set()).add(name)
    # only sklearn's array-API check skips (it needs SCIPY_ARRAY_API); nothing else is left out
    assert status.get("skipped", set()) <= {"check_array_api_input"}
    assert status.get("xfail", set()) == set(not_applicable)
    assert len(status["passed"]) >= 40
    print(f"\n{architecture}: {sum(len(v) for v in status.values())} checks, "
          + ", ".join(f"{k} {len(v)}" for k, v in sorted(status.items())))


def test_sklearn_input_errors_are_clear():
    """What check_estimator asked of the input checks, as a user meets it."""
    from scipy import sparse

    X, y = behaviour()
    model = CEBRA(**TINY)
    with pytest.raises(TypeError, match="sparse input is not supported"):
        model.fit(sparse.csr_matrix(X), y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        model.fit(X + 1j, y)
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(200, 0\)\) while a minimum of 1 is required"):
        model.fit(X[:, :0], y)
    with pytest.raises(ValueError, match="Reshape your data"):
        model.fit(X[:, 0], y)
    with pytest.raises(TypeError, match="must be a string or a (real )?number"):
        bad = X.astype(object)
        bad[0, 0] = {"a": 1}
        model.fit(bad, y)
    model.fit(X.astype(object), y)  # numbers in an object array are numbers
    with pytest.raises(ValueError, match="X has 11 features, but CEBRA is expecting 12 features as input"):
        model.transform(X[:, 1:])
