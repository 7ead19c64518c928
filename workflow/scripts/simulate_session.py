"""Simulate one rat's place cells (cebra_core.simulate) and write its session table."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

from cebra_core.data import write_session
from cebra_core.simulate import simulate_session

session = snakemake.wildcards.session
options = snakemake.params.simulate
sim = simulate_session(session, scale=options.get("scale", 1.0), seed=options.get("seed", 0))
write_session(snakemake.output[0], sim.neural, sim.labels, session=session)
logging.info("simulated %s: neural %s, labels %s", session, sim.neural.shape, sim.labels.shape)
