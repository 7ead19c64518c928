# The config validated (the schema fills every default), the plan made from it (cebra_core.planning:
# fits, splits, sweep points, targets; plain Python, unit-tested without Snakemake), wildcard
# constraints, and the thin input functions the rules call. No science here.

import os
import sys

from snakemake.utils import validate

# cebra_core.planning needs only the standard library: this checkout's src/ serves it to Snakemake's
# own process, which under --use-conda has no cebra_core installed (nor numpy, nor torch).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from cebra_core import planning  # noqa: E402

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")

planning.check_md5s(config)
validate(config, schema=SCHEMA, set_default=True)
plan = planning.Plan(
    config,
    validate=lambda candidate: validate(candidate, schema=SCHEMA, set_default=False),
)
planning.cap_local_cores(workflow, planning.usable_cpus(), logger)

SESSIONS = plan.sessions
SEEDS = plan.seeds
FIRST_SEED = plan.first_seed
SOURCE = plan.source
FOLDS = plan.folds
TRAINED = plan.trained
fit_file = plan.fit_file
session_table = plan.session_table


wildcard_constraints:
    **plan.wildcard_constraints(),


def session_file(wildcards):
    return plan.session_file(wildcards.session)


def session_md5(wildcards):
    return plan.session_md5(wildcards.session)


def session_nwb(wildcards):
    return plan.session_nwb(wildcards.session)


def fit_inputs(wildcards):
    """The session tables of a fit, in its session order."""
    return [session_table(s) for s in plan.fit_sessions(wildcards.fit)]


def fit_priority(wildcards):
    return plan.fit_priority(wildcards.fit)


def kind_embeddings(wildcards):
    return plan.kind_embeddings(wildcards.kind, wildcards.seed)


def all_seeds(pattern, **wildcards):
    return expand(pattern, seed=SEEDS, **wildcards)


def gpu_resources():
    """resources: gpu=1 for the fits only when the config asks for GPU."""
    return {"gpu": 1} if config["gpu"] else {}


def sweep_inputs(wildcards):
    return plan.sweep_inputs()


def sweep_targets(wildcards):
    return plan.sweep_targets()
