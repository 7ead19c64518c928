"""Are the sessions fit for every later step? Checked once, before any fit, so that nothing fails late.

`cebra_core.sessions.validation.validate_session` checks that a session is well-formed data (shapes,
numbers, its declared label columns, what its signal kind asks) when it is imported. This module
checks the sessions against what the configured fits and analyses will ask of them: enough time
bins for a batch, the model's receptive field, the time offset and the kNN decoder's training part;
every class of the discrete label in every session (multi-session sampling draws a positive of
the reference's class in every session); the consistency label's bins filled in every session; for
the rat track, positions in metres. Every problem of every session is reported at once, one line
each, naming the session, its file, the problem and the config key to change.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cebra_core.analysis.binning import EmptyBinError
from cebra_core.analysis.metrics import bin_embedding, label_consistency
from cebra_core.analysis.trials import TRIAL_SPLITS, TrialSplit
from cebra_core.engine.architectures import DEFAULT_ARCHITECTURE, architecture
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.validation import SessionError, session_signals, signal_problem

# A linear track longer than this is not a rat's: such positions are taken to be in centimetres
# (or another unit), and the decoding error, reported in the position's own unit, would read wrong.
MAX_POSITION_SPAN_M = 10.0


@dataclass(frozen=True)
class SessionNeeds:
    """What later steps need of every session; each field's config key is in `CONFIG_KEYS`."""

    batch_size: int  # samples per session in one training batch
    time_offsets: int  # time_delta positives: label differences over this many bins
    consistency_bins: int  # bin edges over the common position range (consistency score)
    decoding_neighbors: int  # k of the kNN decoder
    train_fraction: float  # the decoder is fitted on this first part of a session (1 - test fraction)
    alignment_top_k: int  # label neighbours per sample for the Procrustes alignment
    protocol: str = "contiguous"  # evaluation.protocol: trials cuts each session into CEBRA's trial split
    model_architecture: str = DEFAULT_ARCHITECTURE  # its receptive field: input samples behind one embedding row
    labels: dict | None = None  # the declared label columns ({continuous, discrete}); None: the rat track
    consistency_label: str | tuple[str, ...] = "position"  # the label the consistency score bins

    @property
    def receptive_field(self) -> int:
        return architecture(self.model_architecture).receptive_field

    @property
    def spec(self) -> LabelSpec:
        return LabelSpec.from_config(self.labels)


CONFIG_KEYS = {
    "batch_size": "cebra.batch_size",
    "time_offsets": "cebra.time_offsets",
    "consistency_bins": "analysis.consistency_bins",
    "decoding_neighbors": "analysis.decoding_neighbors",
    "train_fraction": "evaluation.test_fraction",
    "alignment_top_k": "analysis.alignment_top_k",
    "model_architecture": "cebra.model_architecture",
    "labels": "labels",
    "consistency_label": "analysis.consistency_label",
}


def session_problems(neural: np.ndarray, labels: pd.DataFrame, needs: SessionNeeds) -> list[str]:
    """Everything about one session that a later step would fail on or get wrong (empty: fit for use)."""
    length = len(neural)
    problems = []
    if length < needs.receptive_field:
        problems.append(
            f"{length} time bins are fewer than the model's receptive field of {needs.receptive_field} bins"
        )
    if length <= needs.time_offsets:
        problems.append(
            f"{length} time bins leave no label differences over {CONFIG_KEYS['time_offsets']}="
            f"{needs.time_offsets} bins (needs more than {needs.time_offsets})"
        )
    if needs.batch_size > length:
        problems.append(
            f"{CONFIG_KEYS['batch_size']}={needs.batch_size} is more than the session's {length} time bins: "
            f"every batch would draw each bin several times (sampling is with replacement) and the fit "
            f"slows down for nothing; set {CONFIG_KEYS['batch_size']} to at most {length}"
        )
    split = int(length * needs.train_fraction)
    if split < needs.decoding_neighbors or split == length:
        test_fraction = round(1 - needs.train_fraction, 6)
        problems.append(
            f"the kNN decoder is fitted on the first {split} of its {length} time bins "
            f"({CONFIG_KEYS['train_fraction']}={test_fraction}) and tested on the other {length - split}: "
            f"it needs at least {CONFIG_KEYS['decoding_neighbors']}={needs.decoding_neighbors} to fit and 1 to "
            f"test; lower {CONFIG_KEYS['decoding_neighbors']} or use a longer session"
        )
    if length < needs.alignment_top_k:
        problems.append(
            f"{length} time bins are fewer than {CONFIG_KEYS['alignment_top_k']}={needs.alignment_top_k} "
            "label neighbours for the alignment"
        )
    spec = needs.spec
    if needs.protocol == "trials":
        if not spec.is_rat_track:
            problems.append("evaluation.protocol trials cuts trials at the rat track's running-direction flag "
                            f"(labels position, right, left), but the labels are {list(spec.columns)}; use "
                            "evaluation.protocol contiguous")
        else:
            for split_no in range(TRIAL_SPLITS):
                try:
                    TrialSplit(split_no).parts(labels)
                except ValueError as err:  # names evaluation.protocol trials and what is missing
                    problems.append(str(err))
                    break
    if spec.is_rat_track:
        position = labels["position"].to_numpy()
        low, high = float(position.min()), float(position.max())
        if high - low > MAX_POSITION_SPAN_M:
            problems.append(
                f"positions span {low:g} to {high:g}, more than {MAX_POSITION_SPAN_M:g} m: they look like "
                "centimetres (or another unit); give the rat track's positions in metres"
            )
    return problems


def class_problems(sessions: Mapping[str, pd.DataFrame], column: str) -> list[str]:
    """A class of the discrete label present in some sessions and absent from others (multi-session
    sampling draws the positive of a reference in every session, of its class)."""
    present = {name: set(np.unique(labels[column]).tolist()) for name, labels in sessions.items()}
    everything = sorted(set().union(*present.values()))
    problems = []
    for klass in everything:
        missing = [name for name, classes in present.items() if klass not in classes]
        if missing:
            having = [name for name in sessions if name not in missing]
            problems.append(
                f"class {klass} of the discrete label {column!r} is in sessions {having} but not in {missing}: "
                f"multi-session sampling and the consistency score need every class in every session; leave "
                f"the class out of every session, or those sessions out"
            )
    return problems


def bin_problems(sessions: Mapping[str, pd.DataFrame], needs: SessionNeeds,
                 sources: Mapping[str, str | os.PathLike] | None = None) -> list[str]:
    """Why the consistency score cannot bin the sessions on ``analysis.consistency_label`` (with
    `analysis.consistency_bins`), per session (named with its file from ``sources``): its own
    binning, on constant embeddings."""
    columns = needs.spec.check_chosen(needs.consistency_label, CONFIG_KEYS["consistency_label"])
    kind = needs.spec.kind(columns[0])
    labels = [frame[list(columns)].to_numpy() if len(columns) == 2 else frame[columns[0]].to_numpy()
              for frame in sessions.values()]
    names = list(sessions)
    if kind == "continuous" and len(columns) == 1:  # CEBRA's bins: each session on the common range
        low = min(float(l.min()) for l in labels)
        high = max(float(l.max()) for l in labels)
        problems = []
        for name, label in zip(names, labels):
            try:
                bin_embedding(np.ones((len(label), 1)), label, low, high, needs.consistency_bins)
            except EmptyBinError as error:
                problems.append((name, f"{error.problem} over all sessions"))
        return [_bin_line(name, problem, needs, sources) for name, problem in problems]
    try:
        with warnings.catch_warnings():  # the 2-D stand-in embeddings' own warnings say nothing of the data
            warnings.simplefilter("ignore")
            label_consistency([np.ones((len(l), 2)) + np.arange(2) for l in labels], labels, names, kind,
                              needs.consistency_bins, columns=columns)
    except EmptyBinError as error:
        return [_bin_line(None, error.problem, needs)]
    return []


def _bin_line(name: str | None, problem: str, needs: SessionNeeds, sources=None) -> str:
    bins, key = CONFIG_KEYS["consistency_bins"], CONFIG_KEYS["consistency_label"]
    where = "" if name is None else f"session {name!r} ({(sources or {}).get(name, '?')}): "
    return (f"{where}the consistency score cannot bin {key}={needs.consistency_label!r} with {bins}="
            f"{needs.consistency_bins}: {problem}; lower {bins}, choose another label, or leave the session out")


def check_sessions(
    sessions: Mapping[str, tuple[np.ndarray, pd.DataFrame]],
    needs: SessionNeeds,
    sources: Mapping[str, str | os.PathLike] | None = None,
    signals: Mapping[str, str] | None = None,
) -> None:
    """Raise one `SessionError` listing every problem of every session (one line each), or return.

    ``sessions`` maps name -> (neural (T, N), labels) as `read_session` returns them; ``sources``
    names each session's file in the messages; ``signals`` is the config's map of session ->
    signal kind (a session it leaves out: counts), checked first (`signal_problem`). Classes and
    the consistency bins are checked across sessions, as multi-session sampling and the
    consistency score see them.
    """
    sources = sources or {}
    kinds = session_signals(signals, list(sessions))
    lines = []
    spec = needs.spec
    for name, (neural, labels) in sessions.items():
        missing = [c for c in spec.columns if c not in labels.columns]
        if missing:
            lines.append(f"session {name!r} ({sources.get(name, '?')}): label column(s) {missing} (labels) are not "
                         f"in its table; its columns: {list(labels.columns)}")
            continue
        signal = signal_problem(neural, kinds[name], name) if neural.size else None
        problems = [signal] * (signal is not None) + session_problems(neural, labels, needs)
        lines += [f"session {name!r} ({sources.get(name, '?')}): {p}" for p in problems]
    if not lines:
        frames = {name: labels for name, (_, labels) in sessions.items()}
        lines += [problem for column in spec.discrete for problem in class_problems(frames, column)]
        if not lines:
            lines += bin_problems(frames, needs, sources)
    if lines:
        raise SessionError("\n".join(lines))


def session_summary(
    sessions: Mapping[str, tuple[np.ndarray, pd.DataFrame]], signals: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per checked session: time bins, neurons, the range of every continuous label column
    and the classes of the discrete one, mean spikes per bin (counts; NaN for a continuous signal)
    and the signal kind."""
    kinds = session_signals(signals, list(sessions))
    rows = []
    for name, (neural, labels) in sessions.items():
        row = {"session": name, "time_bins": len(neural), "neurons": neural.shape[1]}
        for column in labels.columns:
            values = labels[column].to_numpy()
            if np.issubdtype(values.dtype, np.integer):
                row[f"{column}_classes"] = len(np.unique(values))
            else:
                row[f"{column}_min"], row[f"{column}_max"] = float(values.min()), float(values.max())
        row["spikes_per_bin"] = float(neural.sum(axis=1).mean()) if kinds[name] == "counts" else float("nan")
        row["signal"] = kinds[name]
        rows.append(row)
    return pd.DataFrame(rows)
