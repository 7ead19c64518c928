"""The package's layers: `cebra_core`'s subpackages are floors, and code only ever imports from its
own floor or a lower one (sessions < engine < analysis < figures < steps); no module imports
another in a circle; the science package never imports the workflow's plan (`cebra_workflow`),
and the plan reads only the standard-library facts of `cebra_core`."""

import ast
import shutil
import sys
from pathlib import Path

from helpers import REPO

SRC = REPO / "src"
LAYERS = ["sessions", "engine", "analysis", "figures", "steps"]  # lowest first
PLAN_MAY_READ = {"cebra_core.sessions.rats", "cebra_core.sessions.labels", "cebra_core.analysis.protocols"}  # standard library only


def module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(src: Path = SRC) -> dict[str, set[str]]:
    """{module: the cebra_core / cebra_workflow modules it imports, anywhere in its code}."""
    graph = {}
    for path in sorted(src.rglob("*.py")):
        name = module_name(path, src)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {m for m in found if m.split(".")[0] in ("cebra_core", "cebra_workflow")}
    modules = set(graph)
    return {name: {m for m in found if m in modules} - {name} for name, found in graph.items()}


def layer(module: str) -> int | None:
    """The floor of a cebra_core module (None for the package root and outside cebra_core)."""
    parts = module.split(".")
    if parts[0] != "cebra_core" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes up a floor, or from the science package into the plan, or from the
    plan into a cebra_core module that is not standard-library only."""
    problems = []
    for module, found in graph.items():
        for other in sorted(found):
            if module.startswith("cebra_core") and other.startswith("cebra_workflow"):
                problems.append(f"{module} imports the workflow's plan {other}")
            elif module.startswith("cebra_workflow") and other.startswith("cebra_core") and other not in PLAN_MAY_READ:
                problems.append(f"the plan's {module} imports {other} (it may read only {sorted(PLAN_MAY_READ)})")
            elif layer(module) is not None and layer(other) is not None and layer(other) > layer(module):
                problems.append(f"{module} ({LAYERS[layer(module)]}) imports {other} ({LAYERS[layer(other)]}), a higher layer")
    return problems


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, as the modules along it, or None."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name):] + [name]
        if name in done:
            return None
        for dependency in sorted(graph.get(name, ())):
            found = visit(dependency, path + [name])
            if found:
                return found
        done.add(name)
        return None

    for name in sorted(graph):
        found = visit(name, [])
        if found:
            return found
    return None


def test_the_tree_shows_the_layers():
    """Every module of cebra_core lives in one of the layers' folders (the root holds only __init__)."""
    loose = [p.name for p in (SRC / "cebra_core").glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside the layers: {loose}"
    assert sorted(p.name for p in (SRC / "cebra_core").iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


def test_no_import_goes_up_a_layer():
    graph = imports()
    assert {"cebra_core.engine.model", "cebra_core.steps.fits", "cebra_workflow.plan"} <= set(graph)
    assert layer_violations(graph) == []


def test_an_upward_import_is_caught(tmp_path):
    """The check fails on a deliberately added upward import (the engine reading an analysis module),
    on the science package reading the plan, and on the plan reading a module that needs numpy."""
    src = tmp_path / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    model = src / "cebra_core" / "engine" / "model.py"
    model.write_text(model.read_text() + "\nfrom cebra_core.analysis.metrics import consistency_score  # upward\n")
    files = src / "cebra_core" / "sessions" / "files.py"
    files.write_text(files.read_text() + "\nimport cebra_workflow.paths\n")
    plan = src / "cebra_workflow" / "plan.py"
    plan.write_text(plan.read_text() + "\nfrom cebra_core.sessions.data import read_session\n")
    assert sorted(layer_violations(imports(src))) == sorted([
        "cebra_core.engine.model (engine) imports cebra_core.analysis.metrics (analysis), a higher layer",
        "cebra_core.sessions.files imports the workflow's plan cebra_workflow.paths",
        "the plan's cebra_workflow.plan imports cebra_core.sessions.data (it may read only "
        "['cebra_core.analysis.protocols', 'cebra_core.sessions.labels', 'cebra_core.sessions.rats'])",
    ])


def test_no_import_cycles():
    graph = imports()
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_plans_facts_need_only_the_standard_library():
    """What the plan reads of cebra_core imports the standard library only (Snakemake's process has
    no numpy under --use-conda), and no other module of the package."""
    graph = imports()
    for module in PLAN_MAY_READ:
        tree = ast.parse((SRC / (module.replace(".", "/") + ".py")).read_text())
        imported = {alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
        assert imported <= set(sys.stdlib_module_names) | {"__future__"}, (module, imported)
        assert graph[module] == set()
