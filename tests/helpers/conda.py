"""The conda side of the tests: the stand-in (tests/conda/bin/conda) loaded as a module, the rules'
envs and scripts, each env file's packages, and the map from Python imports to conda packages."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
from pathlib import Path

import yaml

from helpers import REPO

STANDIN = REPO / "tests" / "conda" / "bin" / "conda"

# Top-level import name -> conda-forge package. A third-party import not listed here fails the test
# (add it here and to the env that needs it).
IMPORT_TO_CONDA = {
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "matplotlib": "matplotlib-base",
    "mpl_toolkits": "matplotlib-base",
    "seaborn": "seaborn-base",
    "torch": "pytorch",
    "tqdm": "tqdm",
    "joblib": "joblib",
    "pooch": "pooch",
    "requests": "requests",
    "pynwb": "pynwb",
    "hdmf": "hdmf",
    "h5py": "h5py",
    "plotly": "plotly",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
}
def load_standin():
    """tests/conda/bin/conda as a module (its CONDA_TO_PYPI and spec parser are the one source)."""
    loader = importlib.machinery.SourceFileLoader("conda_standin", str(STANDIN))
    spec = importlib.util.spec_from_loader("conda_standin", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


STANDIN_MODULE = load_standin()


# ------------------------------------------------------------------------------ rules -> envs


def rule_steps() -> dict[str, tuple[str | None, str | None]]:
    """rule -> (env file name, script file name) from workflow/rules/*.smk."""
    steps = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        chunks = re.split(r"^\s*rule (\w+):", smk.read_text(), flags=re.M)
        for name, body in zip(chunks[1::2], chunks[2::2]):
            env = re.search(r"^\s*conda:\s*\n\s*\"([^\"]+)\"", body, re.M)
            script = re.search(r"^\s*script:\s*\n\s*\"([^\"]+)\"", body, re.M)
            steps[name] = (env and Path(env[1]).name, script and Path(script[1]).name)
    return steps


def env_file(name: str) -> dict:
    return yaml.safe_load((REPO / "envs" / name).read_text())


def env_packages(name: str) -> dict[str, str]:
    """conda package name -> version spec (pip entries mapped back to conda names)."""
    to_conda = {pypi.lower(): conda for conda, pypi in STANDIN_MODULE.CONDA_TO_PYPI.items()}
    to_conda.update({"torch": "pytorch", "matplotlib": "matplotlib-base"})
    packages = {}
    for entry in env_file(name)["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                if line.startswith(("--index-url ", "--extra-index-url ")):  # e.g. PyTorch's CUDA wheels
                    continue
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(.*)", line.strip())
                assert m, f"envs/{name}: pip entry {line!r} is not a package (paths and -e are not allowed)"
                packages[to_conda.get(m[1].lower(), m[1].lower())] = m[2]
        else:
            spec_name, version = STANDIN_MODULE.parse_spec(entry)
            if spec_name not in ("python", "pip"):
                packages[spec_name] = version
    return packages
