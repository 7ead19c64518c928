"""Simulate one rat's place cells (cebra_core.simulate) and write its session table."""

import logging

from common import start

start(snakemake)

from cebra_core.data import write_session
from cebra_core.simulate import simulate_session

session = snakemake.wildcards.session
options = snakemake.params.simulate
sim = simulate_session(session, scale=options["scale"], seed=options["seed"])
write_session(snakemake.output[0], sim.neural, sim.labels, session=session)
logging.info("simulated %s: neural %s, labels %s", session, sim.neural.shape, sim.labels.shape)
