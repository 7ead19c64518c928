"""The workflow's plan (cebra_workflow.plan), in process: the config's checks and their messages, the
fits and their sessions, splits, the held-out session, sweep points and their names, the targets, and
the local core cap. tests/workflow/test_workflow.py checks once, through real dry runs, that the Snakefile
builds its DAG from this plan."""

import logging
import os
import subprocess
import sys
import types

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from cebra_workflow import cores, paths
from cebra_workflow import plan as planning
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.rats import PUBLISHED
from helpers import REPO, config_file, plan_for

SAMPLE = config_file(REPO / "config/sample.yaml")
SWEEP_EXAMPLE = config_file(REPO / "config/sweep.example.yaml")
RATS = list(PUBLISHED)  # the four rats, in the demo's order


def sample(**overrides) -> dict:
    return {**SAMPLE, **overrides}


def test_the_module_needs_only_the_standard_library():
    """Snakemake's own process imports it under --use-conda, where there is no numpy or torch."""
    code = ("import sys; sys.path.insert(0, 'src'); import cebra_workflow.plan; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'pandas', 'yaml')))")
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_default_config_is_the_demo():
    plan = plan_for({})
    cebra = plan.config["cebra"]
    assert plan.sessions == RATS and plan.source == "published"
    assert (cebra["max_iterations"], cebra["batch_size"], cebra["learning_rate"], cebra["temperature"]) == (15000, 512, 3e-4, 1.0)
    assert (cebra["output_dimension"], cebra["distance"], cebra["conditional"], cebra["time_offsets"]) == (3, "cosine", "time_delta", 10)
    assert cebra["model_architecture"] == "offset10-model" and cebra["num_hidden_units"] == 32
    assert plan.config["device"] == "cuda_if_available" and plan.config["gpu"] is False
    assert (cebra["temperature_mode"], cebra["min_temperature"], cebra["delta"], cebra["causal"]) == ("constant", 0.1, None, False)
    assert plan.seeds == ["0"] and plan.config["evaluation"] == {
        "folds": 1, "test_fraction": 0.2, "min_coverage": 0.8, "protocol": "contiguous",
        "decoding_k_grid": [1, 4, 9, 16, 25], "score": {"column": "position", "metric": "median_abs_error"}}
    # the labels are the rat track's; every key that names a label column names position
    assert plan.config["labels"] == {"continuous": ["position", "right", "left"], "discrete": []}
    assert plan.labels == LabelSpec() and plan.labels.is_rat_track and plan.consistency_label == ("position",)
    assert plan.config["analysis"]["consistency_label"] == "position" and plan.config["figures"]["colour_by"] == "position"
    assert plan.config["data"]["simulate"]["kind"] == "rat"
    assert plan.splits == ["all", "fold0"] and plan.held_out == "gatsby" and plan.trained == RATS[:3]
    assert plan.fits == [*(f"single/{r}" for r in RATS), "multi", "multi_without/gatsby"]


def test_config_yaml_holds_no_default():
    """One owner for every default: config/config.yaml sets only what has no default (the sessions)."""
    assert set(config_file(REPO / "config/config.yaml")) == {"sessions"}


def schema_defaults(schema: dict, prefix: str = "") -> dict[str, object]:
    """{dotted key: default} of every key the schema gives a default (nested objects flattened)."""
    out = {}
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            out.update(schema_defaults(sub, name + "."))
        elif "default" in sub:
            out[name] = sub["default"]
    return out


def test_schema_defaults_match_the_library():
    """Where cebra_core has a default for a config key (for use outside the workflow), it is the
    schema's: the workflow always passes the schema's value, and the two cannot drift apart."""
    from cebra_core.analysis import alignment, decoding, metrics
    from cebra_core.sessions import download

    defaults = schema_defaults(yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text()))
    assert defaults["analysis.decoding_neighbors"] == decoding.N_NEIGHBORS
    assert defaults["analysis.alignment_top_k"] == alignment.TOP_K
    assert defaults["analysis.consistency_bins"] == metrics.BINS
    assert defaults["data.download.base_url"] == download.DEFAULT_BASE_URL
    assert defaults["data.download.retries"] == download.RETRIES and defaults["data.download.timeout"] == download.TIMEOUT


def test_schema_choices_match_the_library():
    """The schema's enums and the new cebra keys' defaults are the engine's and the analysis' own
    lists and defaults (a new architecture, conditional or metric cannot be added to one alone)."""
    from cebra_core import CEBRA
    from cebra_core.analysis.protocols import DEFAULT_SCORE, METRICS, PROTOCOLS
    from cebra_core.analysis.sweep import SELECT_BY
    from cebra_core.engine.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE
    from cebra_core.engine.loss import DISTANCES, MIN_TEMPERATURE, TEMPERATURE_MODES
    from cebra_core.engine.sampling import CONDITIONALS
    from cebra_core.steps.data import SIMULATORS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    cebra = schema["properties"]["cebra"]["properties"]
    assert tuple(cebra["model_architecture"]["enum"]) == tuple(ARCHITECTURES)
    assert cebra["model_architecture"]["default"] == DEFAULT_ARCHITECTURE == CEBRA().model_architecture
    assert set(cebra["conditional"]["enum"]) == set(CONDITIONALS) and tuple(cebra["distance"]["enum"]) == DISTANCES
    assert tuple(cebra["temperature_mode"]["enum"]) == TEMPERATURE_MODES
    defaults = CEBRA().get_params()
    for key in ("temperature_mode", "min_temperature", "delta", "causal", "conditional", "distance", "temperature",
                "time_offsets", "num_hidden_units", "output_dimension", "batch_size", "learning_rate"):
        assert cebra[key]["default"] == defaults[key], key
    assert cebra["min_temperature"]["default"] == MIN_TEMPERATURE
    evaluation = schema["properties"]["evaluation"]["properties"]
    assert tuple(evaluation["protocol"]["enum"]) == PROTOCOLS
    assert evaluation["score"]["properties"]["metric"]["enum"] == [m for kind in METRICS.values() for m in kind]
    assert evaluation["score"]["default"] == DEFAULT_SCORE
    assert tuple(schema["properties"]["sweep"]["properties"]["select_by"]["items"]["enum"]) == SELECT_BY
    assert tuple(schema["properties"]["data"]["properties"]["simulate"]["properties"]["kind"]["enum"]) == SIMULATORS
    labels = schema["properties"]["labels"]["default"]
    assert LabelSpec.from_config(labels) == LabelSpec() and labels["discrete"] == []


def test_fits_and_their_sessions():
    plan = plan_for(sample(new_session={"held_out": "buddy"}))
    assert plan.fit_sessions("multi") == RATS
    assert plan.fit_sessions("single/cicero") == ["cicero"]
    assert plan.fit_sessions("multi_without/buddy") == ["achilles", "cicero", "gatsby"]
    assert plan.fit_sessions("multi/buddy+gatsby") == ["buddy", "gatsby"]
    assert plan.kind_fits("multi", ["buddy", "gatsby"]) == ["multi/buddy+gatsby"]
    assert plan.kind_fits("multi", RATS) == ["multi"]
    # longest first: the priority is the number of sessions a fit trains on
    assert [plan.fit_priority(f) for f in plan.fits] == [1, 1, 1, 1, 4, 3]
    assert plan.fit_file(paths.FIT_MODEL, "fold0", "1", "multi") == "results/fits/fold0/seed1/multi/model.pt"
    assert [plan.fit_kind(f) for f in plan.fits] == ["single"] * 4 + ["multi", "multi"]


def test_splits_and_folds():
    plan = plan_for(sample(evaluation={"folds": 3}))
    assert plan.folds == ["fold0", "fold1", "fold2"] and plan.splits == ["all", "fold0", "fold1", "fold2"]
    assert plan.split_params("all") == {"protocol": "contiguous", "fold": None, "folds": 3, "test_fraction": 0.2}
    assert plan.split_params("fold2") == {"protocol": "contiguous", "fold": 2, "folds": 3, "test_fraction": 0.2}
    assert plan.decoding_k_grid() is None  # the contiguous protocol decodes with analysis.decoding_neighbors
    groups = plan.heldout_groups()
    assert [(g["seed"], g["fold"], g["kind"]) for g in groups] == [
        (seed, f"fold{k}", kind) for seed in (0, 1) for k in range(3) for kind in ("single", "multi")]
    inputs = plan.heldout_inputs()
    assert list(inputs) == [g["input"] for g in groups]  # each group names its input entry
    assert inputs[groups[-1]["input"]] == ["results/fits/fold2/seed1/multi/embedding.parquet"]
    assert len(inputs[groups[0]["input"]]) == 4
    # the check's train fraction is that of the largest test part: 1/3 with 3 folds, else 1 - test_fraction
    assert plan.session_needs()["train_fraction"] == pytest.approx(2 / 3)
    assert plan_for(SAMPLE).session_needs()["train_fraction"] == pytest.approx(0.8)


def test_the_trial_protocol_has_cebras_three_split_numbers():
    """evaluation.protocol trials: the held-out fits are split numbers 0-2 of CEBRA's trial split
    (folds and test_fraction unused), and the decoder chooses its k on the validation trials."""
    plan = plan_for(sample(evaluation={"protocol": "trials", "folds": 5}))
    assert plan.folds == ["fold0", "fold1", "fold2"] and plan.splits == ["all", "fold0", "fold1", "fold2"]
    assert plan.split_params("fold1")["protocol"] == "trials" and plan.split_params("fold1")["fold"] == 1
    assert plan.split_params("all")["fold"] is None
    assert plan.decoding_k_grid() == [1, 4, 9, 16, 25] and plan.session_needs()["protocol"] == "trials"
    assert len(plan.heldout_groups()) == 2 * 3 * 2  # seeds x split numbers x kinds
    from cebra_core.analysis import trials

    assert trials.TRIAL_SPLITS == len(plan.folds)


def test_new_session_follows_the_config():
    """held_out names the left-out session (last by default), null turns the target off, an unknown one is an error."""
    for held_out, expected in (("last", "gatsby"), ("buddy", "buddy"), (None, None), (False, None)):
        plan = plan_for(sample(new_session={"held_out": held_out}))
        assert plan.held_out == expected
        if expected is None:
            assert plan.new_session_targets() == [] and not any("multi_without" in f for f in plan.fits)
            assert not any("new_session" in t for t in plan.final_targets())
        else:
            assert f"results/figures/new_session_{expected}.png" in plan.final_targets()
            assert plan.fits[-1] == f"multi_without/{expected}" and expected not in plan.trained
    with pytest.raises(planning.ConfigError, match=r"new_session: held_out: 'nemo' is not one of the sessions"):
        plan_for(sample(new_session={"held_out": "nemo"}))


def test_targets_of_the_parts():
    plan = plan_for(SAMPLE)
    every = plan.final_targets()
    for part in (plan.figure_targets(), plan.evaluation_targets(), plan.new_session_targets()):
        assert part and set(part) <= set(every)
    assert "results/figures/embeddings.png" in plan.figure_targets()
    assert "results/figures/consistency.png" in plan.figure_targets()
    assert [t for t in every if t.endswith(".html")] == [f"results/figures/embeddings_3d/{r}.html" for r in RATS]
    assert len(every) == len(set(every))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"cebra": {"max_iterationz": 10}}, "max_iterationz"),
        ({"data": {"source": "ftp"}}, "ftp"),
        ({"cebra": {"batch_size": 0}}, "batch_size"),
        ({"colour": "blue"}, "colour"),
        ({"new_session": {"iterations": 0}}, "iterations"),
        ({"new_session": {"held_out": True}}, "held_out"),
        # the figures plot three dimensions: 2-D is refused before any fit (the schema's description,
        # which says so, is printed with the error)
        ({"cebra": {"output_dimension": 2}},
         "Failed validating 'minimum' in schema['properties']['cebra']['properties']['output_dimension']"),
    ],
)
def test_bad_config_rejected_by_schema(override, message):
    with pytest.raises(WorkflowError) as error:
        plan_for({**SAMPLE, **override})
    assert "Error validating config file" in str(error.value) and message in str(error.value)


def local_config(local: dict) -> dict:
    return {"sessions": list(local), "data": {"source": "local", "local": local}}


@pytest.mark.parametrize(
    "local, message",
    [
        ({"achilles": "/data/a.npz", "buddy": {"path": "/data/b.jl", "md5": "abc123"}},
         "config: data.local.buddy.md5: 'abc123' is not an MD5 checksum: it must be 32 hexadecimal characters"),
        ({"achilles": "${CEBRA_TEST_UNSET}/a.npz", "buddy": "/data/b.npz"},
         "config: data.local.achilles: the path '${CEBRA_TEST_UNSET}/a.npz' uses the environment variable "
         "CEBRA_TEST_UNSET, which is not set; set it (export CEBRA_TEST_UNSET=/path/to/the/folder)"),
    ],
)
def test_bad_local_config_named_before_any_job(monkeypatch, local, message):
    """An MD5 that is not one, and a path whose environment variable is unset, each in a sentence
    that names the key (not a bare schema error or Snakemake's WildcardError)."""
    monkeypatch.delenv("CEBRA_TEST_UNSET", raising=False)
    with pytest.raises(planning.ConfigError) as error:
        plan_for(local_config(local))
    assert message in str(error.value)


def test_published_checksum_override_checked():
    bad = {"data": {"download": {"checksums": {"buddy": {"gz_md5": "x" * 32, "jl_md5": "0" * 32}}}}}
    with pytest.raises(planning.ConfigError, match=r"data.download.checksums.buddy.gz_md5: 'x{32}' is not an MD5"):
        plan_for(bad)


def test_local_paths_expand_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("CEBRA_TEST_DIR", str(tmp_path))
    plan = plan_for(local_config({"one": "${CEBRA_TEST_DIR}/one.npz", "two": {"path": "~/two.nwb", "md5": "a" * 32}}))
    assert plan.session_file("one") == f"{tmp_path}/one.npz"
    assert plan.session_file("two") == os.path.expanduser("~/two.nwb") and plan.session_md5("two") == "a" * 32
    assert plan.session_nwb("one") is None
    # an .nwb file reads with the defaults (the options left unset, None, are not passed on)
    assert plan.session_nwb("two") == {k: v for k, v in plan.config["data"]["nwb"].items() if v is not None}
    assert plan.session_nwb("two") == {"bin_seconds": 0.025, "neural": "units"}
    assert plan.session_sources() == {"one": f"{tmp_path}/one.npz", "two": os.path.expanduser("~/two.nwb")}


def test_example_config_names_the_unset_variable(monkeypatch):
    """The README's local example without CEBRA_SHARED_DATA set."""
    monkeypatch.delenv("CEBRA_SHARED_DATA", raising=False)
    with pytest.raises(planning.ConfigError, match="uses the environment variable CEBRA_SHARED_DATA, which is not set"):
        plan_for(config_file(REPO / "config/local.example.yaml"))


def test_signals_name_sessions():
    assert plan_for(sample(signals={"gatsby": "continuous"})).config["signals"] == {"gatsby": "continuous"}
    with pytest.raises(planning.ConfigError, match=r"config: signals: \['nemo'\] are not among the sessions"):
        plan_for(sample(signals={"nemo": "continuous"}))
    with pytest.raises(WorkflowError, match="'spikes' is not one of"):
        plan_for(sample(signals={"gatsby": "spikes"}))


def test_sessions_must_fit_the_source():
    with pytest.raises(planning.ConfigError, match=r"\['nemo'\] are not available with data: source: simulate"):
        plan_for(sample(sessions=["buddy", "nemo"]))
    with pytest.raises(planning.ConfigError, match=r"\['nemo'\] are not available with data: source: published"):
        plan_for({"sessions": ["buddy", "nemo"]})


# ---------------------------------------------------------------------------------------- labels

OPENFIELD = {"continuous": ["x", "y"], "discrete": ["context"]}


def mice(**overrides) -> dict:
    """Simulated mice in an open field: labels x, y (continuous) and context (discrete); every key
    that names a label column names one of them."""
    config = {"sessions": ["m1", "m2", "m3"], "data": {"source": "simulate", "simulate": {"kind": "openfield"}},
              "labels": OPENFIELD, "signals": {"m1": "continuous", "m2": "continuous", "m3": "continuous"},
              "analysis": {"consistency_label": ["x", "y"]}, "figures": {"colour_by": "context"},
              "evaluation": {"score": {"column": "context", "metric": "accuracy"}}, "device": "cpu"}
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    return config


def test_declared_labels_and_the_keys_that_name_them():
    plan = plan_for(mice())
    assert plan.labels == LabelSpec(("x", "y"), ("context",)) and not plan.labels.is_rat_track
    assert plan.consistency_label == ("x", "y")
    assert plan.sessions == ["m1", "m2", "m3"]  # simulated mice take any name
    needs = plan.session_needs()
    assert needs["labels"] == OPENFIELD and needs["consistency_label"] == ["x", "y"]
    # one column, and the discrete one, are a consistency label too; continuous columns take r2
    assert plan_for(mice(analysis={"consistency_label": "context"})).consistency_label == ("context",)
    assert plan_for(mice(analysis={"consistency_label": "y"})).consistency_label == ("y",)
    assert plan_for(mice(evaluation={"score": {"column": "x", "metric": "r2"}})).config["evaluation"]["score"] == {
        "column": "x", "metric": "r2"}
    monkeys = {"sessions": ["m1", "m2"], "data": {"source": "simulate", "simulate": {"kind": "reaching"}},
               "labels": {"continuous": [], "discrete": ["target"]}, "analysis": {"consistency_label": "target"},
               "figures": {"colour_by": "target"}, "evaluation": {"score": {"column": "target", "metric": "balanced_accuracy"}}}
    assert plan_for(monkeys).labels == LabelSpec((), ("target",))


def test_session_needs_name_the_model_the_labels_and_the_consistency_label():
    """What cebra_core.steps.checks.SessionNeeds takes, every field from the config."""
    plan = plan_for(sample(cebra={"model_architecture": "offset36-model"}, evaluation={"test_fraction": 0.25}))
    assert plan.session_needs() == {
        "batch_size": 512, "time_offsets": 10, "consistency_bins": 100, "decoding_neighbors": 36,
        "alignment_top_k": 5, "train_fraction": 0.75, "protocol": "contiguous", "model_architecture": "offset36-model",
        "labels": {"continuous": ["position", "right", "left"], "discrete": []}, "consistency_label": ["position"],
    }
    from cebra_core.steps.checks import SessionNeeds

    needs = SessionNeeds(**plan.session_needs())  # the data step builds it from exactly these keys
    assert needs.receptive_field == 36 and needs.spec == LabelSpec()


@pytest.mark.parametrize("override, message", [
    # a key naming a column that is not declared
    ({"analysis": {"consistency_label": "speed"}},
     "config: analysis.consistency_label: 'speed' is not a declared label column (x, y, context; the labels key)"),
    ({"figures": {"colour_by": "position"}},
     "config: figures.colour_by: 'position' is not a declared label column (x, y, context; the labels key)"),
    ({"evaluation": {"score": {"column": "z", "metric": "r2"}}},
     "config: evaluation.score: 'z' is not a declared label column (x, y, context; the labels key)"),
    ({"evaluation": {"score": {"column": "x"}}},
     "config: evaluation.score: give metric (e.g. column: position, metric: median_abs_error)"),
    ({"evaluation": {"score": {}}}, "config: evaluation.score: give column and metric"),
    # a 2-D consistency label is two continuous columns
    ({"analysis": {"consistency_label": ["x", "context"]}},
     "config: analysis.consistency_label: a 2-D grid needs two continuous columns; 'context' is discrete"),
    ({"figures": {"colour_by": ["context", "y"]}},
     "config: figures.colour_by: a 2-D grid needs two continuous columns; 'context' is discrete"),
    # a metric of the other kind of column
    ({"evaluation": {"score": {"column": "context", "metric": "median_abs_error"}}},
     "config: evaluation.score: 'context' is a discrete label column; its metrics are accuracy, balanced_accuracy, "
     "not 'median_abs_error'"),
    ({"evaluation": {"score": {"column": "x", "metric": "accuracy"}}},
     "config: evaluation.score: 'x' is a continuous label column; its metrics are median_abs_error, r2, not 'accuracy'"),
    # the trial split cuts at the rat track's running direction
    ({"evaluation": {"protocol": "trials"}},
     "config: evaluation.protocol trials cuts trials at the rat track's running-direction flag (labels position, "
     "right, left), but the labels are ['x', 'y', 'context']; use evaluation.protocol contiguous"),
    # a label name the tables use for themselves
    ({"labels": {"continuous": ["x", "time"], "discrete": ["context"]}},
     "config: labels: 'time' cannot name a label column"),
    ({"labels": {"continuous": ["x", "n3"], "discrete": ["context"]}}, "config: labels: 'n3' cannot name a label column"),
    ({"labels": {"continuous": [], "discrete": []}},
     "config: labels: declare at least one column (labels.continuous or labels.discrete)"),
    ({"labels": {"continuous": ["x", "y"], "discrete": ["x"]}}, "config: labels: ['x'] declared more than once"),
])
def test_bad_label_keys_name_the_key(override, message):
    with pytest.raises(planning.ConfigError) as error:
        plan_for(mice(**override))
    assert message in str(error.value)


def test_label_keys_default_to_the_rat_track():
    """Declared labels without the keys that name a column: the first such key (position by
    default) is named."""
    config = mice()
    for key in ("analysis", "figures", "evaluation"):
        del config[key]
    with pytest.raises(planning.ConfigError, match=r"config: analysis\.consistency_label: 'position' is not a declared "
                                                   r"label column \(x, y, context; the labels key\)"):
        plan_for(config)


def test_conditional_delta_needs_delta():
    with pytest.raises(planning.ConfigError, match="config: cebra.conditional delta needs cebra.delta, the noise on "
                                                   r"the label \(its units\)"):
        plan_for(sample(cebra={"conditional": "delta"}))
    plan = plan_for(sample(cebra={"conditional": "delta", "delta": 0.05}))
    assert (plan.config["cebra"]["conditional"], plan.config["cebra"]["delta"]) == ("delta", 0.05)
    assert plan_for(sample(cebra={"conditional": "time"})).config["cebra"]["delta"] is None


def test_simulated_rats_take_only_the_rats_names():
    """data.simulate.kind rat (the default) knows the four rats; openfield and reaching any name."""
    with pytest.raises(planning.ConfigError, match=r"\['m1', 'm2', 'm3'\] are not available with data: source: simulate"):
        plan_for(mice(data={"source": "simulate", "simulate": {"kind": "rat"}},
                      labels={"continuous": ["position", "right", "left"], "discrete": []},
                      analysis={"consistency_label": "position"}, figures={"colour_by": "position"},
                      evaluation={"score": {"column": "position", "metric": "median_abs_error"}}))
    assert plan_for(mice(data={"source": "simulate", "simulate": {"kind": "reaching"}})).sessions == ["m1", "m2", "m3"]


@pytest.mark.parametrize("override, message", [
    ({"cebra": {"model_architecture": "offset2-model"}}, "'offset2-model' is not one of"),
    ({"cebra": {"conditional": "discrete"}}, "'discrete' is not one of"),
    ({"cebra": {"distance": "manhattan"}}, "'manhattan' is not one of"),
    ({"cebra": {"temperature_mode": "learned"}}, "'learned' is not one of"),
    ({"cebra": {"min_temperature": 0}}, "min_temperature"),
    ({"cebra": {"delta": -0.1}}, "delta"),
    ({"cebra": {"causal": "yes"}}, "'yes' is not of type 'boolean'"),
    ({"data": {"source": "simulate", "simulate": {"kind": "fish"}}}, "'fish' is not one of"),
    ({"evaluation": {"score": {"column": "position", "metric": "rmse"}}}, "'rmse' is not one of"),
    ({"labels": {"continuous": ["x"], "discrete": ["a", "b"]}}, "is too long"),
    ({"labels": {"continuous": ["x y"]}}, "does not match"),
    ({"analysis": {"consistency_label": ["x", "y", "z"]}}, "consistency_label"),
    ({"figures": {"colour_by": 3}}, "colour_by"),
])
def test_new_keys_checked_by_the_schema(override, message):
    with pytest.raises(WorkflowError) as error:
        plan_for(sample(**override))
    assert "Error validating config file" in str(error.value) and message in str(error.value)


# ---------------------------------------------------------------------------------------- sweeps


def sweep_plan(**sweep):
    """The example sweep (chosen by validation decoding of evaluation.score) over the sample config."""
    return plan_for(sample(sweep={**SWEEP_EXAMPLE["sweep"], "select_by": ["validation_decoding"], **sweep}))


def sweep_fits(plan) -> set[tuple[str, str, str]]:
    inputs = plan.sweep_inputs()
    return {(run["point"], str(run["seed"]), path.split("/", 5)[5].rsplit("/", 1)[0])
            for run in plan.sweep_runs() for path in inputs[run["inputs"]["embeddings"]]}


def test_sweep_one_fit_per_point_and_seed():
    """The example's 12 points x 2 seeds are 24 fits (the reference, temperature 1 and output
    dimension 3, is a grid point); equal points share one name; single fits a session each."""
    plan = sweep_plan()
    fits = sweep_fits(plan)
    assert len(plan.sweep_points) == 12 and len(fits) == 24
    assert {fit for _, _, fit in fits} == {"multi"} and {seed for _, seed, _ in fits} == {"0", "1"}
    assert sum(p["reference"] for p in plan.sweep_points.values()) == 1
    assert all(p["candidate"] for p in plan.sweep_points.values())
    assert plan.sweep_targets()[-1] == "results/sweep/chosen.yaml"

    # 0.5 twice and 1 == 1.0 are one point each; the reference (1.0 with the other keys as configured)
    # is in the grid: 2 points. Single-session fits of two rats, a seed of its own.
    plan = sweep_plan(grid={"temperature": [0.5, 1, 0.5, 1.0]}, kind="single", sessions=["buddy", "cicero"], seeds=[7])
    fits = sweep_fits(plan)
    assert len(plan.sweep_points) == 2 and len(fits) == 4
    assert {(seed, fit) for _, seed, fit in fits} == {("7", "single/buddy"), ("7", "single/cicero")}

    # a grid without the reference: it is fitted too (13 points), to compare the choice with
    plan = sweep_plan(grid={"temperature": [0.1, 0.5, 2.0, 4.0], "output_dimension": [4, 5, 8]})
    assert len(plan.sweep_points) == 13 and sum(p["candidate"] for p in plan.sweep_points.values()) == 12


def test_sweep_point_names_are_stable_and_hash_the_parameters():
    """A point's name hashes its full parameters and the nested split, in one key order whatever the
    config's: the same point in another config file is the same fit."""
    plan = sweep_plan()
    again = sweep_plan(grid=dict(reversed(list(SWEEP_EXAMPLE["sweep"]["grid"].items()))))
    assert set(plan.sweep_points) == set(again.sweep_points)
    reference = next(p for p, e in plan.sweep_points.items() if e["reference"])
    assert reference == plan.point_id(dict(sorted(plan.config["cebra"].items())))
    assert plan_for(sample(sweep={**SWEEP_EXAMPLE["sweep"], "validation_fraction": 0.1})).sweep_points.keys().isdisjoint(
        plan.sweep_points)  # another split: other fits
    # the trial split has its own validation trials: the contiguous keys change neither its cut nor its names
    trials = [plan_for(sample(evaluation={"protocol": "trials", "folds": folds},
                              sweep={**SWEEP_EXAMPLE["sweep"], "validation_fraction": fraction}))
              for folds, fraction in ((1, 0.2), (3, 0.1))]
    assert trials[0].sweep_points.keys() == trials[1].sweep_points.keys()
    assert trials[0].sweep_points.keys().isdisjoint(plan.sweep_points)
    assert trials[0].split_params(f"sweep/{next(iter(trials[0].sweep_points))}") == {"protocol": "trials", "fold": 0}
    split = plan.split_params(f"sweep/{reference}")
    assert split == {"protocol": "contiguous", "fold": 0, "folds": 1, "test_fraction": 0.2, "validation_fraction": 0.2}
    assert plan.fit_cebra(f"sweep/{reference}") == dict(sorted(plan.config["cebra"].items()))
    # the point's parameters are every cebra key, the new ones too: each changes the name
    cebra = plan.fit_cebra(f"sweep/{reference}")
    new_keys = {"model_architecture": "offset5-model", "temperature_mode": "auto", "min_temperature": 0.2,
                "conditional": "delta", "delta": 0.1, "causal": True, "distance": "euclidean"}
    assert set(new_keys) <= set(cebra) and plan.config["sweep"]["select_by"] == ["validation_decoding"]
    names = {plan.point_id(dict(sorted({**cebra, key: value}.items()))) for key, value in new_keys.items()}
    assert len(names) == len(new_keys) and reference not in names


def test_sweep_grid_over_the_new_cebra_keys():
    """A grid over the architecture and the causal window: 2 x 2 points, the reference (offset10,
    centred) one of them; a value the schema refuses is named with its point."""
    plan = sweep_plan(grid={"model_architecture": ["offset10-model", "offset5-model"], "causal": [False, True]})
    points = plan.sweep_points.values()
    assert len(points) == 4 and sum(p["reference"] for p in points) == 1
    assert sorted((p["cebra"]["model_architecture"], p["cebra"]["causal"]) for p in points) == [
        ("offset10-model", False), ("offset10-model", True), ("offset5-model", False), ("offset5-model", True)]
    reference = next(p for p in points if p["reference"])
    assert reference["parameters"] == {"model_architecture": "offset10-model", "causal": False}
    with pytest.raises(planning.ConfigError, match=r"sweep: grid: the point \{'model_architecture': 'offset2-model'\} "
                                                   "is not a valid cebra configuration"):
        sweep_plan(grid={"model_architecture": ["offset2-model"]})


def test_the_sweep_section_leaves_the_default_plan_alone():
    with_sweep, without = sweep_plan(), plan_for(SAMPLE)
    assert with_sweep.final_targets() == without.final_targets() and with_sweep.fits == without.fits
    with pytest.raises(planning.ConfigError, match="the config has no sweep: grid"):
        without.sweep_targets()


@pytest.mark.parametrize("sweep, message", [
    ({"grid": {"colour": [1, 2]}}, "sweep: grid: the point {'colour': 1} is not a valid cebra configuration"),
    ({"grid": {"output_dimension": [3, 1]}}, "sweep: grid: the point {'output_dimension': 1}"),
    ({"sessions": ["buddy", "nemo"]}, "sweep: sessions ['nemo'] are not among the config's sessions"),
    ({"sessions": ["buddy"]}, "sweep: kind multi needs at least 2 sessions"),
    ({"sessions": ["buddy"], "kind": "single", "select_by": ["validation_consistency"]},
     "select_by validation_consistency compares sessions: give at least 2"),
])
def test_bad_sweep_config_fails_with_a_clear_message(sweep, message):
    with pytest.raises(planning.ConfigError) as error:
        sweep_plan(**sweep)
    assert message in str(error.value)


def test_bad_sweep_key_rejected_by_schema():
    with pytest.raises(WorkflowError, match="final_loss"):
        sweep_plan(select_by=["final_loss"])
    with pytest.raises(WorkflowError, match="'validation_error_cm' is not one of"):  # the name before decoding any column
        sweep_plan(select_by=["validation_error_cm"])
    assert sweep_plan(select_by=["validation_decoding", "validation_consistency"]).config["sweep"]["select_by"] == [
        "validation_decoding", "validation_consistency"]


def test_wildcard_constraints_name_exactly_the_plans_names():
    import re

    plan = sweep_plan()
    constraints = plan.wildcard_constraints()
    fit = re.compile(f"(?:{constraints['fit']})$")
    assert all(fit.match(f) for f in plan.fits) and not fit.match("single/nemo")
    split = re.compile(f"(?:{constraints['split']})$")
    assert all(split.match(f"sweep/{p}") for p in plan.sweep_points) and split.match("all") and not split.match("fold1")


# ------------------------------------------------------------------------------- the core cap


def test_usable_cpus_without_sched_getaffinity(monkeypatch):
    """macOS has no os.sched_getaffinity: the CPU count stands in for it."""
    if hasattr(os, "sched_getaffinity"):
        assert cores.usable_cpus() == len(os.sched_getaffinity(0))
        monkeypatch.delattr(os, "sched_getaffinity")
    assert cores.usable_cpus() == os.cpu_count()


class FakeWorkflow:
    """The three internals the cap uses, as Snakemake 9.27 has them."""

    def __init__(self, cores, local=True):
        self.global_resources = {"_cores": types.SimpleNamespace(value=cores)}
        self.local_exec = local
        self.registered = {}

    def register_resource(self, name, value):
        self.registered[name] = value


def test_cap_local_cores(caplog):
    logger = logging.getLogger("test-cap")
    with caplog.at_level(logging.INFO, logger="test-cap"):
        workflow = FakeWorkflow(cores=8)
        cores.cap_local_cores(workflow, 2, logger)
        assert workflow.registered == {"_cores": 2} and "--cores 8 is more than the 2 CPUs" in caplog.text
        for workflow in (FakeWorkflow(cores=2), FakeWorkflow(cores=8, local=False), FakeWorkflow(cores=None)):
            cores.cap_local_cores(workflow, 2, logger)  # within the CPUs, on a cluster, or no --cores
            assert workflow.registered == {}


def test_cap_falls_back_to_a_warning_when_internals_change(caplog):
    logger = logging.getLogger("test-cap")
    changed = types.SimpleNamespace(local_exec=True)  # no global_resources
    with caplog.at_level(logging.WARNING, logger="test-cap"):
        cores.cap_local_cores(changed, 2, logger)
    assert "could not cap --cores at the 2 CPUs" in caplog.text and "AttributeError" in caplog.text
