"""How many CPUs the workflow may use on this machine, and the cap that keeps `--cores` within them.
Standard library only (Snakemake's own process runs it)."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity where the platform has one (Linux; a cluster
    job's allocation), else the machine's CPU count (macOS, Windows)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0))
    return os.cpu_count() or 1



def cap_local_cores(workflow, cpus: int, logger) -> None:
    """Run locally, never more threads at once than ``cpus``: `--cores 4` on 2 CPUs would otherwise run
    two 2-thread fits side by side, whose OpenMP threads spin against each other (4-7x slower).

    Snakemake has no public way to lower its core total from a workflow, so this is the one place that
    uses its internals (``local_exec``, the ``_cores`` global resource, ``register_resource``; Snakemake
    9.27). If they change, the cap is skipped with a warning, never a crash."""
    try:
        cores = workflow.global_resources["_cores"].value
        local = workflow.local_exec
        if local and isinstance(cores, int) and cores > cpus:
            logger.info(f"--cores {cores} is more than the {cpus} CPUs this machine gives the workflow: using {cpus}")
            workflow.register_resource("_cores", cpus)  # Snakemake's own total of threads at once
    except (AttributeError, KeyError, TypeError) as error:
        logger.warning(f"could not cap --cores at the {cpus} CPUs of this machine (this Snakemake's internals "
            f"differ: {type(error).__name__}: {error}); make sure --cores is at most {cpus}")
