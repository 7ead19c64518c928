"""NWB sessions: files written here with pynwb from the simulator read back as its counts and labels;
every kind of bad file fails with a message naming file, session and problem; the workflow runs on them."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
import yaml
from hdmf.common import ElementIdentifiers
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import Position, SpatialSeries
from pynwb.misc import Units

from cebra_core.sessions.data import load_session
from cebra_core.sessions.validation import SessionError
from cebra_core.sessions.nwb import DEFAULT_INTERVALS, read_nwb, running_direction
from cebra_core.sessions.rats import BIN_SECONDS
from cebra_core.sessions.simulate import simulate, simulate_session
from helpers import REPO, run_snakemake, write_config

DT = BIN_SECONDS
POSITION = "processing/behavior/Position/position"


def spike_times(neural: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Each unit's spikes: count[k] times drawn uniformly inside bin k (away from its edges), sorted."""
    times = []
    for counts in neural.T.astype(np.int64):
        bins = np.repeat(np.arange(len(counts)), counts)
        times.append(np.sort((bins + rng.uniform(0.05, 0.95, len(bins))) * DT))
    return times


def new_file() -> NWBFile:
    return NWBFile(
        session_description="simulated place cells", identifier="sim",
        session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    )


def add_units(nwbfile: NWBFile, times: list[np.ndarray], observed: tuple[float, float] | None) -> None:
    for unit_times in times:
        extra = {"obs_intervals": [list(observed)]} if observed else {}
        nwbfile.add_unit(spike_times=unit_times, **extra)


def add_position(nwbfile: NWBFile, data: np.ndarray, timestamps: np.ndarray, *, name="position",
                 unit="meters", module="behavior") -> None:
    series = SpatialSeries(name=name, data=data, timestamps=timestamps, reference_frame="track start", unit=unit)
    processing = nwbfile.processing.get(module) or nwbfile.create_processing_module(module, "behaviour")
    interface = processing.data_interfaces.get("Position")
    if interface is None:
        processing.add(Position(spatial_series=series))
    else:
        interface.add_spatial_series(series)


def write(nwbfile: NWBFile, path) -> str:
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return str(path)


def simulated_nwb(path, neural, labels, *, seed=0, observed=True, position=None, unit="meters"):
    """An NWB file of a simulated session: spikes inside their bins, position sampled at bin centres."""
    rng = np.random.default_rng(seed)
    nwbfile = new_file()
    add_units(nwbfile, spike_times(neural, rng), (0.0, len(neural) * DT) if observed else None)
    centres = (np.arange(len(labels)) + 0.5) * DT
    add_position(nwbfile, labels[:, 0] if position is None else position, centres, unit=unit)
    return write(nwbfile, path)


@pytest.fixture(scope="module")
def sim():
    return simulate_session("buddy", scale=0.2, seed=3)  # 1315 bins, 48 units


def assert_flags_match(read: np.ndarray, truth: np.ndarray) -> None:
    """One-hot flags; equal to the simulator's except within 5 bins after it turns (velocity lag)."""
    assert (read[:, 1] + read[:, 2] == 1).all()
    agree = read[:, 1] == truth[:, 1]
    assert agree.mean() >= 0.98
    turns = np.flatnonzero(np.diff(truth[:, 1])) + 1
    wrong = np.flatnonzero(~agree)
    assert (np.abs(wrong[:, None] - turns[None, :]).min(axis=1) <= 5).all()


def test_read_back_equals_the_simulator(tmp_path, sim):
    path = simulated_nwb(tmp_path / "buddy.nwb", sim.neural, sim.labels)
    neural, labels = read_nwb(path, "buddy")
    assert neural.dtype == labels.dtype == np.float32
    assert neural.shape == sim.neural.shape == (1315, 48)
    np.testing.assert_array_equal(neural, sim.neural)
    np.testing.assert_array_equal(labels[:, 0], sim.labels[:, 0])
    assert_flags_match(labels, sim.labels)


def test_the_loader_dispatches_nwb(tmp_path, sim):
    path = simulated_nwb(tmp_path / "buddy.nwb", sim.neural, sim.labels)
    neural, labels = load_session(path, "buddy", nwb={"bin_seconds": DT, "position": POSITION})
    np.testing.assert_array_equal(neural, sim.neural)
    np.savez(tmp_path / "x.npz", spikes=neural, position=labels)
    with pytest.raises(SessionError, match=r"session 'x' .*x\.npz.*NWB options \['track_axis'\] .* not a \.nwb file"):
        load_session(tmp_path / "x.npz", "x", nwb={"track_axis": 0})


def test_bins_only_where_spikes_and_position_both_exist(tmp_path, sim):
    # Position from bin 100 on, spikes observed up to bin 1200: rows 100…1199 of the simulation.
    rng = np.random.default_rng(1)
    nwbfile = new_file()
    add_units(nwbfile, spike_times(sim.neural, rng), (0.0, 1200 * DT))
    add_position(nwbfile, sim.labels[100:, 0], (np.arange(100, len(sim.labels)) + 0.5) * DT)
    neural, labels = read_nwb(write(nwbfile, tmp_path / "s.nwb"), "s")
    np.testing.assert_array_equal(neural, sim.neural[100:1200])
    np.testing.assert_array_equal(labels[:, 0], sim.labels[100:1200, 0])
    # Without obs_intervals the spikes' own range counts: from the first spike's bin to the last's.
    path = simulated_nwb(tmp_path / "o.nwb", sim.neural, sim.labels, observed=False)
    any_spike = np.flatnonzero(sim.neural.sum(axis=1))
    neural, _ = read_nwb(path, "o")
    np.testing.assert_array_equal(neural, sim.neural[any_spike[0]:any_spike[-1] + 1])


def test_position_on_its_own_clock_is_interpolated_onto_bin_centres(tmp_path, sim):
    # A 30 Hz tracker starting at 0.2 s: the first bins (centres before 0.2 s) have no position.
    centres = (np.arange(len(sim.labels)) + 0.5) * DT
    clock = np.arange(0.2, centres[-1], 1 / 30)
    rng = np.random.default_rng(6)
    nwbfile = new_file()
    add_units(nwbfile, spike_times(sim.neural, rng), (0.0, len(sim.neural) * DT))
    add_position(nwbfile, np.interp(clock, centres, sim.labels[:, 0]), clock)
    neural, labels = read_nwb(write(nwbfile, tmp_path / "c.nwb"), "c")
    rows = (centres >= 0.2) & (centres <= clock[-1])
    assert np.array_equal(np.flatnonzero(rows), np.arange(8, 1313))  # centres 0.2125 … 32.8125 s (last sample 32.833 s)
    np.testing.assert_array_equal(neural, sim.neural[rows])
    error = np.abs(labels[:, 0] - sim.labels[rows, 0])
    assert np.median(error) < 0.002 and error.max() < 0.02  # m; the pauses' 5 mm jitter is undersampled
    assert_flags_match(labels, sim.labels[rows])


def test_position_in_centimetres_and_a_2d_track(tmp_path, sim):
    rng = np.random.default_rng(2)
    xy = np.column_stack([rng.normal(5.0, 0.1, len(sim.labels)), sim.labels[:, 0] * 100.0])  # cm; track = y
    path = simulated_nwb(tmp_path / "cm.nwb", sim.neural, sim.labels, position=xy, unit="cm")
    neural, labels = read_nwb(path, "cm", track_axis=1)
    np.testing.assert_array_equal(neural, sim.neural)
    np.testing.assert_allclose(labels[:, 0], sim.labels[:, 0], atol=1e-6)
    assert_flags_match(labels, sim.labels)
    with pytest.raises(SessionError, match=r"session 'cm' .*cm\.nwb.*position processing/behavior/Position/"
                                           r"position is 2-D .*set track_axis"):
        read_nwb(path, "cm")


def test_epochs_and_trials_select_bins(tmp_path, sim):
    rng = np.random.default_rng(4)
    nwbfile = new_file()
    add_units(nwbfile, spike_times(sim.neural, rng), (0.0, len(sim.neural) * DT))
    add_position(nwbfile, sim.labels[:, 0], (np.arange(len(sim.labels)) + 0.5) * DT)
    for start, stop, tag in ((0, 300, "maze"), (300, 700, "sleep"), (700, 1315, "maze")):
        nwbfile.add_epoch(start * DT, stop * DT, tags=[tag])
    nwbfile.add_trial(start_time=50 * DT, stop_time=150 * DT)
    nwbfile.add_trial(start_time=1000 * DT, stop_time=1100 * DT)
    path = write(nwbfile, tmp_path / "e.nwb")

    maze = np.r_[0:300, 700:1315]
    neural, labels = read_nwb(path, "e", epochs={"table": "epochs", "tags": ["maze"]})
    np.testing.assert_array_equal(neural, sim.neural[maze])
    np.testing.assert_array_equal(labels[:, 0], sim.labels[maze, 0])
    assert_flags_match(labels, sim.labels[maze])  # direction from the whole recording, then selected
    neural, _ = read_nwb(path, "e", epochs={"table": "trials"})
    np.testing.assert_array_equal(neural, sim.neural[np.r_[50:150, 1000:1100]])
    neural, _ = read_nwb(path, "e", epochs={"table": "epochs"})  # every row: all bins
    np.testing.assert_array_equal(neural, sim.neural)
    with pytest.raises(SessionError, match=r"no rows of intervals table 'epochs' have the tags \['run'\]; "
                                           r"its tags are: maze, sleep"):
        read_nwb(path, "e", epochs={"table": "epochs", "tags": ["run"]})
    with pytest.raises(SessionError, match=r"has no intervals table 'laps' .*it has: epochs, trials"):
        read_nwb(path, "e", epochs={"table": "laps"})


def test_running_direction_follows_the_velocity_and_holds_through_stops():
    up = np.linspace(0.0, 1.6, 100)
    still = np.full(40, 1.6)
    down = np.linspace(1.6, 0.0, 100)
    right = running_direction(np.concatenate([np.zeros(20), up, still, down, np.zeros(40)]), DT)
    # Leading stop takes the first run's direction (right); the stop at 1.6 keeps right; then left to the end.
    assert right[:150].all()
    assert not right[170:].any()
    assert running_direction(np.zeros(30), DT).all()  # never moves: right by convention


def test_simulated_laps_direction_matches_over_rats():
    for seed in range(3):
        truth = simulate(2000, 3, seed=seed).labels
        right = running_direction(truth[:, 0].astype(np.float64), DT)
        assert_flags_match(np.column_stack([truth[:, 0], right, ~right]).astype(np.float32), truth)


# ------------------------------------------------------------------------------------ bad files


def bad_file(tmp_path, kind: str, sim) -> str:
    neural, labels = sim.neural[:200], sim.labels[:200]
    centres = (np.arange(200) + 0.5) * DT
    rng = np.random.default_rng(5)
    nwbfile = new_file()
    if kind != "no units":
        if kind == "empty units":
            nwbfile.units = Units(  # the table exists, with no rows
                name="units", description="none", id=ElementIdentifiers(name="id", data=np.array([], dtype=np.int64))
            )
        else:
            times = spike_times(neural, rng)
            if kind == "unsorted":
                times[3] = np.array([0.5, 0.75, 0.3])
            if kind == "negative":
                times[2] = np.concatenate([[-0.5], times[2]])
            if kind == "no overlap":
                times = [t + 100.0 for t in times]
            add_units(nwbfile, times, None)
    if kind == "no position":
        nwbfile.add_acquisition(TimeSeries(name="speed", data=np.ones(200), timestamps=centres, unit="m/s"))
    elif kind == "two positions":
        add_position(nwbfile, labels[:, 0], centres)
        add_position(nwbfile, labels[:, 0], centres, name="head", module="tracking")
    elif kind == "inches":
        add_position(nwbfile, labels[:, 0], centres, unit="inches")
    elif kind == "2-d":
        add_position(nwbfile, np.column_stack([labels[:, 0], labels[:, 0]]), centres)
    else:
        add_position(nwbfile, labels[:, 0], centres)
    return write(nwbfile, tmp_path / "bad.nwb")


@pytest.mark.parametrize("kind, message", [
    ("no units", r"has no units table"),
    ("empty units", r"its units table is empty \(no units\)"),
    ("unsorted", r"unit 3 \(row 3\) has unsorted spike times \(0\.3 s after 0\.75 s at spike 2\)"),
    ("negative", r"unit 2 \(row 2\) has negative spike times \(min -0\.5 s\)"),
    ("no overlap", r"spikes \(100–105 s\) and position processing/behavior/Position/position "
                   r"\(0\.0125–4\.9875 s\) do not overlap in time"),
    ("no position", r"has no position \(no SpatialSeries\); the file has: acquisition/speed \(TimeSeries\)"),
    ("two positions", r"has 2 SpatialSeries: processing/behavior/Position/position, "
                      r"processing/tracking/Position/head; name one with the session's position: key"),
    ("inches", r"position processing/behavior/Position/position is in unit 'inches'; cannot convert it to metres"),
    ("2-d", r"position processing/behavior/Position/position is 2-D \(shape \(200, 2\)\); set track_axis"),
])
def test_bad_files_fail_clearly(tmp_path, sim, kind, message):
    path = bad_file(tmp_path, kind, sim)
    with pytest.raises(SessionError, match=rf"^session 'rat7' \({tmp_path}/bad\.nwb\): {message}"):
        read_nwb(path, "rat7")


def test_named_position_and_unknown_names(tmp_path, sim):
    path = bad_file(tmp_path, "two positions", sim)
    neural, labels = read_nwb(path, "rat7", position="processing/tracking/Position/head")
    np.testing.assert_array_equal(labels[:, 0], sim.labels[:200, 0])
    with pytest.raises(SessionError, match=r"has no SpatialSeries at position: 'behavior/position'; its "
                                           r"SpatialSeries are: processing/behavior/Position/position, "
                                           r"processing/tracking/Position/head"):
        read_nwb(path, "rat7", position="behavior/position")
    (tmp_path / "junk.nwb").write_bytes(b"not hdf5")
    with pytest.raises(SessionError, match=r"session 'junk' .*junk\.nwb\): cannot be read as an NWB file"):
        read_nwb(tmp_path / "junk.nwb", "junk")


def test_schema_defaults_are_the_readers():
    data = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]["data"]
    assert data["properties"]["nwb"]["properties"]["bin_seconds"]["default"] == BIN_SECONDS
    entry = data["properties"]["local"]["additionalProperties"]["oneOf"][1]["properties"]
    assert entry["epochs"]["properties"]["table"]["default"] == DEFAULT_INTERVALS


# ------------------------------------------------------------------------------------ workflow


def example_sessions(nwb_dir) -> dict[str, np.ndarray]:
    """The three files config/nwb.example.yaml names, from short simulated rats; the rows each should give."""
    rows = {}
    for rat, name in (("rat1", "achilles"), ("rat2", "buddy"), ("rat3", "gatsby")):
        sim = simulate_session(name, scale=0.04, seed=0)  # 407, 263 and 681 bins
        T = len(sim.labels)
        rng = np.random.default_rng(7)
        nwbfile = new_file()
        add_units(nwbfile, spike_times(sim.neural, rng), (0.0, T * DT))
        centres = (np.arange(T) + 0.5) * DT
        if rat == "rat2":  # 2-D, in cm, beside a second SpatialSeries
            xy = np.column_stack([sim.labels[:, 0] * 100.0, np.full(T, 3.0)])
            add_position(nwbfile, xy, centres, unit="cm")
            add_position(nwbfile, sim.labels[:, 0], centres, name="head", module="tracking")
        else:
            add_position(nwbfile, sim.labels[:, 0], centres)
        keep = np.ones(T, dtype=bool)
        if rat == "rat3":
            nwbfile.add_epoch(0.0, 100 * DT, tags=["sleep"])
            nwbfile.add_epoch(100 * DT, T * DT, tags=["maze"])
            keep[:100] = False
        write(nwbfile, nwb_dir / f"{rat}.nwb")
        rows[rat] = np.column_stack([sim.neural, sim.labels])[keep]
    return rows


@pytest.mark.slow
def test_sample_workflow_on_nwb_sessions(tmp_path, monkeypatch):
    """config/nwb.example.yaml, on three short simulated rats written as NWB: imported through the
    import and check jobs, then one multi-session fit on all three (the steps after a fit read only
    the session tables, which the sample run covers)."""
    monkeypatch.setenv("NWB_DIR", str(tmp_path))
    expected = example_sessions(tmp_path)
    config = write_config(
        tmp_path / "nwb.yaml", base="nwb.example.yaml",
        cebra={"batch_size": 256, "max_iterations": 50, "checkpoint_every": 50},
        new_session={"held_out": None}, device="cpu", fit_threads=1,
    )
    work = tmp_path / "work"
    run_snakemake(work, "results/fits/all/seed0/multi/embedding.parquet", configfile=config)
    assert (work / "results/data/checks.tsv").is_file()
    for rat, rows in expected.items():
        table = pd.read_parquet(work / f"results/data/sessions/{rat}.parquet")
        n = rows.shape[1] - 3
        np.testing.assert_array_equal(table[[f"n{i}" for i in range(n)]].to_numpy(), rows[:, :n])
        np.testing.assert_allclose(table["position"].to_numpy(), rows[:, n], atol=1e-6)
        assert_flags_match(table[["position", "right", "left"]].to_numpy(), rows[:, n:])
    embedding = pd.read_parquet(work / "results/fits/all/seed0/multi/embedding.parquet")
    assert embedding.groupby("session", sort=False).size().to_dict() == {rat: len(rows) for rat, rows in expected.items()}
    assert np.isfinite(embedding[["z0", "z1", "z2"]]).all().all()
