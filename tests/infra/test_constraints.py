"""The tested dependency set: envs/constraints.txt pins every package cebra_core asks for, at versions
its own requirements allow; CI installs through it; Python's floor is Snakemake 9's; the conda
environments pin the same versions."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from helpers import REPO
from helpers.conda import STANDIN_MODULE, env_packages

CONSTRAINTS = REPO / "envs" / "constraints.txt"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def pins() -> dict[str, str]:
    """{canonical name: version} of envs/constraints.txt; every entry must be name==version."""
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)", line.strip())
        assert m, f"envs/constraints.txt: {line!r} is not name==version"
        name = canonicalize_name(m[1])
        assert name not in out, f"envs/constraints.txt pins {name} twice"
        out[name] = m[2]
    return out


def requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    return [Requirement(r) for r in project["dependencies"]] + [
        Requirement(r) for extra in project["optional-dependencies"].values() for r in extra
    ]


def test_constraints_pin_every_requirement_at_an_allowed_version():
    pinned = pins()
    assert "cebra-core" not in pinned  # the package under test is never pinned
    assert pinned["torch"] == "2.13.0"  # no +cpu label: it must constrain CUDA builds too
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not pinned in envs/constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"envs/constraints.txt pins {name}=={pinned[name]}, which pyproject.toml's {requirement} excludes"
        )


def test_python_floor_is_snakemakes():
    """requires-python is Snakemake 9's own floor (the version the constraints pin declares it)."""
    snakemake_python = SpecifierSet(importlib.metadata.metadata("snakemake")["Requires-Python"])
    ours = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert importlib.metadata.version("snakemake") == pins()["snakemake"]
    floors = {spec.version for spec in ours if spec.operator == ">="}
    assert floors == {spec.version for spec in snakemake_python if spec.operator == ">="} == {"3.11"}
    assert not ours.contains("3.10") and ours.contains("3.11")


def test_ci_installs_through_the_constraints():
    script = (REPO / ".ci" / "run").read_text()
    assert 'CONSTRAINTS=envs/constraints.txt' in script
    installs = re.findall(r"^pip_install (.*)$", script, re.M)
    assert installs == ['-c "$CONSTRAINTS" torch==2.13.0', "-c \"$CONSTRAINTS\" -e '.[test]'",
                        "-c \"$CONSTRAINTS\" -e '.[slurm]'"]


def test_conda_environments_pin_the_same_versions():
    """envs/*.yaml and envs/constraints.txt name one version per package, but for PyYAML:
    6.0.3 from conda-forge in envs/analysis.yaml, 6.0.4 from PyPI in the constraints."""
    pinned = pins()
    to_pypi = {conda: canonicalize_name(pypi) for conda, pypi in STANDIN_MODULE.CONDA_TO_PYPI.items()}
    differ = {}
    for env in sorted(p.name for p in (REPO / "envs").glob("*.yaml")):
        for conda, spec in env_packages(env).items():
            name = to_pypi.get(conda, canonicalize_name(conda))
            version = spec.removeprefix("==").removesuffix(".*")
            if name in pinned and pinned[name] != version:
                differ[name] = (version, pinned[name])
    assert differ == {"pyyaml": ("6.0.3", "6.0.4")}, differ
