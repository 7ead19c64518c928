"""What every workflow script shares: this checkout's ``src/`` first on ``sys.path``, and logging
into the rule's log file.

Snakemake puts a script's own folder on ``sys.path``, so ``from common import start`` finds this
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
