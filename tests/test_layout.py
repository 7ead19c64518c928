"""The package's shape: no two modules of cebra_core import each other, directly or through others
(each idea has one home, and the leaves stay leaves)."""

import ast

from conftest import REPO

PACKAGE = REPO / "src" / "cebra_core"


def imports() -> dict[str, set[str]]:
    """{module: the cebra_core modules it imports, at any depth of its code}."""
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph = {}
    for name in modules:
        found = set()
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cebra_core":
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("cebra_core.")}
        graph[name] = found & modules - {name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, as the modules along it, or None."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name):] + [name]
        if name in done:
            return None
        for dependency in sorted(graph[name]):
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


def test_no_import_cycles():
    graph = imports()
    assert {"data", "nwb", "validation", "planning", "rats"} <= set(graph)
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_leaves_import_no_other_module():
    """Session validation, the rats' facts and the plan are leaves: anything may use them."""
    graph = imports()
    assert graph["validation"] == set() and graph["rats"] == set()
    assert graph["planning"] == {"rats"}
