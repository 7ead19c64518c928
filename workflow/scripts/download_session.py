"""Download one published rat and verify both MD5s (cebra_core.download); nothing is unpickled here."""

import logging
import sys
from pathlib import Path

from common import start

start(snakemake)

from cebra_core.download import DownloadError, fetch_session

options = snakemake.params.download
session = snakemake.wildcards.session
checksums = options["checksums"].get(session, {})
try:
    fetch_session(
        session,
        Path(snakemake.output[0]),
        base_url=options["base_url"],
        gz_md5=checksums.get("gz_md5"),
        jl_md5=checksums.get("jl_md5"),
        retries=options["retries"],
        timeout=options["timeout"],
    )
except DownloadError as err:  # the message says what to do; the traceback would bury it
    logging.error("%s", err)
    sys.exit(1)
