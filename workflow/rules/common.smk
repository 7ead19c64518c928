# The config checked and completed (the schema fills every default) and the plan made from it, by the
# one function the tests call too (cebra_workflow.config.assemble); the output paths (cebra_workflow.paths);
# wildcard constraints and the thin input functions the rules call. No science here.

import os
import sys

from snakemake.utils import validate

# cebra_workflow needs only the standard library: this checkout's src/ serves it to Snakemake's own
# process, which under --use-conda has no cebra_core installed (nor numpy, nor torch).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from cebra_workflow import paths  # noqa: E402
from cebra_workflow.config import assemble  # noqa: E402
from cebra_workflow.cores import cap_local_cores, usable_cpus  # noqa: E402
from cebra_workflow import plan as planning  # noqa: E402
from cebra_workflow.paths import fill  # noqa: E402

plan = assemble(
    config,
    validate,
    schema=os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"),
)
cap_local_cores(workflow, usable_cpus(), logger)

SESSIONS = plan.sessions
ONLINE = planning.ONLINE
FIRST_SEED = plan.first_seed
fit_file = plan.fit_file


wildcard_constraints:
    **plan.wildcard_constraints(),


def session_tables(sessions):
    """{session: its table} in the sessions' order: a named input entry per session."""
    return {session: plan.session_table(session) for session in sessions}


def fit_sessions(wildcards):
    return session_tables(plan.fit_sessions(wildcards.fit))


def gpu_resources():
    """resources: gpu=1 for the fits only when the config asks for GPU."""
    return {"gpu": 1} if config["gpu"] else {}
