"""NWB sessions: files written here with pynwb from the simulator read back as its counts and labels;
every kind of bad file fails with a message naming file, session and problem; the workflow runs on them."""

from __future__ import annotations

import datetime
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from hdmf.common import ElementIdentifiers
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import Position, SpatialSeries
from pynwb.epoch import TimeIntervals
from pynwb.misc import Units
from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel, RoiResponseSeries

from cebra_core.sessions.data import load_session
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.validation import SessionError
from cebra_core.sessions.nwb import DEFAULT_INTERVALS, read_nwb, resample_frames, running_direction
from cebra_core.sessions.rats import BIN_SECONDS
from cebra_core.sessions.simulate import simulate, simulate_session
from cebra_core.sessions.simulate_openfield import simulate_openfield
from cebra_core.sessions.simulate_reaching import simulate_reaching
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
    assert list(labels.columns) == ["position", "right", "left"]
    assert neural.dtype == np.float32 and (labels.dtypes == np.float32).all()
    assert neural.shape == sim.neural.shape == (1315, 48)
    np.testing.assert_array_equal(neural, sim.neural)
    np.testing.assert_array_equal(labels["position"], sim.labels[:, 0])
    assert_flags_match(labels.to_numpy(), sim.labels)


def test_the_loader_dispatches_nwb(tmp_path, sim):
    path = simulated_nwb(tmp_path / "buddy.nwb", sim.neural, sim.labels)
    neural, labels = load_session(path, "buddy", nwb={"bin_seconds": DT, "position": POSITION})
    np.testing.assert_array_equal(neural, sim.neural)
    np.savez(tmp_path / "x.npz", spikes=neural, position=labels.to_numpy())
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
    np.testing.assert_array_equal(labels["position"], sim.labels[100:1200, 0])
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
    error = np.abs(labels["position"].to_numpy() - sim.labels[rows, 0])
    assert np.median(error) < 0.002 and error.max() < 0.02  # m; the pauses' 5 mm jitter is undersampled
    assert_flags_match(labels.to_numpy(), sim.labels[rows])


def test_position_in_centimetres_and_a_2d_track(tmp_path, sim):
    rng = np.random.default_rng(2)
    xy = np.column_stack([rng.normal(5.0, 0.1, len(sim.labels)), sim.labels[:, 0] * 100.0])  # cm; track = y
    path = simulated_nwb(tmp_path / "cm.nwb", sim.neural, sim.labels, position=xy, unit="cm")
    neural, labels = read_nwb(path, "cm", track_axis=1)
    np.testing.assert_array_equal(neural, sim.neural)
    np.testing.assert_allclose(labels["position"], sim.labels[:, 0], atol=1e-6)
    assert_flags_match(labels.to_numpy(), sim.labels)
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
    np.testing.assert_array_equal(labels["position"], sim.labels[maze, 0])
    assert_flags_match(labels.to_numpy(), sim.labels[maze])  # direction from the whole recording, then selected
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
    np.testing.assert_array_equal(labels["position"], sim.labels[:200, 0])
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


# ------------------------------------------------------------------------------------ declared labels, ophys

OPEN_FIELD = LabelSpec(continuous=("x", "y"), discrete=("context",))
CONTEXT_NAMES = np.array(["open", "dark"])  # context 0, 1; sorted, "dark" is class 0 and "open" class 1


def add_ophys(nwbfile: NWBFile, traces: np.ndarray, *, container=DfOverF, name="dff", **clock) -> None:
    """A RoiResponseSeries of traces (frames, ROIs) in a container of processing/ophys; ``clock``:
    timestamps=… or rate=…, starting_time=…."""
    if "ophys" not in nwbfile.processing:
        device = nwbfile.create_device(name="microscope")
        plane = nwbfile.create_imaging_plane(
            name="plane", optical_channel=OpticalChannel(name="green", description="GCaMP", emission_lambda=510.0),
            description="CA1", device=device, excitation_lambda=920.0, indicator="GCaMP6f", location="CA1",
            imaging_rate=30.0,
        )
        ophys = nwbfile.create_processing_module("ophys", "calcium imaging")
        segmentation = ImageSegmentation(name="ImageSegmentation")
        ophys.add(segmentation)
        planes = segmentation.create_plane_segmentation(name="rois", description="cells", imaging_plane=plane)
        for roi in range(traces.shape[1]):
            planes.add_roi(pixel_mask=[(roi, 0, 1.0)])
    ophys = nwbfile.processing["ophys"]
    planes = ophys["ImageSegmentation"]["rois"]
    region = planes.create_roi_table_region(region=list(range(traces.shape[1])), description="every cell")
    with warnings.catch_warnings():  # the region links its table before the series joins the file: harmless
        warnings.filterwarnings("ignore", message="The linked table for DynamicTableRegion")
        series = RoiResponseSeries(name=name, data=traces, rois=region, unit="n.a.", **clock)
        ophys.add(container(roi_response_series=series))


def add_intervals(nwbfile: NWBFile, bounds, **columns) -> None:
    """Trials [start, stop) (s) with a column per keyword (one value per row)."""
    for name in columns:
        if name != "tags":  # a predefined (ragged) column of a TimeIntervals table
            nwbfile.add_trial_column(name=name, description=name)
    for row, (start, stop) in enumerate(bounds):
        nwbfile.add_trial(start_time=float(start), stop_time=float(stop), **{k: v[row] for k, v in columns.items()})


def context_rows(context: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """One trial per block of a context, ending ``gap`` bins before the block does: (bounds (K, 2) in
    bins, each bin's row or -1 in a gap)."""
    starts = np.flatnonzero(np.diff(context, prepend=-1))
    ends = np.append(starts[1:], len(context)) - gap
    row = np.full(len(context), -1)
    for k, (a, b) in enumerate(zip(starts, ends)):
        row[a:b] = k
    return np.column_stack([starts, ends]), row


@pytest.fixture(scope="module")
def mouse():
    return simulate_openfield("m1", n_bins=1200, n_neurons=20, seed=2)


def open_field_nwb(path, mouse, *, frames_per_bin=4) -> tuple[str, np.ndarray]:
    """A mouse in the open field: calcium frames ``frames_per_bin`` per bin (each bin's frames average
    to the simulated trace), x, y in cm at the bin centres, speed at 100 Hz, and a trial per context
    block (a string context and an integer condition) with a 20-bin gap before each block's end;
    returns the path and the bins inside a trial."""
    T, N = mouse.neural.shape
    nwbfile = new_file()
    spread = np.linspace(-1, 1, frames_per_bin)[None, :, None] * np.linspace(0.1, 0.3, N)  # (1, F, N): mean 0 per bin
    frames = (mouse.neural[:, None, :].astype(np.float64) + spread).reshape(T * frames_per_bin, N)
    add_ophys(nwbfile, frames, rate=frames_per_bin / DT, starting_time=DT / (2 * frames_per_bin))
    centres = (np.arange(T) + 0.5) * DT
    series = SpatialSeries(name="position", data=mouse.position * 100.0, timestamps=centres,
                           reference_frame="arena corner", unit="cm")
    behaviour = nwbfile.create_processing_module("behavior", "behaviour")
    behaviour.add(Position(spatial_series=series))
    clock = np.arange(0.0, T * DT, 0.01)
    behaviour.add(TimeSeries(name="speed", data=speed_at(clock), timestamps=clock, unit="m/s"))
    bounds, row = context_rows(mouse.labels["context"].to_numpy(), gap=20)
    context = mouse.labels["context"].to_numpy()[bounds[:, 0]]
    add_intervals(nwbfile, bounds * DT, context=CONTEXT_NAMES[context], condition=context + 3)
    return write(nwbfile, path), row >= 0


def speed_at(t: np.ndarray) -> np.ndarray:
    return 0.1 + 0.05 * np.sin(t)


def test_open_field_with_calcium_and_trial_contexts(tmp_path, mouse):
    path, inside = open_field_nwb(tmp_path / "m1.nwb", mouse)
    assert 0 < inside.sum() < len(inside) - 50  # the gaps drop bins
    options = {"neural": "ophys", "position_columns": ["x", "y"], "intervals": {"field": "context"}}
    neural, labels = read_nwb(path, "m1", labels=OPEN_FIELD, **options)
    assert neural.shape == (inside.sum(), 20) and neural.dtype == np.float32
    np.testing.assert_allclose(neural, mouse.neural[inside], atol=1e-5)  # the mean of each bin's 4 frames
    assert list(labels.columns) == ["x", "y", "context"]
    assert labels["x"].dtype == np.float32 and labels["context"].dtype == np.int64
    np.testing.assert_allclose(labels[["x", "y"]].to_numpy(), mouse.position[inside], atol=1e-6)  # cm -> m
    truth = mouse.labels["context"].to_numpy()[inside]
    np.testing.assert_array_equal(labels["context"], 1 - truth)  # sorted names: dark 0, open 1
    # classes: fixes the order; an integer field is its own class; a series gives a column
    _, labels = read_nwb(path, "m1", labels=OPEN_FIELD, **{**options, "intervals": {
        "table": "trials", "field": "context", "classes": ["open", "dark"], "column": "context"}})
    np.testing.assert_array_equal(labels["context"], truth)
    spec = LabelSpec(continuous=("x", "y", "speed"), discrete=("context",))
    _, labels = read_nwb(path, "m1", labels=spec, **options, series={"speed": "processing/behavior/speed"})
    np.testing.assert_allclose(labels["speed"], speed_at((np.flatnonzero(inside) + 0.5) * DT), atol=1e-5)
    _, labels = read_nwb(path, "m1", labels=OPEN_FIELD, **{**options, "intervals": {"field": "condition"}})
    np.testing.assert_array_equal(labels["context"], truth + 3)
    # no discrete label: every bin; epochs still select
    spec = LabelSpec(continuous=("x", "y"))
    neural, labels = read_nwb(path, "m1", labels=spec, neural="ophys", position_columns=["x", "y"])
    assert len(neural) == len(labels) == 1200
    neural, _ = read_nwb(path, "m1", labels=spec, neural="ophys", position_columns=["x", "y"],
                         epochs={"table": "trials"})
    np.testing.assert_allclose(neural, mouse.neural[inside], atol=1e-5)
    # the rat track's labels over calcium traces: x as the track, its running direction
    neural, labels = read_nwb(path, "m1", neural="ophys", track_axis=0)
    assert len(neural) == 1200 and list(labels.columns) == ["position", "right", "left"]
    np.testing.assert_allclose(labels["position"], mouse.position[:, 0], atol=1e-6)
    assert (labels["right"] + labels["left"] == 1).all()


def test_imaging_slower_than_the_bins_is_interpolated_at_the_bin_centres(tmp_path, mouse):
    # 20 Hz frames (every other 25 ms bin), timestamped from 0.1 s: the bins between take the line between frames.
    T = len(mouse.neural)
    times = 0.1 + np.arange(T // 2 - 4) * 2 * DT
    frames = mouse.neural[np.round(times / DT - 0.5).astype(int)].astype(np.float64)
    nwbfile = new_file()
    add_ophys(nwbfile, frames, container=Fluorescence, name="raw", timestamps=times)
    nwbfile.add_acquisition(TimeSeries(name="speed", data=speed_at(times), timestamps=times, unit="m/s"))
    path = write(nwbfile, tmp_path / "slow.nwb")
    neural, labels = read_nwb(path, "slow", labels=LabelSpec(continuous=("speed",)), neural="ophys",
                              roi_series="processing/ophys/Fluorescence/raw", series={"speed": "acquisition/speed"})
    centres = (np.arange(T) + 0.5) * DT
    centres = centres[(centres >= times[0]) & (centres <= times[-1])]
    assert len(neural) == len(centres) == len(times) * 2 - 2
    expected = np.column_stack([np.interp(centres, times, frames[:, i]) for i in range(frames.shape[1])])
    np.testing.assert_allclose(neural, expected, atol=1e-5)
    assert not np.isin(neural, frames.astype(np.float32)).all()  # not a staircase of frames


def test_resample_frames_mean_or_interpolation():
    w = DT
    times = (np.arange(8) + 0.5) * w / 2  # two frames per bin: bins 0-3
    traces = (np.arange(8.0) ** 2)[:, None]
    np.testing.assert_allclose(resample_frames(times, traces, 0, 4, w)[:, 0], [0.5, 6.5, 20.5, 42.5])
    dropped = np.delete(np.arange(8), [2, 3])  # bin 1 lost its frames: the line between 0.75 w (1) and 2.25 w (16)
    np.testing.assert_allclose(resample_frames(times[dropped], traces[dropped], 0, 4, w)[:, 0], [0.5, 8.5, 20.5, 42.5])
    slow = np.arange(4) * 2 * w  # one frame every other bin: interpolated at the centres 0.5 w, 1.5 w, 2.5 w …
    np.testing.assert_allclose(resample_frames(slow, traces[:4], 0, 6, w)[:, 0], [0.25, 0.75, 1.75, 3.25, 5.25, 7.75])
    same = np.arange(4) * w  # as fast as the bins: interpolation too (a mean would pick a frame at an edge)
    np.testing.assert_allclose(resample_frames(same, traces[:4], 0, 3, w)[:, 0], [0.5, 2.5, 6.5])
    nan = traces.copy()
    nan[5] = np.nan
    assert np.isnan(resample_frames(times, nan, 0, 4, w)[:, 0]).tolist() == [False, False, True, False]


@pytest.fixture(scope="module")
def monkey():
    return simulate_reaching("k1", n_trials=16, n_neurons=20, seed=1)  # counts, target per bin


def test_units_with_a_discrete_trial_condition(tmp_path, monkey):
    T = len(monkey.neural)
    rng = np.random.default_rng(8)
    nwbfile = new_file()
    add_units(nwbfile, spike_times(monkey.neural, rng), (0.0, T * DT))
    trials = [k for k in range(16) if k not in (3, 10)]  # two trials left out of the table: their bins dropped
    bounds = np.array([np.flatnonzero(monkey.trial == k)[[0, -1]] + [0, 1] for k in trials]) * DT
    add_intervals(nwbfile, bounds, condition=monkey.targets[trials], trial=[f"t{k}" for k in trials])
    path = write(nwbfile, tmp_path / "k1.nwb")
    keep = ~np.isin(monkey.trial, [3, 10])
    spec = LabelSpec(continuous=(), discrete=("target",))
    neural, labels = read_nwb(path, "k1", labels=spec, intervals={"field": "condition"})
    np.testing.assert_array_equal(neural, monkey.neural[keep])
    assert list(labels.columns) == ["target"] and labels["target"].dtype == np.int64
    np.testing.assert_array_equal(labels["target"], monkey.labels["target"].to_numpy()[keep])
    neural, labels = load_session(path, "k1", nwb={"bin_seconds": DT, "intervals": {"field": "condition"}}, labels=spec)
    np.testing.assert_array_equal(labels["target"], monkey.labels["target"].to_numpy()[keep])
    with pytest.raises(SessionError, match=r"signals.k1: 'continuous' does not match its NWB neural data: neural: "
                                           r"units gives a counts signal; declare signals: \{k1: counts\}"):
        read_nwb(path, "k1", labels=spec, intervals={"field": "condition"}, signal="continuous")


@pytest.fixture(scope="module")
def labelled_file(tmp_path_factory):
    """400 bins of a small open-field file with every source the error cases name: units, a 2-D
    position, a 1-D speed and a 2-D acceleration, two RoiResponseSeries, trials with good and bad
    class columns, a table of late intervals and one of overlapping ones."""
    rng = np.random.default_rng(9)
    T = 400
    centres = (np.arange(T) + 0.5) * DT
    nwbfile = new_file()
    add_units(nwbfile, spike_times(rng.poisson(1.0, (T, 5)), rng), (0.0, T * DT))
    behaviour = nwbfile.create_processing_module("behavior", "behaviour")
    behaviour.add(Position(spatial_series=SpatialSeries(
        name="position", data=rng.uniform(0, 0.5, (T, 2)), timestamps=centres, reference_frame="corner", unit="m")))
    behaviour.add(TimeSeries(name="speed", data=rng.uniform(0, 0.3, T), timestamps=centres, unit="m/s"))
    behaviour.add(TimeSeries(name="acceleration", data=rng.normal(0, 1, (T, 2)), timestamps=centres, unit="m/s^2"))
    add_ophys(nwbfile, rng.normal(0, 1, (T, 3)), name="dff", timestamps=centres)
    add_ophys(nwbfile, rng.normal(5, 1, (T, 3)), container=Fluorescence, name="raw", timestamps=centres)
    bounds = np.array([[0, 100], [100, 200], [200, 300], [300, 400]]) * DT
    add_intervals(nwbfile, bounds, context=["open", "dark", "open", "dark"], weight=[1.0, 2.0, 1.5, 0.0],
                  shift=[0, -1, 1, 0], tags=[["a"], ["a", "b"], ["b"], ["a"]])
    for name, rows in (("late", [(100.0, 200.0)]), ("overlap", [(0.0, 5.0), (4.0, 10.0)])):
        table = TimeIntervals(name=name, description=name)
        table.add_column(name="context", description="context")
        for k, (start, stop) in enumerate(rows):
            table.add_row(start_time=start, stop_time=stop, context=["open", "dark"][k])
        nwbfile.add_time_intervals(table)
    return write(nwbfile, tmp_path_factory.mktemp("labelled") / "mouse.nwb")


GOOD = {"position_columns": ["x", "y"], "intervals": {"field": "context"}}
XYZ = LabelSpec(continuous=("x", "y", "z"), discrete=("context",))
SPEED = LabelSpec(continuous=("x", "y", "speed"), discrete=("context",))
ONLY_X = LabelSpec(continuous=("x",))
RAT = LabelSpec()


def test_the_labelled_file_reads(labelled_file):
    neural, labels = read_nwb(labelled_file, "mouse", labels=OPEN_FIELD, **GOOD)
    assert neural.shape == (400, 5) and labels["context"].tolist() == [1] * 100 + [0] * 100 + [1] * 100 + [0] * 100
    neural, _ = read_nwb(labelled_file, "mouse", labels=OPEN_FIELD, **GOOD, neural="ophys",
                         roi_series="processing/ophys/Fluorescence/raw")
    assert neural.shape == (400, 3) and neural.min() > 0  # the raw fluorescence, not the ΔF/F


@pytest.mark.parametrize("spec, options, message", [
    # the file's contents
    (XYZ, {"position_columns": ["x", "y", "z"], "intervals": {"field": "context"}},
     r"position_columns: names 3 columns \['x', 'y', 'z'\], but position processing/behavior/Position/position has "
     r"2 axes \(shape \(400, 2\)\)"),
    (OPEN_FIELD, {**GOOD, "position": "processing/behavior/Position/head"},
     r"has no SpatialSeries at position: 'processing/behavior/Position/head'; its SpatialSeries are: "
     r"processing/behavior/Position/position"),
    (SPEED, {**GOOD, "series": {"speed": "processing/behavior/velocity"}},
     r"series.speed: has no TimeSeries at 'processing/behavior/velocity'; its time series are: "
     r"processing/behavior/Position/position \(SpatialSeries\), processing/behavior/acceleration \(TimeSeries\)"),
    (SPEED, {**GOOD, "series": {"speed": "processing/behavior/acceleration"}},
     r"series.speed: processing/behavior/acceleration has shape \(400, 2\); a label column needs a 1-D series"),
    (OPEN_FIELD, {**GOOD, "intervals": {"table": "laps", "field": "context"}},
     r"intervals.table: has no intervals table 'laps'; it has: late, overlap, trials"),
    (OPEN_FIELD, {**GOOD, "intervals": {"field": "condition"}},
     r"intervals.field: intervals table 'trials' has no column 'condition' \(columns: start_time, stop_time, "
     r"context, weight, shift, tags\)"),
    (OPEN_FIELD, {**GOOD, "intervals": {"field": "weight"}},
     r"intervals.field: column 'weight' of intervals table 'trials' holds non-integer values \(row 2: 1\.5\)"),
    (OPEN_FIELD, {**GOOD, "intervals": {"field": "shift"}},
     r"intervals.field: column 'shift' of intervals table 'trials' holds a negative value \(row 1: -1\); "
     r"classes are 0, 1, 2, …: list the values in class order with intervals: classes:"),
    (OPEN_FIELD, {**GOOD, "intervals": {"field": "tags"}},
     r"intervals.field: column 'tags' of intervals table 'trials' holds several values per row"),
    (OPEN_FIELD, {**GOOD, "intervals": {"field": "context", "classes": ["open", "closed"]}},
     r"intervals.classes: \['open', 'closed'\] does not list the value\(s\) \['dark'\] of column 'context' of "
     r"intervals table 'trials'"),
    (OPEN_FIELD, {**GOOD, "intervals": {"table": "late", "field": "context"}},
     r"no time bins are left: of the 400 bins where spikes and position processing/behavior/Position/position "
     r"overlap \(0\.0125–9\.9875 s\), none is inside a row of intervals table 'late' \(intervals:, rows from 100 to 200 s\)"),
    (OPEN_FIELD, {**GOOD, "intervals": {"table": "overlap", "field": "context"}},
     r"intervals: rows 0 and 1 of intervals table 'overlap' overlap at 4\.0125 s with different context values "
     r"\('open' and 'dark'\)"),
    (OPEN_FIELD, {**GOOD, "neural": "ophys"},
     r"neural: ophys: the file has 2 RoiResponseSeries in Fluorescence or DfOverF containers: "
     r"processing/ophys/DfOverF/dff, processing/ophys/Fluorescence/raw; name one with the session's roi_series"),
    (OPEN_FIELD, {**GOOD, "neural": "ophys", "roi_series": "processing/ophys/dff"},
     r"roi_series: has no RoiResponseSeries at 'processing/ophys/dff'; its RoiResponseSeries are: "
     r"processing/ophys/DfOverF/dff, processing/ophys/Fluorescence/raw"),
    # the options
    (OPEN_FIELD, {**GOOD, "neural": "spikes"},
     r"neural: 'spikes' is not a neural source; use units \(the units table's spike times, counted per bin\) or ophys"),
    (OPEN_FIELD, {**GOOD, "neural": "ophys", "roi_series": "processing/ophys/DfOverF/dff", "signal": "counts"},
     r"signals.mouse: 'counts' does not match its NWB neural data: neural: ophys gives a continuous signal; "
     r"declare signals: \{mouse: continuous\}"),
    (OPEN_FIELD, {**GOOD, "roi_series": "processing/ophys/DfOverF/dff"},
     r"roi_series: 'processing/ophys/DfOverF/dff' is read by neural: ophys only; neural is units"),
    (OPEN_FIELD, {"position_columns": ["x", "y"]},
     r"label column\(s\) \['context'\] have no source in the file: .* the discrete one in intervals"),
    (OPEN_FIELD, {**GOOD, "position_columns": ["x", "z"]},
     r"position_columns: 'z' is not a declared label column \(declared: continuous \['x', 'y'\], discrete "
     r"\['context'\]; the labels key\)"),
    (OPEN_FIELD, {**GOOD, "position_columns": ["x", "context"]},
     r"position_columns: 'context' is the discrete label column; a discrete label comes from intervals"),
    (OPEN_FIELD, {**GOOD, "position_columns": "x"}, r"position_columns: give a list of label columns"),
    (SPEED, {**GOOD, "series": {"speed": "processing/behavior/speed", "x": "processing/behavior/speed"}},
     r"series: 'x' is already read from position_columns; a column has one source"),
    (OPEN_FIELD, {**GOOD, "track_axis": 0},
     r"track_axis: applies to the rat track labels \[position, right, left\] only; .* position_columns"),
    (OPEN_FIELD, {"intervals": {"field": "context"}, "position": "processing/behavior/Position/position"},
     r"position: names a SpatialSeries \('processing/behavior/Position/position'\), but position_columns does not "
     r"name its axes"),
    (OPEN_FIELD, {**GOOD, "intervals": {"column": "room", "field": "context"}},
     r"intervals.column: 'room' is not the declared discrete label column"),
    (OPEN_FIELD, {**GOOD, "intervals": {"field": "context", "labels": ["a"]}},
     r"intervals: unknown key\(s\) \['labels'\]; it takes column, table, field, classes"),
    (OPEN_FIELD, {**GOOD, "intervals": {"table": "trials"}}, r"intervals.field: name the column of the intervals table"),
    (OPEN_FIELD, {**GOOD, "intervals": {"field": "context", "classes": ["open", "open"]}},
     r"intervals.classes: lists a value twice: \['open', 'open'\]"),
    (ONLY_X, {"position_columns": ["x"], "intervals": {"field": "context"}},
     r"intervals: gives a discrete label column, but none is declared \(declared: continuous \['x'\], discrete \[\]"),
    (RAT, {"position_columns": ["position"], "intervals": {"field": "context"}},
     r"position_columns, intervals: the labels are the rat track \[position, right, left\] .* declare your own label"),
])
def test_label_and_neural_options_fail_clearly(labelled_file, spec, options, message):
    with pytest.raises(SessionError, match=rf"^session 'mouse' \({re.escape(labelled_file)}\): {message}"):
        read_nwb(labelled_file, "mouse", labels=spec, **options)


def test_ophys_without_a_roi_response_series_fails_clearly(tmp_path, sim):
    path = bad_file(tmp_path, "good", sim)
    with pytest.raises(SessionError, match=r"^session 'rat7' \(.*bad\.nwb\): neural: ophys reads a RoiResponseSeries in "
                                           r"a Fluorescence or DfOverF container, but the file has none; its time "
                                           r"series are: processing/behavior/Position/position \(SpatialSeries\)"):
        read_nwb(path, "rat7", neural="ophys")


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
