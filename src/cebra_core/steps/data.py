"""The data steps (the data environment: numpy, pandas, pyarrow, joblib, pooch, pynwb; no torch):
a published rat fetched and verified, a simulated rat, a user's session imported and validated, and
every session checked against what the fits and analyses need, before any fit."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from cebra_core.sessions.data import load_session, read_session, write_session
from cebra_core.sessions.download import fetch_session
from cebra_core.sessions.files import write_table
from cebra_core.sessions.labels import LabelSpec
from cebra_core.sessions.simulate import simulate_session
from cebra_core.sessions.simulate_openfield import simulate_openfield
from cebra_core.sessions.simulate_reaching import simulate_reaching
from cebra_core.sessions.validation import session_signals, signal_of, validate_session
from cebra_core.steps.checks import SessionNeeds, check_sessions, session_summary

log = logging.getLogger(__name__)

Path = str | os.PathLike


def download(session: str, output: Path, *, base_url: str, checksums: Mapping, retries: int, timeout: float) -> None:
    """Fetch one published rat into ``output`` (the .jl), both MD5s verified (the config's
    ``data.download``: ``checksums`` overrides the published MD5s per rat)."""
    own = checksums.get(session, {})
    fetch_session(session, output, base_url=base_url, gz_md5=own.get("gz_md5"), jl_md5=own.get("jl_md5"),
                  retries=retries, timeout=timeout)


SIMULATORS = ("rat", "openfield", "reaching")  # data.simulate.kind


def simulate(session: str, output: Path, *, kind: str = "rat", scale: float = 1.0, seed: int = 0,
             labels: Mapping | None = None) -> None:
    """Simulate one session and write its session table: a rat on the linear track (`simulate`,
    its real shape x ``scale``), a mouse in an open field seen through calcium imaging
    (`simulate_openfield`) or a monkey reaching to 8 targets (`simulate_reaching`), their sizes
    ``scale`` x their defaults; the declared ``labels`` must be the simulator's."""
    spec = LabelSpec.from_config(labels)
    if kind == "rat":
        sim, signal = simulate_session(session, scale=scale, seed=seed), "counts"
    elif kind == "openfield":
        sim, signal = simulate_openfield(session, seed=seed, scale=scale), "continuous"
    elif kind == "reaching":
        sim, signal = simulate_reaching(session, seed=seed, scale=scale), "counts"
    else:
        raise ValueError(f"data.simulate.kind={kind!r} is not a simulator; use one of {', '.join(SIMULATORS)}")
    neural, table = validate_session(sim.neural, sim.labels, spec=spec, session=session,
                                     source=f"simulated {kind}", signal=signal)
    write_session(output, neural, table)
    log.info("simulated %s (%s): neural %s, labels %s", session, kind, neural.shape, list(table.columns))


def import_session(raw: Path, output: Path, *, session: str, md5: str | None, nwb: Mapping | None,
                   signals: Mapping[str, str], labels: Mapping | None = None) -> None:
    """Read one session file (.jl only after its MD5 check, .npz, .parquet, .nwb), validate it as
    the signal kind the config gives it, and write its session table: the one validation on the way
    to a fit."""
    neural, table = load_session(raw, session=session, md5=md5, nwb=nwb, signal=signal_of(signals, session),
                                 labels=LabelSpec.from_config(labels))
    write_session(output, neural, table)
    log.info("imported %s from %s: neural %s, labels %s", session, raw, neural.shape, list(table.columns))


def check(tables: Mapping[str, Path], output: Path, *, needs: Mapping, sources: Mapping[str, str],
          signals: Mapping[str, str]) -> None:
    """Check every session table (``{session: path}``) against what the configured fits and analyses
    need (`cebra_core.steps.checks`): one `SessionError` listing every problem, else the summary
    table (one row per session) written to ``output`` (TSV)."""
    kinds = session_signals(signals, list(tables))
    sessions = {name: read_session(path) for name, path in tables.items()}
    check_sessions(sessions, SessionNeeds(**needs), sources=sources, signals=kinds)
    summary = session_summary(sessions, kinds)
    write_table(summary, output, float_format="%.6g")
    log.info("all %d sessions fit the configured fits and analyses:\n%s", len(tables), summary.to_string(index=False))
