"""The config assembled once, for the workflow and the tests alike: config files merged in order, the
MD5s checked, the schema's defaults filled in, then the plan made from it. Standard library only:
the schema check (Snakemake's `validate`) is passed in."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

from cebra_workflow.plan import ConfigError, Plan

MD5_PATTERN = "^[0-9a-fA-F]{32}$"

Validate = Callable[..., None]  # snakemake.utils.validate(config, schema, set_default=...)


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` merged over ``base`` as Snakemake merges --configfile files: nested dicts key by
    key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_md5s(config: dict) -> None:
    """An MD5 that is not 32 hex digits gets its own message (the schema's would be a bare 'not valid
    under any of the given schemas'); run before the schema."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    found = []
    for session, entry in (data.get("local") or {}).items():
        if isinstance(entry, dict) and "md5" in entry:
            found.append((f"data.local.{session}.md5", entry["md5"]))
    for session, entry in ((data.get("download") or {}).get("checksums") or {}).items():
        for key in ("gz_md5", "jl_md5"):
            if isinstance(entry, dict) and key in entry:
                found.append((f"data.download.checksums.{session}.{key}", entry[key]))
    for key, value in found:
        if not (isinstance(value, str) and re.search(MD5_PATTERN, value)):
            raise ConfigError(
                f"config: {key}: {value!r} is not an MD5 checksum: it must be 32 hexadecimal characters "
                "(0-9, a-f), as `md5sum FILE` prints them"
            )




def assemble(config: dict, validate: Validate, schema: str) -> Plan:
    """Check ``config`` (MD5s first, then the schema, whose defaults fill every key left out: the
    dict is completed in place) and return its plan; a sweep's grid points are checked with the
    same schema."""
    check_md5s(config)
    validate(config, schema, set_default=True)
    return Plan(config, validate=lambda candidate: validate(candidate, schema, set_default=False))
