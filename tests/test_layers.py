"""Layers: the library imports no CLI framework, modules import each other without cycles, and imports
inside functions stay for optional heavy dependencies.

- The library (``cardiobench.diffusion``, ``.data``, ``.metrics``, ``.engine``, the plugin manager... every
  module but the CLI) never imports typer, rich or click: a notebook calling ``get_component`` gets no
  terminal library. Only the CLI (``CLI_MODULES``) does.
- No import cycle among cardiobench's modules at module level.
- Imports of cardiobench modules inside functions only go down (a budget).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cardiobench"
CLI_FRAMEWORKS = ("typer", "rich", "click")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


#: every module of cardiobench, by name
MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_cli(module: str) -> bool:
    """Whether ``module`` is part of the command line, the only layer that may import typer, rich and click."""
    return module in {"cardiobench.cli", "cardiobench.__main__", "cardiobench.testing.cli"} or module.startswith(
        "cardiobench.cli.")


#: what a notebook imports (issue 13); the test imports every other library module too
LIBRARY_MODULES = (
    "cardiobench.diffusion",
    "cardiobench.data",
    "cardiobench.metrics",
    "cardiobench.engine",
    "cardiobench.engine.train",
    "cardiobench.engine.sample",
    "cardiobench.engine.segment",
    "cardiobench.engine.runner",
    "cardiobench.engine.pipeline",
    "cardiobench.factories",
    "cardiobench.progress",
)

# -- 1. the library imports no CLI framework ----------------------------------------------------------

_PROBE = textwrap.dedent(
    """
    import importlib, json, sys

    BANNED = set(sys.argv[1].split(","))
    first = {}  # framework -> the cardiobench modules being imported when it was first imported


    class Spy:
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in BANNED and top not in first:
                chain, frame = [], sys._getframe(1)
                while frame is not None:
                    mod = frame.f_globals.get("__name__", "")
                    if mod.startswith("cardiobench") and (not chain or chain[-1] != mod):
                        chain.append(mod)
                    frame = frame.f_back
                first[top] = chain[::-1]
            return None


    sys.meta_path.insert(0, Spy())
    for name in sys.argv[2].split(","):
        importlib.import_module(name)
    from cardiobench.plugins import get_component, registry

    get_component("noise", "gaussian")
    registry("metric")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BANNED)
    print(json.dumps({"loaded": loaded, "first": first}))
    """
)


def _probe(modules: tuple[str, ...]) -> tuple[list[str], str]:
    """(CLI framework modules loaded after importing ``modules`` and calling ``get_component`` and
    ``registry`` in a fresh interpreter, which cardiobench modules first imported each framework)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(CLI_FRAMEWORKS), ",".join(modules)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "CARDIOBENCH_LOAD_PLUGINS": ""},  # built-ins only, as in every test
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    who = "; ".join(f"{fw} first imported by {' -> '.join(chain) or '?'}" for fw, chain in report["first"].items())
    return report["loaded"], who


def test_library_imports_no_cli_framework():
    others = [m for m in MODULES if not is_cli(m) and m not in LIBRARY_MODULES]
    assert len(others) > 50 and "cardiobench.plugins" in others  # the probe imports the whole library
    loaded, who = _probe((*LIBRARY_MODULES, *others))
    assert loaded == [], who


def test_the_probe_sees_a_cli_framework():  # the check above can fail
    loaded, who = _probe(("cardiobench.cli.options",))
    assert "typer" in loaded and "typer first imported by cardiobench.cli" in who, who


# -- 2. no import cycle at module level -----------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module name a (maybe relative) ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The cardiobench modules an import statement of ``module`` runs or takes names from."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = _absolute(module, node)
        # ``from pkg import sub`` runs the module pkg.sub; ``from pkg import name`` needs pkg's name
        named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    out = []
    for name in named:
        if name in MODULES and name != module:
            out.append(name)
        parts = name.split(".")
        for i in range(1, len(parts)):  # the packages it is in run first, unless they hold ``module`` (running)
            package = ".".join(parts[:i])
            if package in MODULES and package != module and not module.startswith(package + "."):
                out.append(package)
    return out


def _imports(module: str) -> tuple[list[ast.Import | ast.ImportFrom], list[ast.Import | ast.ImportFrom]]:
    """(imports run when the module is imported, imports inside functions) of ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top: list[ast.Import | ast.ImportFrom] = []
    inner: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (inner if in_function else top).append(node)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the body only runs for type checkers
                visit(child, in_function)
            return
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return top, inner


def _graph() -> dict[str, set[str]]:
    return {m: {t for node in _imports(m)[0] for t in _targets(m, node)} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that ends where it starts) for each strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    cycles = []
    for component in components:
        start = min(component)
        # breadth-first search for the shortest way back to ``start`` inside the component
        paths = {start: [start]}
        queue = [start]
        found = None
        while queue and found is None:
            v = queue.pop(0)
            for w in sorted(graph[v] & component):
                if w == start:
                    found = [*paths[v], start]
                    break
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    queue.append(w)
        cycles.append(found or sorted(component))
    return cycles


def test_no_import_cycle_at_module_level():
    graph = _graph()
    assert "cardiobench.cli" in graph and "cardiobench.plugins" in graph["cardiobench.cli"]  # the graph sees imports
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_cycle():  # the check above can fail
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(map(tuple, _cycles(graph))) == [("a", "b", "c", "a"), ("e", "e")]


# -- 3. imports inside functions: for optional heavy dependencies, not around cycles -------------------


def _function_level_imports() -> list[str]:
    """``module:line -> target`` for every import of a cardiobench module inside a function."""
    found = []
    for module in MODULES:
        for node in _imports(module)[1]:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                names = [_absolute(module, node)]
            found += [f"{module}:{node.lineno} -> {name}" for name in names
                      if name == "cardiobench" or name.startswith("cardiobench.")]
    return found


#: Imports of cardiobench modules inside functions, as counted after the layers change (issue 13). This budget
#: may only go DOWN: when you remove such an import, lower it to the new count; never raise it. An import inside
#: a function is for an optional or heavy dependency (the CLI's commands import the torch-backed modules when
#: they run, so that ``--help`` stays fast), not a way around an import cycle: import at module level instead.
FUNCTION_LEVEL_IMPORT_BUDGET = 159


def test_imports_inside_functions_only_go_down():
    found = _function_level_imports()
    assert len(found) <= FUNCTION_LEVEL_IMPORT_BUDGET, (
        f"{len(found)} imports of cardiobench modules inside functions, budget {FUNCTION_LEVEL_IMPORT_BUDGET}: "
        "import at module level instead (an import inside a function is for an optional heavy dependency)\n"
        + "\n".join(found))
