"""Sessions from NWB files: neural data and the declared label columns on one grid of time bins.

An NWB file (Neurodata Without Borders, e.g. from the DANDI archive) keeps spike *times* in its
``units`` table, imaging traces in ``RoiResponseSeries`` and behaviour (position, speed, trials …)
as time series and intervals tables, each on its own clock. This module puts them on one grid of
``bin_seconds`` bins, laid from time 0 of the file (bin k covers [k·w, (k+1)·w), centre
(k + ½)·w), and returns the validated ``(neural, labels)`` pair every other session source gives:
neural (T, N) float32 and the declared label columns (`LabelSpec`) as a DataFrame.

**Neural data** (option ``neural``):

- ``units`` (default): each unit's spike times counted per bin: signal kind ``counts``. The units
  are observed over their ``obs_intervals`` when the table has them, else from the start of the
  first spike's bin to the end of the last spike's bin.
- ``ophys``: a ``RoiResponseSeries`` (``roi_series``: its path; default the file's only one inside a
  ``Fluorescence`` or ``DfOverF`` container), one column per ROI: signal kind ``continuous``.
  Resampled to the bins by the imaging rate (the median frame interval ``dt``):

  * ``dt < bin_seconds`` (more than one frame per bin): the **mean of the frames inside each bin**.
    A bin's value is then its average signal, as a count is its total: every frame is used, frame
    noise is averaged down, and no frame is picked at an arbitrary phase. A bin that holds no frame
    (a dropped frame) takes the linear interpolation at its centre.
  * ``dt >= bin_seconds`` (at most one frame per bin, e.g. 30 Hz imaging in 25 ms bins): **linear
    interpolation at the bin centres**. A mean would leave most bins empty or repeat a frame as a
    staircase; calcium transients decay over hundreds of ms, much slower than the frame interval,
    so the trace between two frames is close to the straight line between them, and
    interpolation adds nothing faster than the imaging resolved.

  Values are ``data · conversion + offset`` (the series' own unit: ΔF/F, a.u., …).

**Labels** (the declared columns, `LabelSpec`):

- *The rat track* (``spec.is_rat_track``: [position, right, left]): a SpatialSeries (``position``:
  its path, default the file's only one) gives the position along the track (``track_axis``: its
  column in a 2-D/3-D series), in metres; ``right``/``left`` are the running direction: ``right`` =
  position increasing along the track axis, ``left`` = decreasing, from the sign of the velocity of
  the Gaussian-smoothed position; while the animal is slower than ``MIN_SPEED`` the flag keeps the
  direction of its last run (exactly one flag is 1 in every bin). Note that the published rats'
  files fix "right" by the room, not by the position axis: buddy's flags are the reverse of this
  definition.
- *Any other labels*: every declared column names its source.

  * ``position_columns``: one declared continuous column per axis of the SpatialSeries
    ``position`` (e.g. ``[x, y]``; as many as the series has axes), in metres (m, cm, mm convert).
  * ``series``: ``{column: path}``, a declared continuous column from any other 1-D TimeSeries
    (speed, head direction …), in its own unit (``data · conversion + offset``).
  * ``intervals``: ``{column, table, field, classes}``: the discrete column (default: the declared
    one) from the ``field`` column of the intervals table ``table`` (default ``trials``): each bin
    whose centre lies in a row [start_time, stop_time) gets that row's class; bins outside every
    row of that table are dropped. Integer values (ints, bools, integral floats) are the classes
    themselves and must be >= 0; strings become classes 0 … K-1 in the sorted order of the distinct
    strings in the whole table (Python string order: "10" < "9"). ``classes: [v0, v1, …]`` maps
    the listed values to 0, 1, … instead, in that order (for strings or integers; every value in
    the table must be listed): give it when sessions do not all hold every condition, so one
    condition is one class in every session. Rows that overlap must agree on the class.

  Continuous samples are interpolated linearly to the bin centres.

A bin is kept only where everything exists: its centre lies within the neural data's range and
within every continuous label source's range, no missing (NaN) sample is next to it, it is inside
a row of the ``intervals`` table when a discrete column comes from one, and inside the selected
``epochs`` when the config names some. Kept bins are concatenated in time order, like CEBRA
concatenates trials. Every problem is a `SessionError` naming the session, the file, the option or
column and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cebra_core.sessions.rats import BIN_SECONDS
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.validation import session_error, validate_session

VELOCITY_SMOOTHING_S = 0.1  # s, sigma of the Gaussian smoothing the position before its velocity
MIN_SPEED = 0.02  # m/s; slower counts as standing still (the flag keeps the last run's direction)
METRES_PER_UNIT = {
    "m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
    "cm": 0.01, "centimeter": 0.01, "centimeters": 0.01, "centimetre": 0.01, "centimetres": 0.01,
    "mm": 0.001, "millimeter": 0.001, "millimeters": 0.001, "millimetre": 0.001, "millimetres": 0.001,
}
DEFAULT_INTERVALS = "epochs"  # the intervals table epochs: selects from when it names none
DEFAULT_LABEL_TABLE = "trials"  # the intervals table intervals: reads a discrete label from when it names none
NEURAL_SOURCES = {"units": "counts", "ophys": "continuous"}  # neural: option -> the signal kind it gives
DEFAULT_NEURAL = "units"
OPHYS_CONTAINERS = ("Fluorescence", "DfOverF")  # where neural: ophys finds its RoiResponseSeries by default
INTERVALS_KEYS = ("column", "table", "field", "classes")


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


def neural_signal(neural: str = DEFAULT_NEURAL) -> str:
    """The signal kind (`cebra_core.sessions.validation.SIGNAL_KINDS`) a ``neural`` source gives."""
    if neural not in NEURAL_SOURCES:
        raise ValueError(f"neural: {neural!r} is not a neural source; use {' or '.join(NEURAL_SOURCES)}")
    return NEURAL_SOURCES[neural]


# ------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class _Intervals:
    """The intervals option, checked: the discrete column, the table and its field, the value order."""

    column: str
    table: str
    field: str
    classes: tuple | None


def _names(values) -> str:
    return ", ".join(map(str, values)) or "none"


def _label_options(spec: LabelSpec, position, track_axis, position_columns, series, intervals, path, session):
    """Check the label options against the declared columns, before the file is opened:
    (position_columns tuple, series dict, _Intervals or None)."""

    def fail(problem):
        return session_error(path, session, problem)

    if spec.is_rat_track:
        given = [name for name, value in (("position_columns", position_columns), ("series", series),
                                          ("intervals", intervals)) if value]
        if given:
            raise fail(
                f"{', '.join(given)}: the labels are the rat track [position, right, left] (position along "
                "track_axis, running direction from its velocity), which take no other sources; declare your own "
                "label columns in the config's labels key to read them from these options"
            )
        return (), {}, None
    declared = f"declared: continuous {list(spec.continuous)}, discrete {list(spec.discrete)}; the labels key"
    if track_axis is not None:
        raise fail(
            f"track_axis: applies to the rat track labels [position, right, left] only; these labels are {declared}: "
            "name each axis of the position with position_columns"
        )

    def continuous_column(option: str, column) -> str:
        if not isinstance(column, str) or column not in spec.columns:
            raise fail(f"{option}: {column!r} is not a declared label column ({declared})")
        if column not in spec.continuous:
            raise fail(f"{option}: {column!r} is the discrete label column; a discrete label comes from intervals")
        return column

    if position_columns is None:
        columns: tuple[str, ...] = ()
        if position is not None:
            raise fail(f"position: names a SpatialSeries ({position!r}), but position_columns does not name its "
                       f"axes as label columns (e.g. position_columns: [x, y]; {declared})")
    else:
        if isinstance(position_columns, str) or not isinstance(position_columns, Sequence) or not position_columns:
            raise fail(f"position_columns: give a list of label columns, one per axis of the position "
                       f"(e.g. [x, y]), got {position_columns!r}")
        columns = tuple(continuous_column("position_columns", c) for c in position_columns)
    sources = {column: "position_columns" for column in columns}
    if len(sources) < len(columns):
        raise fail(f"position_columns: names a column twice: {list(columns)}")
    if series is None:
        series = {}
    if not isinstance(series, Mapping):
        raise fail(f"series: give a mapping {{label column: TimeSeries path}}, got {series!r}")
    for column, where in series.items():
        continuous_column("series", column)
        if column in sources:
            raise fail(f"series: {column!r} is already read from {sources[column]}; a column has one source")
        if not isinstance(where, str) or not where.strip("/"):
            raise fail(f"series.{column}: give the path of a TimeSeries in the file, got {where!r}")
        sources[column] = "series"
    chosen = None
    if intervals is not None:
        if not isinstance(intervals, Mapping):
            raise fail(f"intervals: give a mapping {{column, table, field, classes}}, got {intervals!r}")
        unknown = sorted(set(intervals) - set(INTERVALS_KEYS))
        if unknown:
            raise fail(f"intervals: unknown key(s) {unknown}; it takes {', '.join(INTERVALS_KEYS)}")
        if not spec.discrete:
            raise fail(f"intervals: gives a discrete label column, but none is declared ({declared})")
        column = intervals.get("column") or spec.discrete[0]
        if column != spec.discrete[0]:
            raise fail(f"intervals.column: {column!r} is not the declared discrete label column ({declared})")
        field = intervals.get("field")
        if not isinstance(field, str) or not field:
            raise fail("intervals.field: name the column of the intervals table that holds each row's class "
                       "(e.g. condition)")
        table = intervals.get("table") or DEFAULT_LABEL_TABLE
        classes = intervals.get("classes")
        if classes is not None:
            if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
                raise fail(f"intervals.classes: give the list of {field} values in class order, got {classes!r}")
            keys = [_class_key(v) for v in classes]
            if len(set(keys)) < len(keys):
                raise fail(f"intervals.classes: lists a value twice: {list(classes)}")
            classes = tuple(classes)
        chosen = _Intervals(column, str(table), field, classes)
        sources[column] = "intervals"
    missing = [c for c in spec.columns if c not in sources]
    if missing:
        raise fail(
            f"label column(s) {missing} have no source in the file: name a continuous column in position_columns "
            f"(an axis of the position SpatialSeries) or series ({{column: TimeSeries path}}), the discrete one in "
            f"intervals ({{table, field}}) ({declared})"
        )
    return columns, dict(series), chosen


# ------------------------------------------------------------------------------------ time series


def _series_path(io, series) -> str:
    """The series' path inside the file, e.g. processing/behavior/Position/position."""
    return io.manager.get_builder(series).path.removeprefix("root/")


def _time_series(io, nwbfile) -> dict[str, object]:
    """Every TimeSeries in the file, by path."""
    from pynwb import TimeSeries

    return {_series_path(io, obj): obj for obj in nwbfile.objects.values() if isinstance(obj, TimeSeries)}


def _listing(series: Mapping) -> str:
    return ", ".join(f"{name} ({type(s).__name__})" for name, s in sorted(series.items())) or "no time series at all"


def _position_series(io, nwbfile, wanted: str | None, path, session):
    from pynwb.behavior import SpatialSeries

    series = _time_series(io, nwbfile)
    spatial = {name: s for name, s in series.items() if isinstance(s, SpatialSeries)}
    if not spatial:
        raise session_error(path, session, f"has no position (no SpatialSeries); the file has: {_listing(series)}")
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


def _timestamps(series, what: str, samples: int, path, session) -> np.ndarray:
    times = np.asarray(series.get_timestamps(), dtype=np.float64)
    if len(times) != samples:
        raise session_error(path, session, f"{what} has {samples} samples but {len(times)} timestamps")
    if len(times) > 1 and not (np.diff(times) > 0).all():
        raise session_error(path, session, f"the timestamps of {what} are not increasing")
    return times


def _scaled(series, data: np.ndarray) -> np.ndarray:
    """The stored data in the series' unit: data · conversion + offset."""
    return data * series.conversion + getattr(series, "offset", 0.0)


def _metres(series, data: np.ndarray, name: str, path, session) -> np.ndarray:
    unit = str(series.unit).strip().lower()
    if unit not in METRES_PER_UNIT:
        raise session_error(
            path, session,
            f"position {name} is in unit {series.unit!r}; cannot convert it to metres (known: m, cm, mm)",
        )
    return _scaled(series, data) * METRES_PER_UNIT[unit]


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
    metres = _metres(series, data, name, path, session)
    return _timestamps(series, f"position {name}", len(metres), path, session), metres


def _position_axes(series, name: str, columns: tuple[str, ...], path, session) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (S,), position in m (S, D)) of a SpatialSeries whose D axes position_columns names."""
    data = np.asarray(series.data[:], dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] != len(columns):
        width = f"{data.shape[1]} ax{'i' if data.shape[1] == 1 else 'e'}s" if data.ndim == 2 else f"{data.ndim} dimensions"
        raise session_error(
            path, session,
            f"position_columns: names {len(columns)} column{'s' if len(columns) != 1 else ''} {list(columns)}, but "
            f"position {name} has {width} (shape {data.shape}); name one label column per axis",
        )
    metres = _metres(series, data, name, path, session)
    return _timestamps(series, f"position {name}", len(metres), path, session), metres


def _label_series(io, nwbfile, column: str, wanted: str, path, session) -> tuple[str, np.ndarray, np.ndarray]:
    """(path, timestamps (S,), values (S,)) of the 1-D TimeSeries series.<column> names."""
    series = _time_series(io, nwbfile)
    key = wanted.strip("/")
    if key not in series:
        raise session_error(path, session, f"series.{column}: has no TimeSeries at {wanted!r}; its time series are: "
                                           f"{_listing(series)}")
    found = series[key]
    data = np.asarray(found.data[:])
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim != 1:
        raise session_error(
            path, session,
            f"series.{column}: {key} has shape {data.shape}; a label column needs a 1-D series (time,) (a "
            "SpatialSeries of several axes goes in position and position_columns)",
        )
    if not np.issubdtype(data.dtype, np.number) and data.dtype != bool:
        raise session_error(path, session, f"series.{column}: {key} holds {data.dtype} values, not numbers")
    values = _scaled(found, data.astype(np.float64))
    return key, _timestamps(found, f"series.{column} {key}", len(values), path, session), values


# ------------------------------------------------------------------------------------ neural data


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


def _roi_series(io, nwbfile, wanted: str | None, path, session) -> tuple[str, np.ndarray, np.ndarray]:
    """(path, timestamps (S,), traces (S, ROIs)) of the RoiResponseSeries neural: ophys reads."""
    from pynwb.ophys import RoiResponseSeries

    every = {_series_path(io, obj): obj for obj in nwbfile.objects.values() if isinstance(obj, RoiResponseSeries)}
    if wanted is not None:
        key = wanted.strip("/")
        if key not in every:
            raise session_error(path, session, f"roi_series: has no RoiResponseSeries at {wanted!r}; its "
                                               f"RoiResponseSeries are: {_names(sorted(every))}")
    else:
        found = {name: s for name, s in every.items() if type(s.parent).__name__ in OPHYS_CONTAINERS}
        if not found:
            raise session_error(
                path, session,
                f"neural: ophys reads a RoiResponseSeries in a {' or '.join(OPHYS_CONTAINERS)} container, but "
                f"the file has none; its time series are: {_listing(_time_series(io, nwbfile))} (name another "
                "RoiResponseSeries with roi_series, or read spike units with neural: units)",
            )
        if len(found) > 1:
            raise session_error(
                path, session,
                f"neural: ophys: the file has {len(found)} RoiResponseSeries in {' or '.join(OPHYS_CONTAINERS)} "
                f"containers: {', '.join(sorted(found))}; name one with the session's roi_series: key in the config",
            )
        key = next(iter(found))
    series = every[key]
    data = np.asarray(series.data[:])
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] == 0 or not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise session_error(path, session, f"roi_series {key} has shape {data.shape} and dtype {data.dtype}; "
                                           "expected numbers of shape (time, ROIs)")
    traces = _scaled(series, data.astype(np.float64))
    times = _timestamps(series, f"roi_series {key}", len(traces), path, session)
    if len(times) < 2:
        raise session_error(path, session, f"roi_series {key} has {len(times)} frame(s); resampling needs at least 2")
    return key, times, traces


def _interpolate(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of the rows of values (S, N) at the times ``at`` (inside [times[0], times[-1]]);
    a NaN sample makes the bins next to it NaN."""
    j = np.clip(np.searchsorted(times, at, side="right") - 1, 0, len(times) - 2)
    frac = ((at - times[j]) / (times[j + 1] - times[j]))[:, None]
    return values[j] * (1.0 - frac) + values[j + 1] * frac


def resample_frames(times: np.ndarray, traces: np.ndarray, first: int, n_bins: int, bin_seconds: float) -> np.ndarray:
    """Imaging frames (S,) / (S, N) to the bins ``first … first + n_bins - 1`` (n_bins, N): the mean of the
    frames in each bin when the frames are faster than the bins, else linear interpolation at the bin
    centres (the module docstring says why); a bin with a NaN frame in it or next to it is NaN."""
    centres = (first + np.arange(n_bins) + 0.5) * bin_seconds
    out = _interpolate(times, traces, centres)
    if np.median(np.diff(times)) < bin_seconds * (1 - 1e-6):  # faster than the bins, beyond float rounding
        index = np.floor(times / bin_seconds).astype(np.int64) - first  # non-decreasing: times increase
        inside = (index >= 0) & (index < n_bins)
        if inside.any():
            bins, starts, counts = np.unique(index[inside], return_index=True, return_counts=True)
            out[bins] = np.add.reduceat(traces[inside], starts, axis=0) / counts[:, None]
    return out


# ------------------------------------------------------------------------------------ intervals


def _inside_rows(centres: np.ndarray, bounds: np.ndarray) -> list[slice]:
    """For each row [start, stop) of bounds (K, 2): the slice of the (sorted) centres inside it."""
    lo = np.searchsorted(centres, bounds[:, 0], side="left")
    hi = np.searchsorted(centres, bounds[:, 1], side="left")
    return [slice(int(a), int(b)) for a, b in zip(lo, hi)]


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


def _class_key(value):
    """A class value as a dict key: numbers by value (1 == 1.0 == True), strings as text."""
    if isinstance(value, bytes):
        return ("s", value.decode())
    if isinstance(value, (str, np.str_)):
        return ("s", str(value))
    try:
        return ("n", float(value))
    except (TypeError, ValueError):
        return ("?", repr(value))


def _row_classes(values: np.ndarray, option: _Intervals, path, session) -> np.ndarray:
    """Each row's class (K,) int64 from the field's values: see the module docstring."""
    where = f"intervals.field: column {option.field!r} of intervals table {option.table!r}"
    if values.dtype.kind in "OSU":
        values = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
        if not all(isinstance(v, str) for v in values):
            odd = next(i for i, v in enumerate(values) if not isinstance(v, str))
            raise session_error(path, session, f"{where} mixes strings and other values (row {odd}: {values[odd]!r})")
        strings = True
    elif values.dtype.kind in "biuf":
        strings = False
        if values.dtype.kind == "f" and option.classes is None:
            fraction = ~np.isfinite(values) | (values % 1 != 0)
            if fraction.any():
                row = int(np.argmax(fraction))
                raise session_error(
                    path, session,
                    f"{where} holds non-integer values (row {row}: {values[row]:g}); a class is an integer >= 0 or a "
                    "string (strings become classes 0 … K-1 in sorted order)",
                )
    else:
        raise session_error(path, session, f"{where} holds {values.dtype} values; a class is an integer or a string")
    if option.classes is not None:
        order = {_class_key(v): k for k, v in enumerate(option.classes)}
        keys = [_class_key(v) for v in values]
        unlisted = sorted({str(v) for v, key in zip(values, keys) if key not in order})
        if unlisted:
            raise session_error(
                path, session,
                f"intervals.classes: {list(option.classes)} does not list the value(s) {unlisted} of column "
                f"{option.field!r} of intervals table {option.table!r}; list every value, in class order",
            )
        return np.array([order[key] for key in keys], dtype=np.int64)
    if strings:
        names = sorted(set(values))
        order = {name: k for k, name in enumerate(names)}
        return np.array([order[v] for v in values], dtype=np.int64)
    classes = values.astype(np.int64)
    if (classes < 0).any():
        row = int(np.argmax(classes < 0))
        raise session_error(
            path, session,
            f"{where} holds a negative value (row {row}: {classes[row]}); classes are 0, 1, 2, …: list the values in "
            "class order with intervals: classes: to map them",
        )
    return classes


def _label_intervals(nwbfile, option: _Intervals, path, session) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bounds (K, 2), classes (K,) int64, the field's values (K,)) of the rows of the intervals option's table."""
    from hdmf.common import VectorIndex

    tables = dict(nwbfile.intervals) if nwbfile.intervals else {}
    if option.table not in tables:
        raise session_error(
            path, session,
            f"intervals.table: has no intervals table {option.table!r}; it has: {_names(sorted(tables))}",
        )
    table = tables[option.table]
    if len(table) == 0:
        raise session_error(path, session, f"intervals.table: intervals table {option.table!r} has no rows")
    if option.field not in table.colnames:
        raise session_error(
            path, session,
            f"intervals.field: intervals table {option.table!r} has no column {option.field!r} (columns: "
            f"{', '.join(table.colnames)})",
        )
    column = table[option.field]
    if isinstance(column, VectorIndex):
        raise session_error(path, session, f"intervals.field: column {option.field!r} of intervals table "
                                           f"{option.table!r} holds several values per row; a class is one value")
    values = np.asarray(column.data[:])
    if values.ndim != 1:
        raise session_error(path, session, f"intervals.field: column {option.field!r} of intervals table "
                                           f"{option.table!r} has shape {values.shape}; a class is one value per row")
    bounds = np.stack([np.asarray(table["start_time"].data[:]), np.asarray(table["stop_time"].data[:])], axis=1)
    return bounds.astype(np.float64), _row_classes(values, option, path, session), values


def _bin_classes(centres, bounds, classes, values, option: _Intervals, path, session) -> np.ndarray:
    """Each bin's class (T,) int64, -1 outside every row; rows that overlap must agree."""
    out = np.full(len(centres), -1, dtype=np.int64)
    owner = np.full(len(centres), -1, dtype=np.int64)
    for row, inside in enumerate(_inside_rows(centres, bounds)):
        current = out[inside]
        clash = (current >= 0) & (current != classes[row])
        if clash.any():
            k = inside.start + int(np.argmax(clash))
            raise session_error(
                path, session,
                f"intervals: rows {owner[k]} and {row} of intervals table {option.table!r} overlap at {centres[k]:g} s "
                f"with different {option.field} values ({values[owner[k]]!r} and {values[row]!r})",
            )
        out[inside] = classes[row]
        owner[inside] = row
    return out


# ------------------------------------------------------------------------------------ reading


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def read_nwb(
    path: str | os.PathLike,
    session: str | None = None,
    *,
    bin_seconds: float = BIN_SECONDS,
    position: str | None = None,
    track_axis: int | None = None,
    position_columns: Sequence[str] | None = None,
    series: Mapping[str, str] | None = None,
    intervals: Mapping | None = None,
    epochs: dict | None = None,
    neural: str = DEFAULT_NEURAL,
    roi_series: str | None = None,
    labels: LabelSpec = LabelSpec(),
    signal: str | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Read and validate one NWB session: (neural (T, N) float32, the declared ``labels`` columns as
    a DataFrame: continuous float32, discrete int64). The module docstring says what is read how.

    ``bin_seconds``: the bin width (s). ``position``: the SpatialSeries' path in the file (default:
    its only one); ``track_axis``: the rat track's column of a 2-D/3-D position;
    ``position_columns``: the label column of each axis of the position (other labels than the rat
    track); ``series``: ``{column: TimeSeries path}``; ``intervals``: ``{column, table (default
    trials), field, classes}``, the discrete label per bin; ``epochs``: ``{"table": "epochs" |
    "trials" | …, "tags": [...]}`` keeps only the bins inside that table's rows (with one of the
    tags); ``neural``: ``units`` (spike counts) or ``ophys`` (``roi_series``, default the only
    RoiResponseSeries in a Fluorescence/DfOverF container). ``signal``: the signal kind the config
    declares for the session; None takes the kind of ``neural`` (`NEURAL_SOURCES`: units -> counts,
    ophys -> continuous), another kind than that is an error.
    """
    from pynwb import NWBHDF5IO

    path = Path(path)
    session = session or path.stem
    if not bin_seconds > 0:
        raise session_error(path, session, f"bin_seconds must be > 0, got {bin_seconds}")
    if neural not in NEURAL_SOURCES:
        raise session_error(
            path, session,
            f"neural: {neural!r} is not a neural source; use units (the units table's spike times, counted per bin) "
            "or ophys (a RoiResponseSeries, resampled to the bins)",
        )
    kind = NEURAL_SOURCES[neural]
    if signal is not None and signal != kind:
        raise session_error(
            path, session,
            f"signals.{session}: {signal!r} does not match its NWB neural data: neural: {neural} gives a {kind} "
            f"signal; declare signals: {{{session}: {kind}}}"
            + (" (or read the units' spike counts with neural: units)" if kind == "counts" and signal == "continuous"
               else ""),
        )
    if roi_series is not None and neural != "ophys":
        raise session_error(path, session, f"roi_series: {roi_series!r} is read by neural: ophys only; neural is {neural}")
    columns, label_series, interval_option = _label_options(
        labels, position, track_axis, position_columns, series, intervals, path, session
    )
    io = None
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        nwbfile = io.read()
    except Exception as err:  # not HDF5, not NWB, or an unreadable extension
        if io is not None:
            io.close()
        raise session_error(path, session, f"cannot be read as an NWB file ({type(err).__name__}: {err})") from err
    sampled = []  # continuous label sources: (name for messages, timestamps (S,), values (S, D), columns (D,))
    with io:
        if neural == "units":
            spikes, (neural_start, neural_end) = _spike_times(nwbfile, bin_seconds, path, session)
            neural_name = "spikes"
        else:
            roi_name, frame_times, traces = _roi_series(io, nwbfile, roi_series, path, session)
            neural_name = f"roi_series {roi_name}"
            frames = np.isfinite(traces).all(axis=1)
            if not frames.any():
                raise session_error(path, session, f"{neural_name} has no frame without NaN/inf values")
            neural_start, neural_end = frame_times[frames][0], frame_times[frames][-1]
        if labels.is_rat_track:
            name, found = _position_series(io, nwbfile, position, path, session)
            times, metres = _track_position(found, name, track_axis, path, session)
            sampled.append((f"position {name}", times, metres[:, None], ("position",)))
        elif columns:
            name, found = _position_series(io, nwbfile, position, path, session)
            times, metres = _position_axes(found, name, columns, path, session)
            sampled.append((f"position {name}", times, metres, columns))
        for column, where in label_series.items():
            name, times, values = _label_series(io, nwbfile, column, where, path, session)
            sampled.append((f"series.{column} {name}", times, values[:, None], (column,)))
        selected = _selected_intervals(nwbfile, epochs, path, session)
        if interval_option is not None:
            rows, row_classes, row_values = _label_intervals(nwbfile, interval_option, path, session)

    ranges = [(neural_name, neural_start, neural_end)]
    for name, times, values, _ in sampled:
        finite = np.isfinite(values).all(axis=1)
        if not finite.any():
            raise session_error(path, session, f"{name} has no finite samples")
        ranges.append((name, times[finite][0], times[finite][-1]))
    start = max(r[1] for r in ranges)
    end = min(r[2] for r in ranges)
    if end < start:
        raise session_error(
            path, session,
            f"{_joined([f'{name} ({a:g}–{b:g} s)' for name, a, b in ranges])} do not overlap in time",
        )
    # Bins whose centre (k + 0.5)·w lies in [start, end]; the tolerance absorbs float rounding of k·w.
    first = int(np.ceil(start / bin_seconds - 0.5 - 1e-9))
    last = int(np.floor(end / bin_seconds - 0.5 + 1e-9))
    names = _joined([r[0] for r in ranges])
    if last < first:
        spans = "overlap" if len(ranges) > 1 else "span"
        raise session_error(path, session, f"{names} {spans} for only {end - start:g} s, less than one bin")
    centres = (np.arange(first, last + 1) + 0.5) * bin_seconds  # (T,)

    keep = np.ones(len(centres), dtype=bool)
    wanted = []  # what a kept bin must be, for the message when none is
    columns_at = {}
    for name, times, values, cols in sampled:
        finite = np.isfinite(values).all(axis=1)
        keep &= np.interp(centres, times, (~finite).astype(np.float64)) == 0  # no missing sample around the bin
        for j, column in enumerate(cols):
            columns_at[column] = np.interp(centres, times[finite], values[finite, j])
        if not finite.all():
            wanted.append(f"next to no missing (NaN) sample of {name}")
    if labels.is_rat_track:
        right = running_direction(columns_at["position"], bin_seconds)
        columns_at["right"], columns_at["left"] = right, ~right
    if neural == "ophys":
        resampled = resample_frames(frame_times, traces, first, len(centres), bin_seconds)  # (T, N)
        keep &= np.isfinite(resampled).all(axis=1)
        if not frames.all():
            wanted.append(f"free of NaN frames of {neural_name}")
    if selected is not None:
        inside = np.zeros(len(centres), dtype=bool)
        for rows_inside in _inside_rows(centres, selected):
            inside[rows_inside] = True
        keep &= inside
        wanted.append(f"inside the selected epochs (epochs: {dict(epochs)})")
    if interval_option is not None:
        classes = _bin_classes(centres, rows, row_classes, row_values, interval_option, path, session)
        keep &= classes >= 0
        columns_at[interval_option.column] = classes
        wanted.append(
            f"inside a row of intervals table {interval_option.table!r} (intervals:, rows from "
            f"{rows[:, 0].min():g} to {rows[:, 1].max():g} s)"
        )
    if not keep.any():
        raise session_error(
            path, session,
            f"no time bins are left: of the {len(centres)} bins where {names} overlap ({start:g}–{end:g} s), none is "
            f"{' and '.join(wanted) or 'left'}",
        )

    if neural == "units":
        row = np.where(keep, np.cumsum(keep) - 1, -1)  # each grid bin's row in the table, -1 if dropped
        data = np.zeros((int(keep.sum()), len(spikes)), dtype=np.float32)  # (T, N)
        for unit, unit_times in enumerate(spikes):
            bins = np.floor(unit_times / bin_seconds).astype(np.int64) - first
            rows_ = row[bins[(bins >= 0) & (bins < len(centres))]]
            data[:, unit] = np.bincount(rows_[rows_ >= 0], minlength=len(data))
    else:
        data = resampled[keep]
    table = pd.DataFrame({column: np.asarray(columns_at[column])[keep] for column in labels.columns})
    return validate_session(data, table, spec=labels, session=session, source=path, signal=kind)
