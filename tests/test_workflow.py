"""The Snakemake workflow through its CLI: lint, dry runs, the config schema, the checks of every
output of a sample run (``check_sample_outputs``: the conda and SLURM tests run them on their runs),
a fit killed mid-way that resumes, sweeps, and a real-data smoke run on achilles + buddy from the
shared data folder (the whole workflow without conda)."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cebra_core.simulate import MIN_BINS, RAT_SHAPES
from conftest import REPO, effective_config, run_snakemake, shared_file, snakemake_command, write_config

SAMPLE = effective_config(REPO / "config/sample.yaml")
DEFAULTS = effective_config()
RATS = ["achilles", "buddy", "cicero", "gatsby"]


def fit_dir(work, fit: str, split: str = "all", seed: int = 0):
    """A fit's output folder (workflow/rules/common.smk, fit_file)."""
    return work / f"results/fits/{split}/seed{seed}/{fit}"


def fit_count(config: dict) -> int:
    """Fits a full run makes: per seed, 4 single + 1 multi on whole sessions, the same per held-out
    fold, plus a leave-one-out fit per fold when new_session is on."""
    rats, folds = len(config["sessions"]), config["evaluation"]["folds"]
    new = config["new_session"]["held_out"] not in (None, False)
    return len(config["seeds"]) * ((rats + 1) * (1 + folds) + (folds if new else 0))


def job_counts(stdout: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stdout, re.M)}


def test_lint(tmp_path):
    proc = run_snakemake(tmp_path, "--lint")
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_dry_run_default_config(tmp_path):
    proc = run_snakemake(tmp_path, "--dry-run")
    counts = job_counts(proc.stdout)
    assert counts["download_session"] == 4 and counts["import_session"] == 4
    # one seed: 4 single + 1 multi on whole sessions, the same on the train parts, + leave-one-out
    assert counts["fit"] == 11 == fit_count(DEFAULTS) and counts["align"] == 2
    assert counts["adapt_session"] == 1  # gatsby, the last session, on its train part
    assert counts["score_new_session"] == 1 and counts["plot_new_session"] == 1
    assert counts["decoding"] == 1 and counts["statistics"] == 1 and counts["plot_summary"] == 1
    assert "results/fits/fold0/seed0/multi_without/gatsby/model.pt" in proc.stdout
    assert "results/fits/all/seed0/multi/model.pt" in proc.stdout
    assert counts["plot_embeddings_3d"] == 4  # one interactive page per rat
    assert counts["check_sessions"] == 1
    assert counts["total"] == 37


def test_default_config_is_the_demo():
    """The demo's parameters, as the schema's defaults give them (config.yaml names only the rats)."""
    cebra = DEFAULTS["cebra"]
    assert DEFAULTS["sessions"] == RATS and DEFAULTS["data"]["source"] == "published"
    assert (cebra["max_iterations"], cebra["batch_size"], cebra["learning_rate"], cebra["temperature"]) == (15000, 512, 3e-4, 1.0)
    assert (cebra["output_dimension"], cebra["distance"], cebra["conditional"], cebra["time_offsets"]) == (3, "cosine", "time_delta", 10)
    assert cebra["model_architecture"] == "offset10-model" and cebra["num_hidden_units"] == 32
    assert DEFAULTS["device"] == "cuda_if_available" and DEFAULTS["gpu"] is False
    assert DEFAULTS["seeds"] == [0] and DEFAULTS["evaluation"] == {
        "protocol": "contiguous", "decoding_k_grid": [1, 4, 9, 16, 25], "folds": 1, "test_fraction": 0.2, "min_coverage": 0.8}


def test_config_yaml_holds_no_default():
    """One owner for every default: config/config.yaml sets only what has no default (the sessions)."""
    assert set(yaml.safe_load((REPO / "config/config.yaml").read_text())) == {"sessions"}


def schema_leaves(schema: dict, prefix: str = "") -> dict[str, object]:
    """{dotted key: default} of every key the schema gives a default (nested objects flattened)."""
    out = {}
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            out.update(schema_leaves(sub, name + "."))
        elif "default" in sub:
            out[name] = sub["default"]
    return out


def test_schema_defaults_match_the_library():
    """Where cebra_core has a default for a config key (for use outside the workflow), it is the
    schema's: the workflow always passes the schema's value, and the two cannot drift apart."""
    from cebra_core import alignment, decoding, download, metrics

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    leaves = schema_leaves(schema)
    assert leaves["analysis.decoding_neighbors"] == decoding.N_NEIGHBORS
    assert leaves["analysis.alignment_top_k"] == alignment.TOP_K
    assert leaves["analysis.consistency_bins"] == metrics.BINS
    assert leaves["data.download.base_url"] == download.DEFAULT_BASE_URL
    assert leaves["data.download.retries"] == download.RETRIES and leaves["data.download.timeout"] == download.TIMEOUT


def test_readme_key_table_matches_the_schema():
    """README "Configuration" lists every key of the schema with the schema's default, and no other."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    leaves = schema_leaves(schema)
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Configuration"):]
    table = table[: table.index("\n## ", 5)]
    rows = {}
    for m in re.finditer(r"^\| `([\w.]+)` \| (?:`([^`]*)`|\(required\))", table, re.M):
        rows[m[1]] = None if m[2] is None else yaml.safe_load(m[2])
    assert set(rows) == set(leaves) | {"sessions"}, set(rows) ^ (set(leaves) | {"sessions"})
    for key, default in leaves.items():
        assert rows[key] == default, (key, rows[key], default)


def test_longest_fits_start_first(tmp_path):
    """A fit's priority is the number of sessions it trains on: the multi-session fits (longest)
    are scheduled before the single-session ones, so on few cores none runs alone at the end."""
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=REPO / "config/sample.yaml")
    priority = {}
    for block in proc.stdout.split("\n\n"):
        if re.search(r"rule fit:", block):
            fit = re.search(r"wildcards: .*fit=([\w/+]+)", block)[1]
            priority.setdefault(fit, set()).add(int(re.search(r"priority: (\d+)", block)[1]))
    held_out = SAMPLE["new_session"]["held_out"]
    assert priority == {**{f"single/{rat}": {1} for rat in RATS}, "multi": {len(RATS)},
                        f"multi_without/{held_out}": {len(RATS) - 1}}


def test_gpu_config_declares_gpu_resource(tmp_path):
    config = write_config(tmp_path / "gpu.yaml", gpu=True)
    proc = run_snakemake(tmp_path / "work", "--dry-run", "--resources", "gpu=1", configfile=config)
    fits = [block for block in proc.stdout.split("\n\n") if re.search(r"rule (fit|adapt_session):", block)]
    assert len(fits) == fit_count(SAMPLE) + len(SAMPLE["seeds"]) and all("gpu=1" in block for block in fits)
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=REPO / "config/sample.yaml")
    assert "gpu=" not in proc.stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ({"cebra": {"max_iterationz": 10}}, "max_iterationz"),
        ({"data": {"source": "ftp"}}, "ftp"),
        ({"cebra": {"batch_size": 0}}, "batch_size"),
        ({"colour": "blue"}, "colour"),
        ({"new_session": {"iterations": 0}}, "iterations"),
        ({"new_session": {"held_out": True}}, "held_out"),
        # the figures plot three dimensions: 2-D is refused here, not after every fit (the schema's
        # description, which says so, is printed with the error)
        ({"cebra": {"output_dimension": 2}}, "Failed validating 'minimum' in schema['properties']['cebra']['properties']['output_dimension']"),
    ],
)
def test_bad_config_rejected_by_schema(tmp_path, override, message):
    config = write_config(tmp_path / "bad.yaml", **override)
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error validating config file" in out and message in out


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
def test_bad_local_config_named_at_parse_time(tmp_path, monkeypatch, local, message):
    """Before any job: an MD5 that is not one, and a path whose environment variable is unset
    (was a bare schema error and Snakemake's WildcardError)."""
    monkeypatch.delenv("CEBRA_TEST_UNSET", raising=False)
    config = write_config(tmp_path / "local.yaml", base=None, sessions=["achilles", "buddy"],
                          data={"source": "local", "local": local})
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out
    assert "WildcardError" not in out and "is not valid under any of the given schemas" not in out


def test_example_config_names_the_unset_variable(tmp_path, monkeypatch):
    """The README's local example without CEBRA_SHARED_DATA set."""
    monkeypatch.delenv("CEBRA_SHARED_DATA", raising=False)
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=REPO / "config/local.example.yaml", check=False)
    assert proc.returncode != 0
    assert "uses the environment variable CEBRA_SHARED_DATA, which is not set" in proc.stdout + proc.stderr


def test_sessions_must_fit_the_source(tmp_path):
    config = write_config(tmp_path / "bad.yaml", sessions=["buddy", "nemo"])
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=config, check=False)
    assert proc.returncode != 0 and "['nemo'] are not available with data: source: simulate" in proc.stdout + proc.stderr


def test_new_session_target_follows_the_config(tmp_path):
    """held_out names the left-out session (last by default), null turns the target off, an unknown one is an error."""
    for held_out, expected in (("last", "gatsby"), ("buddy", "buddy"), (None, None)):
        config = write_config(tmp_path / "new.yaml", new_session={"held_out": held_out})
        proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=config)
        counts = job_counts(proc.stdout)
        if expected is None:
            assert "adapt_session" not in counts and "multi_without" not in proc.stdout
            assert counts["fit"] == fit_count(effective_config(config))
        else:
            assert counts["adapt_session"] == len(SAMPLE["seeds"])
            assert f"results/figures/new_session_{expected}.png" in proc.stdout
            assert f"results/fits/fold0/seed0/multi_without/{expected}/model.pt" in proc.stdout
    config = write_config(tmp_path / "bad.yaml", new_session={"held_out": "nemo"})
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=config, check=False)
    assert proc.returncode != 0
    assert "new_session: held_out: 'nemo' is not one of the sessions" in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------- sample run


def sample_length(rat: str) -> int:
    return max(MIN_BINS, round(RAT_SHAPES[rat][0] * SAMPLE["data"]["simulate"]["scale"]))


def check_embedding_table(table: pd.DataFrame, rats: list[str], parts: set[str] = {"all"}):
    assert list(table.columns) == ["session", "time", "part", "z0", "z1", "z2", "position", "direction"]
    assert table["session"].unique().tolist() == rats
    for rat in rats:
        rows = table[table["session"] == rat]
        assert rows["time"].tolist() == list(range(sample_length(rat)))
        assert set(rows["part"]) == parts
        if parts == {"train", "test"}:  # the test part is the session's last test_fraction
            n_test = round(sample_length(rat) * SAMPLE["evaluation"]["test_fraction"])
            assert rows["part"].tolist() == ["train"] * (len(rows) - n_test) + ["test"] * n_test
    z = table[["z0", "z1", "z2"]].to_numpy()
    assert np.isfinite(z).all()
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-4)  # normalised model outputs
    assert set(table["direction"]) == {"left", "right"}
    assert table["position"].between(0, 1.6).all()


def assert_not_blank(png):
    """A real, non-blank PNG, and its vector twin (a PDF) beside it."""
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert (pixels.min(axis=2) < 0.9).mean() > 0.01  # more than 1% of the pixels are not white
    assert pixels.std() > 0.05
    pdf = png.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5_000


def check_heldout_fits_saw_no_test_rows(work, seed: int):
    """The held-out multi-session fits trained on exactly the train rows of each session: the labels
    the model stores for its training data equal the session's labels without its test part."""
    from cebra_core import CEBRA
    from cebra_core.data import read_session

    held_out = SAMPLE["new_session"]["held_out"]
    for fit, rats in (("multi", RATS), (f"multi_without/{held_out}", [r for r in RATS if r != held_out])):
        model = CEBRA.load(fit_dir(work, fit, "fold0", seed) / "model.pt")
        for rat, trained in zip(rats, model._extra_state["trained_labels"]):
            _, labels = read_session(work / f"results/data/sessions/{rat}.parquet")
            n_test = round(len(labels) * SAMPLE["evaluation"]["test_fraction"])
            np.testing.assert_array_equal(trained.numpy(), labels[: len(labels) - n_test])


def check_sample_outputs(work, *snakemake_args: str, env: dict | None = None):
    """Every output of a finished sample run in ``work`` (also used by the SLURM and conda tests);
    ``snakemake_args`` and ``env`` are those of the run (e.g. --use-conda), for the final dry run."""
    from cebra_core import CEBRA

    seeds = SAMPLE["seeds"]
    for rat in RATS:
        table = pd.read_parquet(work / f"results/data/sessions/{rat}.parquet")
        assert table.shape == (sample_length(rat), RAT_SHAPES[rat][1] + 3)
        assert np.isfinite(table.to_numpy()).all()

    for seed in seeds:
        for split, parts in (("all", {"all"}), ("fold0", {"train", "test"})):
            for rat in RATS:
                fit = fit_dir(work, f"single/{rat}", split, seed)
                check_embedding_table(pd.read_parquet(fit / "embedding.parquet"), [rat], parts)
                loss = pd.read_parquet(fit / "loss.parquet")
                assert list(loss.columns[:4]) == ["fit", "seed", "split", "iteration"]
                assert {"pos", "neg", "total"} <= set(loss.columns) and (loss["seed"] == seed).all()
                assert len(loss) == SAMPLE["cebra"]["max_iterations"] and np.isfinite(loss["total"]).all()
                assert loss["total"].iloc[-20:].mean() < loss["total"].iloc[:20].mean()  # it learned
                model = CEBRA.load(fit / "model.pt")
                assert model.num_sessions_ is None and model.max_iterations == SAMPLE["cebra"]["max_iterations"]
                assert model.seed == seed
                assert (work / f"results/benchmarks/fit/{split}/seed{seed}/single/{rat}.tsv").is_file()
            check_embedding_table(pd.read_parquet(fit_dir(work, "multi", split, seed) / "embedding.parquet"), RATS, parts)
            assert CEBRA.load(fit_dir(work, "multi", split, seed) / "model.pt").num_sessions_ == 4
        for kind in ("single", "multi"):
            check_embedding_table(pd.read_parquet(work / f"results/alignment/seed{seed}/{kind}.parquet"), RATS)
        check_heldout_fits_saw_no_test_rows(work, seed)
    # different seeds, different fits
    a, b = (pd.read_parquet(fit_dir(work, "multi", "all", seed) / "embedding.parquet") for seed in seeds[:2])
    assert not np.allclose(a[["z0", "z1", "z2"]], b[["z0", "z1", "z2"]])

    consistency = pd.read_parquet(work / "results/tables/consistency.parquet")
    assert list(consistency.columns) == ["kind", "seed", "split", "source", "target", "score"]
    for kind in ("single", "multi"):
        for seed in seeds:
            part = consistency[(consistency["kind"] == kind) & (consistency["seed"] == seed)]
            assert sorted(zip(part["source"], part["target"])) == sorted((a, b) for a in RATS for b in RATS if a != b)
            assert np.isfinite(part["score"]).all() and part["score"].le(1).all()
    means = consistency.groupby("kind")["score"].mean()
    print(f"\nsample consistency: single {means['single']:.3f}, multi {means['multi']:.3f}")
    assert means["multi"] > means["single"]

    decoding = pd.read_parquet(work / "results/tables/decoding.parquet")
    assert list(decoding.columns) == ["kind", "seed", "split", "encoder", "train", "test", "r2", "median_error_cm",
                                      "n_train", "n_test", "test_coverage", "flagged"]
    assert len(decoding) == 2 * len(seeds) * len(RATS) ** 2 and np.isfinite(decoding["median_error_cm"]).all()
    assert (decoding["split"] == "fold0").all() and set(decoding["seed"]) == set(seeds)
    within = decoding[decoding["train"] == decoding["test"]]
    assert within["n_test"].tolist() == [round(sample_length(r) * 0.2) for r in RATS] * 2 * len(seeds)
    assert (decoding["flagged"] == (decoding["test_coverage"] < SAMPLE["evaluation"]["min_coverage"])).all()

    statistics = pd.read_parquet(work / "results/tables/statistics.parquet")
    test = statistics[statistics["measure"] == "consistency_paired_test"]
    assert len(test) == 1 and test["n"].iloc[0] == 12 and 0 <= test["p_value"].iloc[0] <= 1
    runs = statistics[statistics["measure"] == "runs_consistency"]
    assert len(runs) == 2 * len(RATS) and runs["mean"].between(-1, 1).all() and (runs["n"] == len(seeds)).all()
    errors = statistics[statistics["measure"] == "decoding_error_cm"]
    assert len(errors) == 2 * len(RATS) and (errors["n"] == len(seeds)).all() and (errors["sd"] >= 0).all()
    print("\nsample statistics:\n" + statistics[statistics["measure"].isin(
        ["consistency", "consistency_paired_test", "runs_consistency"])].to_string(index=False))

    consistency, errors = check_new_session(work, SAMPLE["new_session"]["held_out"], RATS, seeds)
    # The adapted rat lands in the trained rats' space: far above its untrained encoder, close to
    # full multi-session training, and a decoder from the other rats transfers to its test part.
    assert consistency["adapted"] > consistency["random"] + 0.3
    assert consistency["adapted"] > consistency["multi"] - 0.1
    assert errors["adapted"] < errors["random"] / 2

    for figure in ("embeddings", "consistency", "loss", "summary", "new_session_gatsby"):
        assert_not_blank(work / f"results/figures/{figure}.png")
    for rat in RATS:
        page = work / f"results/figures/embeddings_3d/{rat}.html"
        html = page.read_text()
        assert f'<div id="embeddings-3d-{rat}"' in html and f"Single-{rat}" in html and f"Multi-{rat}" in html
        assert '<script src="http' not in html and 3_000_000 < len(html) < 10_000_000
    report = (work / "report.html").read_text(errors="replace")
    assert len(report) > 100_000 and "Consistency of the embeddings across rats" in report
    assert "Interactive version of the embedding figure" in report  # the pages are in the report
    assert "A new, unseen rat" in report and "new_session_gatsby.csv" in report and "statistics.csv" in report

    logs = sorted(p.relative_to(work / "logs").as_posix() for p in (work / "logs").rglob("*.log"))
    jobs = job_counts(run_snakemake(work, "--dry-run", "--forceall", configfile=REPO / "config/sample.yaml").stdout)
    assert len(logs) == jobs["total"] - 1  # every job but `all` wrote its log
    assert not list((work / "results").rglob("*.part")) and not list((work / "results/checkpoints").rglob("*.pt"))
    proc = run_snakemake(work, *snakemake_args, "--dry-run", configfile=REPO / "config/sample.yaml", env=env)
    assert "Nothing to be done" in proc.stdout + proc.stderr


NEW_SESSION_KINDS = ["random", "single", "multi", "adapted"]


def check_new_session(work, held_out: str, rats: list[str], seeds: list[int]) -> tuple[dict[str, float], dict[str, float]]:
    """The new-session outputs: the leave-one-out fit, the adapted model and embeddings, the table
    (complete, finite); returns the mean consistency and the median decoding error (cm) per kind,
    averaged over seeds."""
    from cebra_core import CEBRA

    trained = [r for r in rats if r != held_out]
    for seed in seeds:
        model = CEBRA.load(fit_dir(work, f"multi_without/{held_out}", "fold0", seed) / "model.pt")
        assert model.num_sessions_ == len(trained)
        folder = work / f"results/new_session/fold0/seed{seed}/{held_out}"
        adapted = CEBRA.load(folder / "model.pt")
        assert adapted.num_sessions_ == len(rats) and adapted.n_features_in_[:-1] == model.n_features_in_
        embedding = pd.read_parquet(folder / "embedding.parquet")
        assert embedding["session"].unique().tolist() == rats and np.isfinite(embedding[["z0", "z1", "z2"]]).all().all()
        assert set(embedding["part"]) == {"train", "test"}
        trained_part = embedding[embedding["session"].isin(trained)].reset_index(drop=True)
        pd.testing.assert_frame_equal(  # the trained rats keep their own encoders' embeddings
            trained_part, pd.read_parquet(fit_dir(work, f"multi_without/{held_out}", "fold0", seed) / "embedding.parquet"),
            atol=1e-6)
        assert (work / f"results/benchmarks/adapt_session/fold0/seed{seed}/{held_out}.tsv").is_file()

    table = pd.read_parquet(work / f"results/tables/new_session_{held_out}.parquet")
    assert list(table.columns) == ["seed", "split", "kind", "measure", "source", "target", "value", "test_coverage", "flagged"]
    assert set(table["seed"]) == set(seeds) and (table["split"] == "fold0").all()
    assert table["kind"].unique().tolist() == NEW_SESSION_KINDS and np.isfinite(table["value"]).all()
    pooled = "+".join(trained)
    for (seed, kind), part in table.groupby(["seed", "kind"]):
        pairs = part[part["measure"] == "consistency"]
        assert sorted(pairs["source"]) == sorted(trained) and (pairs["target"] == held_out).all()
        assert pairs["value"].le(1).all()
        mean = part[part["measure"] == "consistency_mean"]
        assert mean[["source", "target"]].values.tolist() == [[pooled, held_out]]
        assert mean["value"].iloc[0] == pytest.approx(pairs["value"].mean())
        decoding = part[part["measure"].isin(["r2", "median_error_cm"])]
        assert decoding["measure"].tolist() == ["r2", "median_error_cm"]
        assert set(decoding["source"]) == {held_out if kind == "single" else pooled}
        assert (decoding["target"] == held_out).all()
    assert (work / f"results/tables/new_session_{held_out}.csv").read_text().startswith("seed,split,kind,measure")

    value = table.groupby(["kind", "measure"])["value"].mean()
    numbers = {kind: value[(kind, "consistency_mean")] for kind in NEW_SESSION_KINDS}
    errors = {kind: value[(kind, "median_error_cm")] for kind in NEW_SESSION_KINDS}
    print(f"\nnew session {held_out}: consistency " + ", ".join(f"{k} {v:.3f}" for k, v in numbers.items())
          + "; median decoding error (cm) " + ", ".join(f"{k} {v:.1f}" for k, v in errors.items()))
    return numbers, errors


@pytest.mark.slow
def test_killed_fit_resumes_and_matches(sample_run, tmp_path):
    """SIGKILL the whole snakemake process group once a checkpoint exists; the rerun resumes and
    gives the same numbers as the uninterrupted sample run (conftest.py: made with --use-conda, so
    this also shows that the conda route and the plain route compute the same fit)."""
    target = "results/fits/all/seed0/single/cicero/embedding.parquet"
    config = REPO / "config/sample.yaml"
    proc = subprocess.Popen(
        snakemake_command(tmp_path, target, configfile=config), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    checkpoints = tmp_path / "results/checkpoints/all/seed0/single"
    try:
        while not list(checkpoints.glob("cicero.pt")):
            assert proc.poll() is None, "snakemake ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / target).exists(), "the fit finished before it could be killed"

    run_snakemake(tmp_path, "--unlock", configfile=config)
    run_snakemake(tmp_path, target, "--rerun-incomplete", configfile=config)
    assert "resuming from checkpoint" in (tmp_path / "logs/fits/all/seed0/single/cicero.log").read_text()
    for name in ("embedding.parquet", "loss.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(fit_dir(tmp_path, "single/cicero") / name),
            pd.read_parquet(fit_dir(sample_run[0], "single/cicero") / name),
        )
    assert not list(checkpoints.glob("*.pt"))


# ------------------------------------------------------------------------------------ real data


@pytest.mark.slow
def test_real_data_smoke(tmp_path):
    """achilles + buddy from the shared folder through the local-sessions example config."""
    shared_file("buddy.jl"), shared_file("achilles_reconstructed.npz")
    run_snakemake(tmp_path / "work", configfile=REPO / "config/local.example.yaml")
    work = tmp_path / "work"
    for rat, shape in (("achilles", (10178, 120)), ("buddy", (6577, 48))):
        table = pd.read_parquet(work / f"results/data/sessions/{rat}.parquet")
        assert table.shape == (shape[0], shape[1] + 3)
    consistency = pd.read_parquet(work / "results/tables/consistency.parquet")
    assert len(consistency) == 4
    means = consistency.groupby("kind")["score"].mean()
    print(f"\nreal-data consistency: single {means['single']:.3f}, multi {means['multi']:.3f}")
    assert means["multi"] > means["single"]
    # buddy adapted into a multi-session fit on achilles alone; at these 300 iterations the numbers
    # are printed, not asserted (README, "A new session")
    consistency, errors = check_new_session(work, "buddy", ["achilles", "buddy"], [0])
    assert errors["adapted"] < errors["random"]
    for figure in ("embeddings", "consistency", "loss", "new_session_buddy"):
        assert_not_blank(work / f"results/figures/{figure}.png")


def test_sessions_checked_before_any_fit(tmp_path):
    """A 12-row session (decoding failed after every fit) and a batch larger than a session
    (effectively hung): the check job names both, one line each."""
    rng = np.random.default_rng(0)
    paths = {}
    for name, length in (("long", 600), ("tiny", 12)):
        labels = np.column_stack([np.linspace(0, 1.6, length), np.ones(length), np.zeros(length)])
        np.savez(tmp_path / f"{name}.npz", spikes=rng.poisson(0.5, (length, 9)), position=labels)
        paths[name] = str(tmp_path / f"{name}.npz")
    config = write_config(tmp_path / "local.yaml", base="local.example.yaml", sessions=["long", "tiny"],
                          data={"local": paths}, cebra={"batch_size": 512})
    proc = run_snakemake(tmp_path / "work", "results/data/checks.tsv", configfile=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (f"session 'tiny' ({paths['tiny']}): cebra.batch_size=512 is more than the session's 12 time bins" in out)
    assert (f"session 'tiny' ({paths['tiny']}): the position decoder is fitted on the first 9 of its 12 time bins "
            "(evaluation.test_fraction=0.2)" in out)
    assert "session 'long'" not in out and not (tmp_path / "work/results/data/checks.tsv").exists()


def test_fits_wait_for_the_session_checks(tmp_path):
    """Every fit depends on results/data/checks.tsv (adapt_session through its fit), through
    ancient(): a changed analysis key reruns the check, never a fit."""
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=REPO / "config/sample.yaml")
    fits = [block for block in proc.stdout.split("\n\n") if re.search(r"rule fit:", block)]
    assert len(fits) == fit_count(SAMPLE) and all("results/data/checks.tsv" in block for block in fits)
    quick = write_config(tmp_path / "quick.yaml", cebra={"max_iterations": 5, "checkpoint_every": 5})
    run_snakemake(tmp_path / "work", "results/fits/all/seed0/single/buddy/model.pt", configfile=quick)
    changed = write_config(tmp_path / "changed.yaml", cebra={"max_iterations": 5, "checkpoint_every": 5},
                           analysis={"decoding_neighbors": 20})
    proc = run_snakemake(tmp_path / "work", "--dry-run", "results/fits/all/seed0/single/buddy/model.pt", configfile=changed)
    counts = job_counts(proc.stdout)  # the check is rerun for the changed key, the fit is not
    assert counts == {"check_sessions": 1, "total": 1}, proc.stdout


def test_bad_local_session_fails_with_a_clear_message(tmp_path):
    rng = np.random.default_rng(0)
    good = {"spikes": rng.poisson(0.2, (300, 9)), "position": np.column_stack(
        [np.linspace(0, 1.6, 300), np.ones(300), np.zeros(300)])}
    np.savez(tmp_path / "good.npz", **good)
    np.savez(tmp_path / "bad.npz", spikes=good["spikes"])
    config = write_config(tmp_path / "local.yaml", base="local.example.yaml", sessions=["one", "two"],
                          data={"local": {"one": str(tmp_path / "good.npz"), "two": str(tmp_path / "bad.npz")}})
    proc = run_snakemake(tmp_path / "work", "results/data/sessions/two.parquet", configfile=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"session 'two' ({tmp_path / 'bad.npz'}): missing key(s) position or labels" in out
    assert not (tmp_path / "work/results/data/sessions/two.parquet").exists()


@pytest.mark.parametrize("source", ["published", "simulate", "local"])
def test_report_credits_the_published_data_only_when_used(source):
    """The report's text (workflow/report/workflow.rst) as Snakemake renders it with the config."""
    import jinja2

    config = dict(DEFAULTS, data={"source": source})
    text = jinja2.Template((REPO / "workflow/report/workflow.rst").read_text()).render(
        snakemake=type("Snakemake", (), {"config": config}))
    assert ("Grosmark & Buzsáki (2016)" in text) == (source == "published")
    assert ("simulated place cells" in text) == (source == "simulate")
    assert ("the\nuser's own session files" in text) == (source == "local")
# ---------------------------------------------------------------------------------------- sweeps

SWEEP_EXAMPLE = REPO / "config/sweep.example.yaml"


def sweep_config(tmp_path, **sweep) -> Path:
    """The sample config with the example sweep merged in, and ``sweep`` over that."""
    example = yaml.safe_load(SWEEP_EXAMPLE.read_text())["sweep"]
    return write_config(tmp_path / "sweep.yaml", sweep={**example, **sweep})


def sweep_fits(stdout: str) -> set[str]:
    return set(re.findall(r"results/fits/(sweep/\w+/seed\d+/[\w/+]+)/model\.pt", stdout))


def test_sweep_dry_run_one_fit_job_per_point_and_seed(tmp_path):
    """The example's 12 points x 2 seeds are 24 fit jobs (the reference, temperature 1 and
    output dimension 3, is a grid point); equal points share one job; single fits a session each."""
    proc = run_snakemake(tmp_path / "work", "--dry-run", "sweep", configfile=sweep_config(tmp_path))
    counts = job_counts(proc.stdout)
    assert counts["fit"] == 12 * 2 and counts["sweep_table"] == 1 and counts["plot_sweep"] == 1
    fits = sweep_fits(proc.stdout)
    assert len(fits) == 24 and {f.split("/", 3)[3] for f in fits} == {"multi"}
    assert {f.split("/")[2] for f in fits} == {"seed0", "seed1"}
    assert "results/sweep/chosen.yaml" in proc.stdout and "adapt_session" not in counts

    # 0.5 twice and 1 == 1.0 are one point each; the reference (1.0 with the other keys as
    # configured) is in the grid: 2 points. Single-session fits of two rats, a seed of its own.
    config = sweep_config(tmp_path, grid={"temperature": [0.5, 1, 0.5, 1.0]}, kind="single",
                          sessions=["buddy", "cicero"], seeds=[7])
    proc = run_snakemake(tmp_path / "work", "--dry-run", "sweep", configfile=config)
    fits = sweep_fits(proc.stdout)
    assert job_counts(proc.stdout)["fit"] == len(fits) == 2 * 2
    assert {tuple(f.split("/")[2:]) for f in fits} == {("seed7", "single", "buddy"), ("seed7", "single", "cicero")}

    # a grid without the reference: it is fitted too (13 points), to compare the choice with
    config = sweep_config(tmp_path, grid={"temperature": [0.1, 0.5, 2.0, 4.0], "output_dimension": [4, 5, 8]})
    assert job_counts(run_snakemake(tmp_path / "work", "--dry-run", "sweep", configfile=config).stdout)["fit"] == 13 * 2


def test_the_sweep_section_leaves_the_default_dag_alone(tmp_path):
    without = job_counts(run_snakemake(tmp_path / "a", "--dry-run", configfile=REPO / "config/sample.yaml").stdout)
    with_sweep = job_counts(run_snakemake(tmp_path / "b", "--dry-run", configfile=sweep_config(tmp_path)).stdout)
    assert with_sweep == without and without["fit"] == fit_count(SAMPLE)


@pytest.mark.parametrize("sweep, message", [
    ({"grid": {}}, "snakemake sweep: the config has no sweep: grid"),
    ({"grid": {"colour": [1, 2]}}, "sweep: grid: the point {'colour': 1} is not a valid cebra configuration"),
    ({"grid": {"output_dimension": [3, 1]}}, "sweep: grid: the point {'output_dimension': 1}"),
    ({"sessions": ["buddy", "nemo"]}, "sweep: sessions ['nemo'] are not among the config's sessions"),
    ({"sessions": ["buddy"]}, "sweep: kind multi needs at least 2 sessions"),
    ({"select_by": ["final_loss"]}, "final_loss"),
])
def test_bad_sweep_config_fails_with_a_clear_message(tmp_path, sweep, message):
    proc = run_snakemake(tmp_path / "work", "--dry-run", "sweep", configfile=sweep_config(tmp_path, **sweep), check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


CHEAP_SWEEP_ITERATIONS = 30


def cheap_sweep_configs(tmp_path) -> tuple[Path, ...]:
    """The example sweep (12 grid points) on the sample rats, one seed and 30 iterations to stay cheap."""
    config = write_config(tmp_path / "cheap.yaml", base=None, seeds=[0], cebra={"max_iterations": CHEAP_SWEEP_ITERATIONS})
    return REPO / "config/sample.yaml", SWEEP_EXAMPLE, config


def check_sweep_outputs(work: Path, files: tuple[Path, ...]):
    """Every output of the cheap example sweep in ``work`` (also used by the SLURM test): the table,
    the figure, the report (``sweep.html``), the chosen config; chosen on validation, tested apart."""
    table = pd.read_parquet(work / "results/tables/sweep.parquet")
    assert len(table) == 12 and table["candidate"].all() and table["reference"].sum() == 1
    assert sorted(zip(table["temperature"], table["output_dimension"])) == [
        (t, d) for t in (0.1, 0.5, 1.0, 2.0) for d in (3, 5, 8)]
    reference = table[table["reference"]].iloc[0]
    assert (reference["temperature"], reference["output_dimension"]) == (1.0, 3)
    assert np.isfinite(table[["final_loss", "validation_error_cm", "validation_consistency", "fit_seconds"]]).all().all()
    chosen = table[table["chosen"]]
    assert len(chosen) == 1 and chosen["point"].iloc[0] == table.loc[table["validation_error_cm"].idxmin(), "point"]
    scored = table["chosen"] | table["reference"]
    assert table.loc[scored, "test_error_cm"].notna().all() and table.loc[~scored, "test_error_cm"].isna().all()
    for point in table["point"]:
        loss = pd.read_parquet(work / f"results/fits/sweep/{point}/seed0/multi/loss.parquet")
        assert len(loss) == CHEAP_SWEEP_ITERATIONS and loss["split"].iloc[0] == f"sweep/{point}"
        assert loss["total"].iloc[-1] == pytest.approx(table.loc[table["point"] == point, "final_loss"].iloc[0])
        embedding = pd.read_parquet(work / f"results/fits/sweep/{point}/seed0/multi/embedding.parquet")
        buddy = embedding[embedding["session"] == "buddy"]["part"].tolist()  # 329 rows: 66 test, 53 validation
        assert buddy == ["train"] * 210 + ["validation"] * 53 + ["test"] * 66
    assert_not_blank(work / "results/figures/sweep.png")
    report = (work / "sweep.html").read_text(errors="replace")
    assert "Parameter sweep" in report and "sweep.csv" in report

    text = (work / "results/sweep/chosen.yaml").read_text()
    assert text.startswith("# The parameters `snakemake sweep` chose")
    merged = effective_config(*files, work / "results/sweep/chosen.yaml")  # the schema accepts it
    assert merged["cebra"]["temperature"] == chosen["temperature"].iloc[0]
    assert merged["cebra"]["output_dimension"] == chosen["output_dimension"].iloc[0]


@pytest.mark.slow
def test_sweep_runs_and_chooses_on_validation(tmp_path):
    """The cheap example sweep, run locally: every output checked; fits are not computed twice."""
    files = cheap_sweep_configs(tmp_path)
    work = tmp_path / "work"
    run_snakemake(work, "sweep", "--configfile", *map(str, files))
    run_snakemake(work, "sweep", "--report", "sweep.html", "--configfile", *map(str, files))
    check_sweep_outputs(work, files)

    # nothing is fitted twice: with the chosen parameters as the config's (the reference is then
    # the chosen point), or a smaller grid (two temperatures), every sweep fit already exists
    for extra in (work / "results/sweep/chosen.yaml",
                  write_config(tmp_path / "smaller.yaml", base=None, sweep={"grid": {"temperature": [0.5, 2.0]}})):
        proc = run_snakemake(work, "--dry-run", "sweep", "--configfile", *map(str, files), str(extra))
        assert "fit" not in job_counts(proc.stdout), proc.stdout[-3000:]
