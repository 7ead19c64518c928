"""Load one session file (.jl only after its MD5 check, .npz, .parquet, .nwb), validate it, write its session table."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

from cebra_core.data import SessionError, load_session, write_session

session = snakemake.wildcards.session
try:
    neural, labels = load_session(
        snakemake.input[0], session=session, md5=snakemake.params.md5, nwb=snakemake.params.nwb
    )
except SessionError as err:  # names the file, the session and the problem
    logging.error("%s", err)
    sys.exit(1)
write_session(snakemake.output[0], neural, labels, session=session)
logging.info("imported %s from %s: neural %s, labels %s", session, snakemake.input[0], neural.shape, labels.shape)
