"""The Snakemake workflow through its CLI: lint, dry runs, the config schema, the whole sample run
end to end (every output checked, report included), a fit killed mid-way that resumes, and a
real-data smoke run on achilles + buddy from the shared data folder."""

import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from cebra_core.simulate import RAT_SHAPES
from conftest import REPO, run_snakemake, shared_file, snakemake_command, write_config

SAMPLE = yaml.safe_load((REPO / "config/sample.yaml").read_text())
DEFAULTS = yaml.safe_load((REPO / "config/config.yaml").read_text())
RATS = ["achilles", "buddy", "cicero", "gatsby"]


def job_counts(stdout: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stdout, re.M)}


def test_lint(tmp_path):
    proc = run_snakemake(tmp_path, "--lint")
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_dry_run_default_config(tmp_path):
    proc = run_snakemake(tmp_path, "--dry-run")
    counts = job_counts(proc.stdout)
    assert counts["download_session"] == 4 and counts["import_session"] == 4
    assert counts["fit_single"] == 4 and counts["fit_multi"] == 1 and counts["align"] == 2
    assert counts["fit_multi_without"] == 1 and counts["adapt_session"] == 1  # gatsby, the last session
    assert counts["score_new_session"] == 1 and counts["plot_new_session"] == 1
    assert "results/fits/multi_without/gatsby/model.pt" in proc.stdout
    assert counts["total"] == 25


def test_default_config_is_the_demo():
    cebra = DEFAULTS["cebra"]
    assert DEFAULTS["sessions"] == RATS and DEFAULTS["data"]["source"] == "published"
    assert (cebra["max_iterations"], cebra["batch_size"], cebra["learning_rate"], cebra["temperature"]) == (15000, 512, 3e-4, 1.0)
    assert (cebra["output_dimension"], cebra["distance"], cebra["conditional"], cebra["time_offsets"]) == (3, "cosine", "time_delta", 10)
    assert cebra["model_architecture"] == "offset10-model" and cebra["num_hidden_units"] == 32
    assert DEFAULTS["device"] == "cuda_if_available" and DEFAULTS["gpu"] is False


def test_gpu_config_declares_gpu_resource(tmp_path):
    config = write_config(tmp_path / "gpu.yaml", gpu=True)
    proc = run_snakemake(tmp_path / "work", "--dry-run", "--resources", "gpu=1", configfile=config)
    fits = [block for block in proc.stdout.split("\n\n")
            if re.search(r"rule (fit_single|fit_multi|fit_multi_without|adapt_session):", block)]
    assert len(fits) == 7 and all("gpu=1" in block for block in fits)  # every job that trains
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
    ],
)
def test_bad_config_rejected_by_schema(tmp_path, override, message):
    config = write_config(tmp_path / "bad.yaml", **override)
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error validating config file" in out and message in out


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
            assert "adapt_session" not in counts and "fit_multi_without" not in counts
            assert counts["total"] == 17  # the sample run without its 4 new-session jobs
        else:
            assert counts["adapt_session"] == 1 and f"results/figures/new_session_{expected}.png" in proc.stdout
            assert f"results/fits/multi_without/{expected}/model.pt" in proc.stdout
    config = write_config(tmp_path / "bad.yaml", new_session={"held_out": "nemo"})
    proc = run_snakemake(tmp_path / "work", "--dry-run", configfile=config, check=False)
    assert proc.returncode != 0
    assert "new_session: held_out: 'nemo' is not one of the sessions" in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------- sample run


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The README's sample-data command, run once, then the report."""
    work = tmp_path_factory.mktemp("sample")
    start = time.monotonic()
    run_snakemake(work, configfile=REPO / "config/sample.yaml")
    wall = time.monotonic() - start
    run_snakemake(work, "--report", "report.html", configfile=REPO / "config/sample.yaml")
    print(f"\nsample workflow wall time: {wall:.1f} s")
    return work


def sample_length(rat: str) -> int:
    return max(100, round(RAT_SHAPES[rat][0] * SAMPLE["data"]["simulate"]["scale"]))


def check_embedding_table(table: pd.DataFrame, rats: list[str]):
    assert list(table.columns) == ["session", "time", "z0", "z1", "z2", "position", "direction"]
    assert table["session"].unique().tolist() == rats
    for rat in rats:
        part = table[table["session"] == rat]
        assert part["time"].tolist() == list(range(sample_length(rat)))
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


@pytest.mark.slow
def test_sample_workflow_outputs(sample_run):
    check_sample_outputs(sample_run)


def check_sample_outputs(work, *snakemake_args: str, env: dict | None = None):
    """Every output of a finished sample run in ``work`` (also used by the SLURM and conda tests);
    ``snakemake_args`` and ``env`` are those of the run (e.g. --use-conda), for the final dry run."""
    from cebra_core import CEBRA

    for rat in RATS:
        table = pd.read_parquet(work / f"results/data/sessions/{rat}.parquet")
        assert table.shape == (sample_length(rat), RAT_SHAPES[rat][1] + 3)
        assert np.isfinite(table.to_numpy()).all()

        fit = work / f"results/fits/single/{rat}"
        check_embedding_table(pd.read_parquet(fit / "embedding.parquet"), [rat])
        loss = pd.read_parquet(fit / "loss.parquet")
        assert list(loss.columns[:2]) == ["fit", "iteration"] and {"pos", "neg", "total"} <= set(loss.columns)
        assert len(loss) == SAMPLE["cebra"]["max_iterations"] and np.isfinite(loss["total"]).all()
        assert loss["total"].iloc[-20:].mean() < loss["total"].iloc[:20].mean()  # it learned
        model = CEBRA.load(fit / "model.pt")
        assert model.num_sessions_ is None and model.max_iterations == SAMPLE["cebra"]["max_iterations"]
        assert (work / f"results/benchmarks/fit_single/{rat}.tsv").is_file()

    check_embedding_table(pd.read_parquet(work / "results/fits/multi/embedding.parquet"), RATS)
    assert CEBRA.load(work / "results/fits/multi/model.pt").num_sessions_ == 4
    for kind in ("single", "multi"):
        check_embedding_table(pd.read_parquet(work / f"results/alignment/{kind}.parquet"), RATS)

    consistency = pd.read_parquet(work / "results/tables/consistency.parquet")
    assert list(consistency.columns) == ["kind", "source", "target", "score"]
    for kind in ("single", "multi"):
        part = consistency[consistency["kind"] == kind]
        assert sorted(zip(part["source"], part["target"])) == sorted((a, b) for a in RATS for b in RATS if a != b)
        assert np.isfinite(part["score"]).all() and part["score"].le(1).all()
    means = consistency.groupby("kind")["score"].mean()
    print(f"\nsample consistency: single {means['single']:.3f}, multi {means['multi']:.3f}")
    assert means["multi"] > means["single"]

    decoding = pd.read_parquet(work / "results/tables/decoding.parquet")
    assert len(decoding) == 2 * len(RATS) ** 2 and np.isfinite(decoding["median_error_cm"]).all()

    consistency, errors = check_new_session(work, SAMPLE["new_session"]["held_out"], RATS)
    # The adapted rat lands in the trained rats' space: far above its untrained encoder, close to
    # full multi-session training (which saw it), and a decoder from the other rats transfers to it.
    assert consistency["adapted"] > consistency["random"] + 0.3
    assert consistency["adapted"] > consistency["multi"] - 0.1
    assert errors["adapted"] < errors["random"] / 2

    for figure in ("embeddings", "consistency", "loss", "new_session_gatsby"):
        assert_not_blank(work / f"results/figures/{figure}.png")
    report = (work / "report.html").read_text(errors="replace")
    assert len(report) > 100_000 and "Consistency of the embeddings across rats" in report
    assert "A new, unseen rat" in report and "new_session_gatsby.csv" in report

    logs = sorted(p.relative_to(work / "logs").as_posix() for p in (work / "logs").rglob("*.log"))
    assert len(logs) == 4 + 4 + 1 + 2 + 1 + 1 + 3 + 4  # every job wrote its log
    assert not list((work / "results").rglob("*.part")) and not list((work / "results/checkpoints").rglob("*.pt"))
    proc = run_snakemake(work, *snakemake_args, "--dry-run", configfile=REPO / "config/sample.yaml", env=env)
    assert "Nothing to be done" in proc.stdout + proc.stderr


NEW_SESSION_KINDS = ["random", "single", "multi", "adapted"]


def check_new_session(work, held_out: str, rats: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """The new-session outputs: the leave-one-out fit, the adapted model and embeddings, the table
    (complete, finite); returns the mean consistency and the median decoding error (cm) per kind."""
    from cebra_core import CEBRA

    trained = [r for r in rats if r != held_out]
    model = CEBRA.load(work / f"results/fits/multi_without/{held_out}/model.pt")
    assert model.num_sessions_ == len(trained)
    adapted = CEBRA.load(work / f"results/new_session/{held_out}/model.pt")
    assert adapted.num_sessions_ == len(rats) and adapted.n_features_in_[:-1] == model.n_features_in_
    embedding = pd.read_parquet(work / f"results/new_session/{held_out}/embedding.parquet")
    assert embedding["session"].unique().tolist() == rats and np.isfinite(embedding[["z0", "z1", "z2"]]).all().all()
    trained_part = embedding[embedding["session"].isin(trained)].reset_index(drop=True)
    pd.testing.assert_frame_equal(  # the trained rats keep their own encoders' embeddings
        trained_part, pd.read_parquet(work / f"results/fits/multi_without/{held_out}/embedding.parquet"), atol=1e-6)
    assert (work / f"results/benchmarks/adapt_session/{held_out}.tsv").is_file()

    table = pd.read_parquet(work / f"results/tables/new_session_{held_out}.parquet")
    assert list(table.columns) == ["kind", "measure", "source", "target", "value"]
    assert table["kind"].unique().tolist() == NEW_SESSION_KINDS and np.isfinite(table["value"]).all()
    pooled = "+".join(trained)
    for kind in NEW_SESSION_KINDS:
        part = table[table["kind"] == kind]
        pairs = part[part["measure"] == "consistency"]
        assert sorted(zip(pairs["source"], pairs["target"])) == sorted(
            [(r, held_out) for r in trained] + [(held_out, r) for r in trained])
        assert pairs["value"].le(1).all()
        mean = part[part["measure"] == "consistency_mean"]
        assert mean[["source", "target"]].values.tolist() == [[pooled, held_out]]
        assert mean["value"].iloc[0] == pytest.approx(pairs["value"].mean())
        decoding = part[part["measure"].isin(["r2", "median_error_cm"])]
        assert decoding["measure"].tolist() == ["r2", "median_error_cm"]
        assert set(decoding["source"]) == {held_out if kind == "single" else pooled}
        assert (decoding["target"] == held_out).all()
    assert (work / f"results/tables/new_session_{held_out}.csv").read_text().startswith("kind,measure,source,target,value")

    value = table.set_index(["kind", "measure"])["value"]
    numbers = {kind: value[(kind, "consistency_mean")] for kind in NEW_SESSION_KINDS}
    errors = {kind: value[(kind, "median_error_cm")] for kind in NEW_SESSION_KINDS}
    print(f"\nnew session {held_out}: consistency " + ", ".join(f"{k} {v:.3f}" for k, v in numbers.items())
          + "; median decoding error (cm) " + ", ".join(f"{k} {v:.1f}" for k, v in errors.items()))
    return numbers, errors


@pytest.mark.slow
def test_killed_fit_resumes_and_matches(sample_run, tmp_path):
    """SIGKILL the whole snakemake process group once a checkpoint exists; the rerun resumes and
    gives the same numbers as the uninterrupted sample run."""
    target = "results/fits/single/cicero/embedding.parquet"
    config = REPO / "config/sample.yaml"
    proc = subprocess.Popen(
        snakemake_command(tmp_path, target, configfile=config), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    checkpoints = tmp_path / "results/checkpoints/single/cicero"
    try:
        while not list(checkpoints.glob("*.pt")):
            assert proc.poll() is None, "snakemake ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / target).exists(), "the fit finished before it could be killed"

    run_snakemake(tmp_path, "--unlock", configfile=config)
    run_snakemake(tmp_path, target, "--rerun-incomplete", configfile=config)
    assert "resuming from checkpoint" in (tmp_path / "logs/fits/single/cicero.log").read_text()
    for name in ("embedding.parquet", "loss.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "results/fits/single/cicero" / name),
            pd.read_parquet(sample_run / "results/fits/single/cicero" / name),
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
    consistency, errors = check_new_session(work, "buddy", ["achilles", "buddy"])
    assert errors["adapted"] < errors["random"]
    for figure in ("embeddings", "consistency", "loss", "new_session_buddy"):
        assert_not_blank(work / f"results/figures/{figure}.png")


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
