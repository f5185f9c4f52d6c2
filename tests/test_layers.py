"""kdtemp's layers, as data, and a walk of every import that holds the code to them.

Arrows point down (docs: architecture, "Arrows point down"): a module may import its own layer or a
layer listed before it, never one listed after it, and no kdtemp modules import each other in a
circle. Every import counts: module-level ones and those inside functions (a lazy import is still a
dependency), absolute (``kdtemp.x``) and relative (``..x``), and those under ``if TYPE_CHECKING:``
(they never run, but a type that names a module above is still a dependency on it). Importing
``a.b`` also runs ``a/__init__.py``; that implicit parent import does not count, but an explicit
``from a import name`` is an import of ``a`` itself.

Tasks are plug-ins (docs: architecture, "Add a task"): only ``kdtemp.tasks`` (its ``__init__``)
imports a task package (``kdtemp.tasks.image``, ``.text``, ``.lm``), and a task package imports no
other task package: what tasks share lives in ``kdtemp.tasks.base``, ``kdtemp.tasks.hf`` or a layer
below.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------------------
# The layers, lowest first. A module belongs to the longest prefix that names it (``kdtemp.study``
# covers ``kdtemp.study.spec``); ``kdtemp`` itself (``__version__`` only) sits below everything.
LAYERS: list[tuple[str, list[str]]] = [
    ("package root", ["kdtemp"]),
    # typed configuration, atomic files, reading users' files, plug-in loading, progress bars: no tensors, no maths
    ("utilities", ["kdtemp.config", "kdtemp.files", "kdtemp.paths", "kdtemp.plugins", "kdtemp.progress", "kdtemp.weights",
                   "kdtemp.readers"]),
    # pure maths on tensors: know nothing of data, tasks, engines or studies; import each other
    # only acyclically (the cycle check below); a plug-in objective is loaded through the utilities
    ("pure maths", ["kdtemp.objectives", "kdtemp.temperature", "kdtemp.signals", "kdtemp.diagnostics"]),
    ("tasks", ["kdtemp.tasks"]),
    ("engine", ["kdtemp.engine"]),
    # bridges to other trainers (Hugging Face's Trainer): kdtemp's maths in someone else's loop
    ("integrations", ["kdtemp.integrations"]),
    ("study", ["kdtemp.study"]),
    ("report and advice", ["kdtemp.report", "kdtemp.advise"]),
    ("entry points", ["kdtemp.cli", "kdtemp.demo", "kdtemp.__main__", "kdtemp.examples"]),
]

# Imports a layer may not make although the layer order allows them. The report knows only the
# store: it may import ``kdtemp.study.store`` and the study's layout helpers, never the driver or
# the executors, nor the ``kdtemp.study`` package facade (which re-exports the driver).
FORBIDDEN: dict[str, list[str]] = {
    "kdtemp.report": ["kdtemp.study", "kdtemp.study.driver", "kdtemp.study.executors"],
    "kdtemp.advise": ["kdtemp.study", "kdtemp.study.driver", "kdtemp.study.executors"],
}
# ---------------------------------------------------------------------------------------------------

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "kdtemp"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    file: Path
    line: int
    lazy: bool

    def __str__(self) -> str:
        where = f"{self.file.relative_to(SOURCE.parent)}:{self.line}"
        return f"{where}: {self.source} -> {self.target}" + (" (inside a function)" if self.lazy else "")


def modules() -> dict[str, tuple[Path, bool]]:
    """Every kdtemp module: name -> (file, whether it is a package)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, lazy: bool = False):
    """(node, inside a function) for every import statement, ``if TYPE_CHECKING:`` bodies included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, lazy
        else:
            inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from _imports(node, inner)


def edges() -> tuple[list[Edge], list[str]]:
    """Every import of one kdtemp module by another, and the kdtemp imports that name no module."""
    known = modules()
    found: list[Edge] = []
    unresolved: list[str] = []
    for name, (path, is_package) in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, lazy in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name.split(".")[0] == "kdtemp"]
            else:
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.split(".")[0] == "kdtemp":
                    origin = node.module
                else:
                    continue
                for alias in node.names:  # a submodule by name, else a name from the module
                    targets.append(f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin)
            for target in dict.fromkeys(targets):
                if target not in known:
                    unresolved.append(f"{path.relative_to(SOURCE.parent)}:{node.lineno}: {name} imports {target}, "
                                      "which is no kdtemp module")
                elif target != name:
                    found.append(Edge(name, target, path, node.lineno, lazy))
    return found, unresolved


def layer_of(module: str) -> int | None:
    best, index = -1, None
    for position, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            root_only = prefix == "kdtemp"
            if module == prefix or (not root_only and module.startswith(prefix + ".")):
                if len(prefix) > best:
                    best, index = len(prefix), position
    return index


def _fail(title: str, lines: list[str]) -> None:
    pytest.fail(f"{title} ({len(lines)}):\n  " + "\n  ".join(lines), pytrace=False)


def test_every_module_has_a_layer_and_every_import_resolves():
    missing = [name for name in modules() if layer_of(name) is None]
    _, unresolved = edges()
    problems = [f"{name}: in no layer of LAYERS" for name in missing] + unresolved
    if problems:
        _fail("modules outside the layer table, or imports of no module", problems)


def test_no_module_imports_a_layer_above_it():
    offending = []
    for edge in edges()[0]:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source is not None and target is not None and target > source:
            offending.append(f"{edge}   [{LAYERS[source][0]} imports {LAYERS[target][0]}]")
        for prefix, targets in FORBIDDEN.items():
            if (edge.source == prefix or edge.source.startswith(prefix + ".")) and edge.target in targets:
                offending.append(f"{edge}   [{prefix} may not import {edge.target}]")
    if offending:
        _fail("imports that point up the layers", offending)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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
                    components.append(sorted(component))
    return components


def test_no_import_cycles():
    found = edges()[0]
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for edge in found:
        graph[edge.source].add(edge.target)
    lines = []
    for component in _cycles(graph):
        members = set(component)
        lines.append("cycle among " + ", ".join(component) + ":")
        lines += [f"    {edge}" for edge in found if edge.source in members and edge.target in members]
    if lines:
        _fail("import cycles", lines)


def test_the_walk_sees_lazy_relative_and_type_checking_imports(tmp_path):
    """The walk itself: a function-level relative import counts, and so does a TYPE_CHECKING one."""
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import b\n"
                     "def f():\n    from ..c import d\n")
    seen = [(node.module, node.level, lazy) for node, lazy in _imports(tree)]
    assert seen == [("typing", 0, False), ("a", 1, False), ("c", 2, True)]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert layer_of("kdtemp.study.spec") == [n for n, _ in LAYERS].index("study")
    assert layer_of("kdtemp.studyish") is None and layer_of("kdtemp") == 0


TASK_PACKAGES = ("kdtemp.tasks.image", "kdtemp.tasks.text", "kdtemp.tasks.lm")


def _package(module: str) -> str | None:
    return next((p for p in TASK_PACKAGES if module == p or module.startswith(p + ".")), None)


def test_tasks_are_plug_ins_that_import_no_other_task():
    offending = []
    for edge in edges()[0]:
        target, source = _package(edge.target), _package(edge.source)
        if target is None or source == target or edge.source == "kdtemp.tasks":
            continue
        reason = f"{source} imports another task" if source else "only kdtemp.tasks imports a task package"
        offending.append(f"{edge}   [{reason}]")
    if offending:
        _fail("imports of a task package's insides", offending)
