"""What every workflow script shares: this checkout's ``src/`` first on ``sys.path``, logging into
the rule's log file, and `run`, which calls the script's one step of `cebra_core.steps`.

Snakemake puts a script's own folder on ``sys.path``, so ``from common import run`` finds this
package wherever the workflow runs (``--directory``, ``--use-conda``, SLURM). Importing it puts the
checkout's ``src/`` in front of everything else: the code that runs is always this checkout's
``cebra_core``, never an older installed copy, and the conda environments need not install it.
"""

import logging
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
if str(SRC) not in sys.path[:1]:
    sys.path.insert(0, str(SRC))


def start(snakemake) -> None:
    """Send stderr and logging (INFO and up, time-stamped) to the rule's log file, line-buffered."""
    sys.stderr = open(snakemake.log[0], "w", buffering=1)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def run(step, *args, **kwargs) -> None:
    """Call the script's step, ``step(*args, **kwargs)``, after `start`. Input that cannot be used (a
    session, a download, a device: `InputError`) is logged line by line, without a traceback, and
    the job fails with exit status 1; any other error keeps its traceback."""
    from cebra_core.sessions.validation import InputError

    try:
        step(*args, **kwargs)
    except InputError as error:  # the message names the file, session or key and what to do
        for line in str(error).splitlines():
            logging.error("%s", line)
        sys.exit(1)
