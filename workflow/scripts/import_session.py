"""Load one session file (.jl only after its MD5 check, .npz, .parquet, .nwb), validate it, write its session table."""

import logging
import sys

from common import start

start(snakemake)

from cebra_core.data import load_session, write_session
from cebra_core.validation import SessionError, signal_of

session = snakemake.wildcards.session
signal = signal_of(snakemake.params.signals, session)
try:
    neural, labels = load_session(
        snakemake.input[0], session=session, md5=snakemake.params.md5, nwb=snakemake.params.nwb, signal=signal
    )
except SessionError as err:  # names the file, the session and the problem
    logging.error("%s", err)
    sys.exit(1)
write_session(snakemake.output[0], neural, labels, session=session, signal=signal)
logging.info("imported %s from %s: neural %s, labels %s", session, snakemake.input[0], neural.shape, labels.shape)
