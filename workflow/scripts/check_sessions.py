"""Check every session table against what the fits and analyses need (cebra_core.checks), before any fit.

Each session is checked as the signal kind the config's `signals` map gives it (counts unless named).
"""

import logging
import sys

from common import start

start(snakemake)

from cebra_core.checks import SessionNeeds, check_sessions, session_summary
from cebra_core.data import read_session
from cebra_core.validation import session_signals
from cebra_core.files import atomic_output

names = list(snakemake.params.sessions)
signals = snakemake.params.signals
try:
    kinds = session_signals(signals, names)
    sessions = {name: read_session(path, session=name, signal=kinds[name]) for name, path in zip(names, snakemake.input)}
    check_sessions(sessions, SessionNeeds(**snakemake.params.needs), sources=snakemake.params.sources, signals=kinds)
except ValueError as err:  # SessionError: one line per problem (session, file, problem, config key); or signals
    for line in str(err).splitlines():
        logging.error("%s", line)
    sys.exit(1)
summary = session_summary(sessions, kinds)
with atomic_output(snakemake.output[0]) as tmp:
    summary.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
logging.info("all %d sessions fit the configured fits and analyses:\n%s", len(names), summary.to_string(index=False))
