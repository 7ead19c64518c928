"""Sessions from NWB files: spike times binned into counts, position and running direction as labels.

An NWB file (Neurodata Without Borders, e.g. from the DANDI archive) keeps spike *times* in its
``units`` table and the animal's position as a ``SpatialSeries`` sampled on its own clock. This
module puts both on one grid of ``bin_seconds`` bins, laid from time 0 of the file (bin k covers
[k·w, (k+1)·w)), and returns the ``(neural, labels)`` pair every other session source gives:
spike counts (T, N) and [position in m, right flag, left flag] (T, 3).

A bin is kept only where both exist: its centre lies within the units' observed range (their
``obs_intervals`` when the table has them, else the first to the last spike's bin), within the position
series' (finite) samples, and within the selected epochs when the config names some. Kept bins
are concatenated in time order, like CEBRA concatenates trials.

Running direction, as the simulator defines it: ``right`` = position increasing along the track
axis, ``left`` = decreasing, from the sign of the velocity of the Gaussian-smoothed position; while
the animal is slower than ``MIN_SPEED`` the flag keeps the direction of its last run (exactly one
flag is 1 in every bin). Note that the published rats' files fix "right" by the room, not by the
position axis: buddy's flags are the reverse of this definition.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cebra_core.sessions.rats import BIN_SECONDS
from cebra_core.sessions.validation import session_error, validate_session

VELOCITY_SMOOTHING_S = 0.1  # s, sigma of the Gaussian smoothing the position before its velocity
MIN_SPEED = 0.02  # m/s; slower counts as standing still (the flag keeps the last run's direction)
METRES_PER_UNIT = {
    "m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
    "cm": 0.01, "centimeter": 0.01, "centimeters": 0.01, "centimetre": 0.01, "centimetres": 0.01,
    "mm": 0.001, "millimeter": 0.001, "millimeters": 0.001, "millimetre": 0.001, "millimetres": 0.001,
}
DEFAULT_INTERVALS = "epochs"  # the intervals table epochs: selects from when it names none


def running_direction(position: np.ndarray, bin_seconds: float = BIN_SECONDS) -> np.ndarray:
    """Right-running flag (T,) bool of an evenly binned track position (m): see the module docstring."""
    sigma = VELOCITY_SMOOTHING_S / bin_seconds  # in bins
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    padded = np.pad(position, half, mode="edge")
    smooth = np.convolve(padded, kernel / kernel.sum(), mode="valid")
    velocity = np.gradient(smooth, bin_seconds) if len(smooth) > 1 else np.zeros_like(smooth)
    moving = np.abs(velocity) > MIN_SPEED
    if not moving.any():
        return np.ones(len(position), dtype=bool)
    # Index of the last moving bin at or before each bin; the still bins before the first run take its direction.
    last = np.maximum.accumulate(np.where(moving, np.arange(len(position)), -1))
    last[last < 0] = np.argmax(moving)
    return velocity[last] > 0


def _series_path(io, series) -> str:
    """The series' path inside the file, e.g. processing/behavior/Position/position."""
    return io.manager.get_builder(series).path.removeprefix("root/")


def _time_series(io, nwbfile) -> dict[str, object]:
    """Every TimeSeries in the file, by path."""
    from pynwb import TimeSeries

    return {_series_path(io, obj): obj for obj in nwbfile.objects.values() if isinstance(obj, TimeSeries)}


def _position_series(io, nwbfile, wanted: str | None, path, session):
    from pynwb.behavior import SpatialSeries

    series = _time_series(io, nwbfile)
    spatial = {name: s for name, s in series.items() if isinstance(s, SpatialSeries)}
    if not spatial:
        others = ", ".join(f"{name} ({type(s).__name__})" for name, s in sorted(series.items())) or "no time series at all"
        raise session_error(path, session, f"has no position (no SpatialSeries); the file has: {others}")
    if wanted is not None:
        key = wanted.strip("/")
        if key not in spatial:
            raise session_error(
                path, session,
                f"has no SpatialSeries at position: {wanted!r}; its SpatialSeries are: {', '.join(sorted(spatial))}",
            )
        return key, spatial[key]
    if len(spatial) > 1:
        raise session_error(
            path, session,
            f"has {len(spatial)} SpatialSeries: {', '.join(sorted(spatial))}; name one with the session's "
            "position: key in the config",
        )
    return next(iter(spatial.items()))


def _track_position(series, name: str, track_axis: int | None, path, session) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (S,), position along the track in m (S,)) of a SpatialSeries."""
    data = np.asarray(series.data[:], dtype=np.float64)
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim == 2:
        if track_axis is None:
            raise session_error(
                path, session,
                f"position {name} is {data.shape[1]}-D (shape {data.shape}); set track_axis (0 to "
                f"{data.shape[1] - 1}: the column that runs along the track) for this session in the config",
            )
        if not 0 <= track_axis < data.shape[1]:
            raise session_error(path, session, f"track_axis {track_axis} is out of range for position {name} of shape {data.shape}")
        data = data[:, track_axis]
    elif data.ndim != 1:
        raise session_error(path, session, f"position {name} has shape {data.shape}; expected (time,) or (time, axes)")
    unit = str(series.unit).strip().lower()
    if unit not in METRES_PER_UNIT:
        raise session_error(
            path, session,
            f"position {name} is in unit {series.unit!r}; cannot convert it to metres (known: m, cm, mm)",
        )
    metres = (data * series.conversion + getattr(series, "offset", 0.0)) * METRES_PER_UNIT[unit]
    times = np.asarray(series.get_timestamps(), dtype=np.float64)
    if len(times) != len(metres):
        raise session_error(path, session, f"position {name} has {len(metres)} samples but {len(times)} timestamps")
    if len(times) > 1 and not (np.diff(times) > 0).all():
        raise session_error(path, session, f"the timestamps of position {name} are not increasing")
    return times, metres


def _spike_times(nwbfile, bin_seconds: float, path, session) -> tuple[list[np.ndarray], tuple[float, float]]:
    """Each unit's spike times (s) and the time range the units were observed in.

    That range is the units' ``obs_intervals`` when the table has them, else from the start of the
    first spike's bin to the end of the last spike's bin.
    """
    units = nwbfile.units
    if units is None:
        raise session_error(path, session, "has no units table (spike times are read from /units)")
    if len(units) == 0:
        raise session_error(path, session, "its units table is empty (no units)")
    if "spike_times" not in units.colnames:
        raise session_error(path, session, f"its units table has no spike_times column (columns: {', '.join(units.colnames)})")
    index = units["spike_times"]
    flat = np.asarray(index.target.data[:], dtype=np.float64)
    per_unit = np.split(flat, np.asarray(index.data[:], dtype=np.int64)[:-1])
    if flat.size == 0:
        raise session_error(path, session, f"its {len(units)} units have no spike times at all")
    ids = np.asarray(units.id.data[:])
    for i, times in enumerate(per_unit):
        if not np.isfinite(times).all():
            raise session_error(path, session, f"unit {ids[i]} (row {i}) has NaN/inf spike times")
        if times.size and times.min() < 0:
            raise session_error(path, session, f"unit {ids[i]} (row {i}) has negative spike times (min {times.min():g} s)")
        backwards = np.flatnonzero(np.diff(times) < 0)
        if backwards.size:
            k = int(backwards[0])
            raise session_error(
                path, session,
                f"unit {ids[i]} (row {i}) has unsorted spike times ({times[k + 1]:g} s after {times[k]:g} s "
                f"at spike {k + 1})",
            )
    if "obs_intervals" in units.colnames:
        observed = np.asarray(units["obs_intervals"].target.data[:], dtype=np.float64).reshape(-1, 2)
        return per_unit, (float(observed[:, 0].min()), float(observed[:, 1].max()))
    return per_unit, (
        float(np.floor(flat.min() / bin_seconds) * bin_seconds),
        float((np.floor(flat.max() / bin_seconds) + 1) * bin_seconds),
    )


def _selected_intervals(nwbfile, epochs: dict | None, path, session) -> np.ndarray | None:
    """(K, 2) start/stop times of the rows of the chosen intervals table (and tags), or None for all time."""
    if epochs is None:
        return None
    name = epochs.get("table", DEFAULT_INTERVALS)
    tables = dict(nwbfile.intervals) if nwbfile.intervals else {}
    if name not in tables:
        raise session_error(
            path, session,
            f"has no intervals table {name!r} (epochs: table:); it has: {', '.join(sorted(tables)) or 'none'}",
        )
    table = tables[name]
    bounds = np.stack([np.asarray(table["start_time"].data[:]), np.asarray(table["stop_time"].data[:])], axis=1)
    tags = epochs.get("tags")
    if tags is not None:
        if "tags" not in table.colnames:
            raise session_error(path, session, f"intervals table {name!r} has no tags column (columns: {', '.join(table.colnames)})")
        row_tags = [set(np.atleast_1d(t).astype(str)) for t in table["tags"][:]]
        keep = np.array([bool(t & set(tags)) for t in row_tags], dtype=bool)
        if not keep.any():
            found = sorted(set().union(*row_tags)) if row_tags else []
            raise session_error(
                path, session,
                f"no rows of intervals table {name!r} have the tags {list(tags)}; its tags are: {', '.join(found) or 'none'}",
            )
        bounds = bounds[keep]
    if len(bounds) == 0:
        raise session_error(path, session, f"intervals table {name!r} has no rows")
    return bounds.astype(np.float64)


def read_nwb(
    path: str | os.PathLike,
    session: str | None = None,
    *,
    bin_seconds: float = BIN_SECONDS,
    position: str | None = None,
    track_axis: int | None = None,
    epochs: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read one NWB session: (spike counts (T, N) float32, labels [position m, right, left] (T, 3) float32).

    ``position`` is the SpatialSeries' path in the file (default: its only one); ``track_axis`` the
    column along the track of a 2-D/3-D position; ``epochs`` ``{"table": "epochs" | "trials" | …,
    "tags": [...]}`` keeps only the bins inside that table's rows (with one of the tags).
    """
    from pynwb import NWBHDF5IO

    path = Path(path)
    session = session or path.stem
    if not bin_seconds > 0:
        raise session_error(path, session, f"bin_seconds must be > 0, got {bin_seconds}")
    io = None
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        nwbfile = io.read()
    except Exception as err:  # not HDF5, not NWB, or an unreadable extension
        if io is not None:
            io.close()
        raise session_error(path, session, f"cannot be read as an NWB file ({type(err).__name__}: {err})") from err
    with io:
        spikes, (spike_start, spike_end) = _spike_times(nwbfile, bin_seconds, path, session)
        name, series = _position_series(io, nwbfile, position, path, session)
        times, metres = _track_position(series, name, track_axis, path, session)
        intervals = _selected_intervals(nwbfile, epochs, path, session)

    finite = np.isfinite(metres)
    if not finite.any():
        raise session_error(path, session, f"position {name} has no finite samples")
    start = max(spike_start, times[finite][0])
    end = min(spike_end, times[finite][-1])
    if end < start:
        raise session_error(
            path, session,
            f"spikes ({spike_start:g}–{spike_end:g} s) and position {name} "
            f"({times[finite][0]:g}–{times[finite][-1]:g} s) do not overlap in time",
        )
    # Bins whose centre (k + 0.5)·w lies in [start, end]; the tolerance absorbs float rounding of k·w.
    first = int(np.ceil(start / bin_seconds - 0.5 - 1e-9))
    last = int(np.floor(end / bin_seconds - 0.5 + 1e-9))
    if last < first:
        raise session_error(path, session, f"spikes and position overlap for only {end - start:g} s, less than one bin")
    centres = (np.arange(first, last + 1) + 0.5) * bin_seconds  # (T,)
    track = np.interp(centres, times[finite], metres[finite])  # (T,) m
    right = running_direction(track, bin_seconds)

    keep = np.interp(centres, times, (~finite).astype(np.float64)) == 0  # no missing sample around the bin
    if intervals is not None:
        keep &= ((centres[:, None] >= intervals[:, 0]) & (centres[:, None] < intervals[:, 1])).any(axis=1)
    if not keep.any():
        raise session_error(path, session, "no time bins are left inside the selected epochs with both spikes and position")

    row = np.where(keep, np.cumsum(keep) - 1, -1)  # each grid bin's row in the table, -1 if dropped
    counts = np.zeros((int(keep.sum()), len(spikes)), dtype=np.float32)  # (T, N)
    for unit, unit_times in enumerate(spikes):
        bins = np.floor(unit_times / bin_seconds).astype(np.int64) - first
        rows = row[bins[(bins >= 0) & (bins < len(centres))]]
        counts[:, unit] = np.bincount(rows[rows >= 0], minlength=len(counts))
    labels = np.stack([track, right, ~right], axis=1)[keep]  # (T, 3)
    return validate_session(counts, labels, session=session, source=path)

