"""The per-step conda environments (envs/*.yaml) hold exactly what their steps import, pinned; and
the conda stand-in (tests/conda/bin/conda) answers Snakemake's calls and refuses what it cannot do.

Why the import check matters: under ``--use-conda`` Snakemake appends the host's site-packages to
``sys.path`` in every script's preamble (so the script can unpickle its ``snakemake`` object). A
package missing from an env file is then silently taken from whatever Python runs Snakemake, and
the env "works" on the developer's machine only. So this test reads, for every rule, its script,
``workflow/scripts/common`` and the ``cebra_core`` code the script reaches (module-level imports of
every loaded module, plus the imports inside the functions and classes the script can call,
followed through calls by name), maps the third-party imports to conda package names, adds what is
needed without an import (pandas' parquet engine, pooch's progress bar), and compares that with the
env file: nothing missing, nothing unused. The end-to-end run (tests/workflow/test_sample_run.py) then checks the
same at run time: every job's packages come from its env.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from helpers.conda import IMPORT_TO_CONDA, STANDIN, STANDIN_MODULE, env_file, env_packages, rule_steps

SRC = REPO / "src"
SCRIPTS = REPO / "workflow" / "scripts"
TORCH_PIN = "2.13.0"

# Packages a step needs without importing them: a name used in the reached code -> (package, why).
IMPLIED = {
    "read_parquet": ("pyarrow", "pandas' parquet engine"),
    "to_parquet": ("pyarrow", "pandas' parquet engine"),
    "HTTPDownloader": ("tqdm", "pooch's progress bar (progressbar=True)"),
}
# Packages a third-party import brings in by itself when they are importable: top-level import ->
# (package, why). They must be in the env, or they come from the host (see the module docstring).
OPTIONAL_IMPORTS = {
    "seaborn": ("scipy", "seaborn imports scipy.stats when it is importable"),
}
# Methods that only scikit-learn calls (its estimator protocol): their imports are not a job's.
SKLEARN_HOOKS = {"__sklearn_tags__"}


# ------------------------------------------------------------------------------ import analysis


@lru_cache(maxsize=None)
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def module_path(name: str) -> Path:
    """cebra_core.x -> src/cebra_core/x.py (or its package __init__)."""
    base = SRC.joinpath(*name.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    assert path.is_file(), f"{name} imported but {path} does not exist"
    return path


@lru_cache(maxsize=None)
def lazy_exports() -> dict[str, str]:
    """cebra_core's lazily exported names -> their module (the _HOME dict of its __init__)."""
    for node in parse(module_path("cebra_core")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_HOME" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def imports_in(nodes) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import inside ``nodes`` (relative ones excluded)."""
    found = []
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Import):
                found += [(alias.name, None, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def names_in(nodes) -> set[str]:
    """Every name and attribute used inside ``nodes``."""
    out = set()
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Name):
                out.add(node.id)
            elif isinstance(node, ast.Attribute):
                out.add(node.attr)
    return out


class Reach:
    """What one script needs: third-party top-level imports and implied packages, each with where."""

    def __init__(self):
        self.needs: dict[str, str] = {}  # conda package -> first place that needs it
        self.imports: set[str] = set()   # third-party top-level import names
        self.unknown: list[str] = []
        self.loaded: set[str] = set()    # cebra_core modules whose module level ran
        self.reached: set[tuple[str, str]] = set()  # (module, top-level def) reached

    def need(self, package: str, where: str):
        self.needs.setdefault(package, where)

    def handle_imports(self, found, where: str, scope: str, context: str = ""):
        """Record imports found in a module/function of ``scope`` (a cebra_core module or a script)."""
        for module, name, line in found:
            top = module.partition(".")[0]
            here = f"{where}:{line}{context}"
            if top == "cebra_core":
                if name is None:  # import cebra_core.x: anything in it may be used
                    self.load(module)
                    self.reach_all(module)
                elif module == "cebra_core" and name in lazy_exports():
                    self.reach(lazy_exports()[name], name)
                elif module_exists(f"{module}.{name}"):  # from cebra_core import x (a submodule)
                    self.load(f"{module}.{name}")
                    self.reach_all(f"{module}.{name}")
                else:
                    self.reach(module, name)
            elif top == "common" and scope == "script":
                path = SCRIPTS / "common" / "__init__.py"
                self.handle_imports(imports_in(parse(path).body), str(path.relative_to(REPO)), "script")
                self.scan_names(names_in(parse(path).body), here)
            elif top in sys.stdlib_module_names or top == "__future__":
                continue
            elif top in IMPORT_TO_CONDA:
                self.imports.add(top)
                self.need(IMPORT_TO_CONDA[top], here)
                if top in OPTIONAL_IMPORTS:
                    self.need(OPTIONAL_IMPORTS[top][0], f"{here} ({top}: {OPTIONAL_IMPORTS[top][1]})")
            else:
                self.unknown.append(f"{top} ({here})")

    def scan_names(self, names: set[str], where: str):
        for name in names & set(IMPLIED):
            self.need(IMPLIED[name][0], f"{where} ({name}: {IMPLIED[name][1]})")

    def load(self, module: str):
        """A cebra_core module is imported: its module-level code (not function bodies) runs."""
        if module in self.loaded:
            return
        self.loaded.add(module)
        if module != "cebra_core":
            self.load("cebra_core")  # the package __init__ runs first
        path = module_path(module)
        tree = parse(path)
        top_level = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
        # module-level statements, class bodies and every decorator/default value run at import
        runs = top_level + [s for c in classes for s in c.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        runs += [d for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for d in n.decorator_list]
        where = str(path.relative_to(REPO))
        self.handle_imports(imports_in(runs), where, module)
        self.follow(module, names_in(runs), where)

    def definitions(self, module: str) -> dict[str, ast.AST]:
        return {n.name: n for n in parse(module_path(module)).body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}

    def bindings(self, module: str) -> dict[str, tuple[str, str]]:
        """Names a module binds with ``from cebra_core.x import name`` -> (cebra_core.x, name)."""
        out = {}
        for mod, name, _ in imports_in(parse(module_path(module)).body):
            if name and mod.startswith("cebra_core"):
                out[name] = (mod, name)
        return out

    def follow(self, module: str, names: set[str], where: str):
        """Names used in ``module``'s reached code: its own defs and imported cebra_core names."""
        self.scan_names(names, where)
        definitions, bindings = self.definitions(module), self.bindings(module)
        for name in names:
            if name in definitions:
                self.reach(module, name)
            elif name in bindings and bindings[name][0] != "cebra_core":
                self.reach(*bindings[name])
            elif name in bindings and name in lazy_exports():
                self.reach(lazy_exports()[name], name)

    def reach(self, module: str, name: str):
        """A top-level function or class of a cebra_core module may be called: its body's imports count."""
        self.load(module)
        if (module, name) in self.reached:
            return
        definitions = self.definitions(module)
        if name not in definitions:  # a constant, or re-exported: loading the module is all it takes
            bindings = self.bindings(module)
            if name in bindings:
                self.reach(*bindings[name])
            return
        self.reached.add((module, name))
        node = definitions[name]
        if isinstance(node, ast.ClassDef):  # a method only scikit-learn calls is not a job's code
            node = ast.ClassDef(name=node.name, bases=node.bases, keywords=node.keywords, decorator_list=[],
                                body=[s for s in node.body if getattr(s, "name", None) not in SKLEARN_HOOKS],
                                lineno=node.lineno, col_offset=node.col_offset, type_params=[])
        path = str(module_path(module).relative_to(REPO))
        self.handle_imports(imports_in([node]), path, module, f" in {name}")
        self.follow(module, names_in([node]), f"{path}:{node.lineno} in {name}")

    def reach_all(self, module: str):
        for name in self.definitions(module):
            self.reach(module, name)


def module_exists(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


@lru_cache(maxsize=None)
def script_needs(script: str) -> Reach:
    """What one workflow script needs (third-party imports and implied packages), with where."""
    path = SCRIPTS / script
    reach = Reach()
    tree = parse(path)
    reach.handle_imports(imports_in(tree.body), str(path.relative_to(REPO)), "script")
    reach.scan_names(names_in(tree.body), str(path.relative_to(REPO)))
    return reach


def env_needs() -> dict[str, dict[str, str]]:
    """env file -> {conda package: 'rule: where it is needed'} over every rule that uses the env."""
    out: dict[str, dict[str, str]] = {}
    for rule, (env, script) in sorted(rule_steps().items()):
        if env is None or script is None:
            continue
        needs = out.setdefault(env, {})
        for package, where in script_needs(script).needs.items():
            needs.setdefault(package, f"rule {rule}: {where}")
    return out


# ------------------------------------------------------------------------------ tests: env files


def test_every_script_rule_has_an_env():
    steps = rule_steps()
    assert {"fit", "import_session", "align", "plot_loss"} <= set(steps)
    for rule, (env, script) in steps.items():
        if script is not None:
            assert env is not None, f"rule {rule} runs {script} but has no conda: env"
            assert (REPO / "envs" / env).is_file(), f"rule {rule}: envs/{env} does not exist"
    used = {env for env, _ in steps.values() if env}
    assert used == {p.name for p in (REPO / "envs").glob("*.yaml")}, "an env file no rule uses"


def test_imports_are_all_known():
    for _, (_, script) in sorted(rule_steps().items()):
        if script:
            assert not script_needs(script).unknown, (
                f"{script} reaches third-party imports with no conda package in IMPORT_TO_CONDA: "
                f"{script_needs(script).unknown}")


def test_each_env_provides_what_its_steps_import_and_nothing_else():
    needs = env_needs()
    problems = []
    for env, required in sorted(needs.items()):
        provided = env_packages(env)
        for package, where in sorted(required.items()):
            if package not in provided:
                problems.append(f"envs/{env} lacks {package}, needed by {where}")
        for package in sorted(set(provided) - set(required)):
            problems.append(f"envs/{env} has {package}, which none of its steps imports")
    assert not problems, "\n".join(problems)


def test_only_fit_steps_carry_torch():
    needs = env_needs()
    assert "pytorch" in needs["fit.yaml"]
    assert [env for env, required in needs.items() if "pytorch" in required] == ["fit.yaml"]
    assert "matplotlib-base" not in needs["analysis.yaml"] and "scipy" in needs["figures.yaml"]  # via seaborn


def test_the_analysis_finds_lazy_and_implied_needs():
    """The analysis sees through what a plain grep of the scripts would miss."""
    download = script_needs("download_session.py").needs
    assert {"pooch", "requests", "tqdm"} <= set(download)  # imports inside fetch_session; the progress bar
    assert "joblib" in script_needs("import_session.py").needs  # inside load_session's .jl branch
    assert "joblib" not in script_needs("align.py").needs  # align reads tables, never a .jl
    assert "pytorch" in script_needs("fit.py").needs and "tqdm" in script_needs("fit.py").needs  # via CEBRA
    assert "pyarrow" in script_needs("consistency.py").needs  # read_parquet
    assert "pytorch" not in script_needs("plot_loss.py").needs  # cebra_core's exports are lazy


@pytest.mark.parametrize("env", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_env_file_is_pinned_conda_forge(env):
    data = env_file(env)
    assert data["channels"] == ["conda-forge", "nodefaults"]
    assert "python=3.11" in data["dependencies"]
    for entry in data["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                if line.startswith(("--index-url ", "--extra-index-url ")):
                    continue
                assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", line), f"envs/{env}: {line!r} is not pinned"
        else:
            assert re.fullmatch(r"[a-z0-9_.\-]+=[0-9]+(\.[0-9]+)+", entry), f"envs/{env}: {entry!r} is not pinned"
    if "pytorch" in env_packages(env):
        assert env_packages(env)["pytorch"] == f"=={TORCH_PIN}.*"


# ------------------------------------------------------------------------------ tests: the stand-in


def standin(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STANDIN), *args], capture_output=True, text=True, timeout=120, **kw)


def test_standin_answers_snakemakes_queries():
    from packaging.version import Version
    from snakemake.deployment.conda import MIN_CONDA_VER

    version = re.findall(r"\d+\.\d+\.\d+", standin("--version").stdout)
    assert len(version) == 1 and Version(version[0]) >= Version(MIN_CONDA_VER)
    info = json.loads(standin("info", "--json").stdout)
    assert Path(info["conda_prefix"], "bin", "activate").is_file() and info["platform"] in ("linux-64", "linux-aarch64", "osx-64", "osx-arm64")
    assert json.loads(standin("config", "--get", "channel_priority", "--json").stdout)["get"]["channel_priority"] == "strict"
    assert standin("clean", "-y", "--tarballs").returncode == 0
    unsupported = standin("env", "export", "--prefix", "/tmp/x")
    assert unsupported.returncode == 1 and "unsupported command: conda env export" in unsupported.stderr


@pytest.mark.parametrize("spec, expected", [
    ("numpy=2.4.6", ("numpy", "==2.4.6.*")),
    ("conda-forge::pytorch=2.13.0", ("pytorch", "==2.13.0.*")),
    ("pandas==3.1.1", ("pandas", "==3.1.1")),
    ("scipy >=1.10,<2", ("scipy", ">=1.10,<2")),
    ("tqdm", ("tqdm", "")),
])
def test_standin_reads_conda_specs(spec, expected):
    assert STANDIN_MODULE.parse_spec(spec) == expected


def test_standin_refuses_what_it_cannot_map(tmp_path):
    """An unknown conda package or a build string fails at once, naming the file and package; nothing is built."""
    for dependency, message in (("libfoo=1.0", "the conda package 'libfoo' has no PyPI name"),
                                ("numpy=2.4.6=py311_0", "build strings are not supported")):
        env = tmp_path / "env.yaml"
        env.write_text(yaml.safe_dump({"channels": ["conda-forge"], "dependencies": ["python=3.11", dependency]}))
        proc = standin("env", "create", "--quiet", "--no-default-packages", "--file", str(env),
                       "--prefix", str(tmp_path / "env"))
        assert proc.returncode == 1 and message in proc.stderr and str(env) in proc.stderr, proc.stderr
        assert not (tmp_path / "env").exists()
    for name in {n for _, (n, _) in rule_steps().items() if n}:
        for package in env_packages(name):
            assert package in STANDIN_MODULE.CONDA_TO_PYPI, f"envs/{name}: the stand-in cannot install {package}"
