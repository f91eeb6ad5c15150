"""The import graph of curate's modules has no cycle, counting imports inside functions, and importing
a module counts as importing every package above it (its __init__ runs first). Nothing generic is
installed beside curate."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (REPO / "curate").rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _with_parents(target: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `import target` runs: the target and every package above it."""
    found = set()
    while target:
        if target in modules:
            found.add(target)
        target = target.rpartition(".")[0]
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its file (and their parent packages)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    edges |= _with_parents(alias.name, modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                edges |= _with_parents(base, modules)
                for alias in node.names:  # `from curate.x import y` where y is a module
                    if f"{base}.{alias.name}" in modules:
                        edges.add(f"{base}.{alias.name}")
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_package_init():
    graph = {"p": {"p.a"}, "p.a": {"p", "p.b"}, "p.b": set(), "q": {"p.b"}}
    assert cycles(graph) == [["p", "p.a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_among_curates_modules():
    graph = import_graph()
    assert "curate.stages.registry" in graph["curate.config"]  # the graph sees imports inside functions
    assert cycles(graph) == []


def test_the_bottom_layer_imports_nothing_above_it():
    graph = import_graph()
    for bottom in ("curate.errors", "curate.hashing", "curate.schema", "curate.decisions"):
        assert graph[bottom] <= {"curate", "curate.errors", "curate.hashing"}, (bottom, graph[bottom])
    # one stage loads that stage, never the registry of all of them
    assert "curate.stages.registry" not in graph["curate.stages.base"] | graph["curate.stages"]
    # the leakage gate counts n-gram overlap with curate.ngrams, not by building a split stage
    assert "curate.stages.split" not in graph["curate.gates.frames"]
    # the accounting needs the decision constants, not the stages
    assert not any(m.startswith("curate.stages") for m in graph["curate.accounting"])


def test_only_curate_is_installed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["curate*"]
    top_level = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert top_level <= {"curate", "tests", "bench"}, top_level


def test_every_stage_module_registers_its_stage_under_its_stage_name():
    """Adding a stage is adding its module: the registry finds every Stage subclass with a name."""
    from curate.stages.langid import LangIdStage
    from curate.stages.registry import STAGES

    modules = {p.stem for p in (REPO / "curate" / "stages").glob("*.py")} - {"__init__", "base", "registry"}
    assert modules <= {cls.__module__.rpartition(".")[2] for cls in STAGES.values()}
    assert STAGES["langid"] is LangIdStage and all(cls.stage == name for name, cls in STAGES.items())
