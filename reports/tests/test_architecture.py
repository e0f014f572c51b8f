"""The module map of docs/architecture.md holds: no import cycle, no import up a layer, every module placed.

The imports are read from the source with ``ast`` (nothing is imported), and
function-local imports count: a cycle hidden inside a function still runs
(``store -> metrics -> selectors -> store`` did, through ``metrics.collect()``).
Only imports under ``if TYPE_CHECKING:`` are left out, as they never run.
The layers and the place of each module are written once, in the map's
tables; this file only reads them.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_MAP = ROOT / "docs" / "architecture.md"

# --- reading the source ----------------------------------------------------------------------

def source_modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of *package* by dotted name, except its tests and migrations."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "tests" in parts or "migrations" in parts:
            continue
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _runtime_imports(tree: ast.AST):
    """Every import statement that can run, at any depth, skipping ``if TYPE_CHECKING:`` bodies."""
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of *name* that is one of *modules* (a name inside a module is that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The project modules *name* imports, each with the line of its first import."""
    found: dict[str, int] = {}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [_known(alias.name, modules) for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            # ``from reports import store`` imports the module reports.store, not the package.
            targets = [_known(f"{base}.{alias.name}", modules) if f"{base}.{alias.name}" in modules
                       else _known(base, modules) for alias in node.names]
        for target in targets:
            if target and target != name:
                found.setdefault(target, node.lineno)
    return found


def import_graph(root: Path, package: str) -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    modules = source_modules(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}, modules


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One concrete cycle (first module repeated at the end) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graphs are a few dozen modules, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(min(group), group, graph) for group in groups]


def _cycle_through(start: str, group: set[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """The shortest import path from *start* back to itself inside *group*."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target in group and target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group always has one


def describe(cycle: list[str], graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> str:
    steps = [f"{modules[a].relative_to(ROOT)}:{graph[a][b]} imports {b}" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(cycle) + "\n    " + "\n    ".join(steps)


# --- reading the map -----------------------------------------------------------------------------

_LAYERS = re.compile(r"^Layers of `(\w+)/`, lowest first: (.+)\.$", re.MULTILINE)
_ROW = re.compile(r"^\| `((\w+)/[^`]+)` \| (\w+) \|", re.MULTILINE)


def module_map(package: str, text: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The map's layers of *package*, lowest first, and its rows: path pattern -> layer."""
    text = MODULE_MAP.read_text(encoding="utf-8") if text is None else text
    section = text[text.index("## Module map"):]
    [layers] = [re.findall(r"`(\w+)`", names) for name, names in _LAYERS.findall(section) if name == package]
    rows = {pattern: layer for pattern, owner, layer in _ROW.findall(section) if owner == package}
    unknown = {pattern: layer for pattern, layer in rows.items() if layer not in layers}
    assert not unknown, f"rows with a layer not in the layers line of {package}/: {unknown}"
    return layers, rows


def needs_a_row(path: Path) -> bool:
    """A package ``__init__.py`` holding nothing but a docstring has no place to keep."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return not (path.name == "__init__.py" and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body))


def placement(modules: dict[str, Path], rows: dict[str, str]) -> dict[str, list[str]]:
    """Each module's matching row patterns."""
    return {name: [pattern for pattern in rows if fnmatch.fnmatchcase(path.relative_to(ROOT).as_posix(), pattern)]
            for name, path in modules.items()}


# --- the tree ------------------------------------------------------------------------------------

@pytest.mark.parametrize("package", ["reports", "agent"])
def test_no_import_cycle(package):
    graph, modules = import_graph(ROOT, package)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles (function-local imports count):\n" + "\n".join(
        describe(cycle, graph, modules) for cycle in cycles)


@pytest.mark.parametrize("package", ["reports", "agent"])
def test_no_import_climbs_a_layer_of_the_module_map(package):
    """A module imports its own layer or a lower one (unplaced modules are the next test's failure)."""
    graph, modules = import_graph(ROOT, package)
    layers, rows = module_map(package)
    layer_of = {name: rows[patterns[0]] for name, patterns in placement(modules, rows).items() if len(patterns) == 1}
    climbing = [f"{modules[a].relative_to(ROOT)}:{line} ({layer_of[a]}) imports {b} ({layer_of[b]})"
                for a, targets in sorted(graph.items()) for b, line in sorted(targets.items())
                if a in layer_of and b in layer_of and layers.index(layer_of[b]) > layers.index(layer_of[a])]
    assert not climbing, "imports up a layer of docs/architecture.md's module map:\n" + "\n".join(climbing)


@pytest.mark.parametrize("package", ["reports", "agent"])
def test_the_module_map_places_every_module_once_and_names_only_real_ones(package):
    _, modules = import_graph(ROOT, package)
    _, rows = module_map(package)
    placed = placement({name: path for name, path in modules.items() if needs_a_row(path)}, rows)
    unplaced = sorted(str(modules[name].relative_to(ROOT)) for name, patterns in placed.items() if not patterns)
    twice = {name: patterns for name, patterns in placed.items() if len(patterns) > 1}
    matched = {pattern for patterns in placed.values() for pattern in patterns}
    assert not unplaced, f"modules with no row in docs/architecture.md's module map: {unplaced}"
    assert not twice, f"modules matched by more than one row of the module map: {twice}"
    assert not set(rows) - matched, f"rows of the module map that name no module: {sorted(set(rows) - matched)}"


# --- the checks themselves, on made-up packages ---------------------------------------------------------

def _package(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        (root / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "pkg" / name).write_text(source)


def test_a_cycle_hidden_in_a_function_is_found_and_a_type_checking_import_is_not_one(tmp_path):
    _package(tmp_path, {
        "__init__.py": "",
        "store.py": "from pkg import metrics\n",
        "metrics.py": "def collect():\n    from pkg import selectors\n    return selectors\n",
        "selectors.py": "from . import store as _store\n",
        "collector.py": "from pkg import inventory\n",
        "inventory.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .collector import Sources\n",
    })
    graph, _ = import_graph(tmp_path, "pkg")
    assert graph["pkg.metrics"] == {"pkg.selectors": 2}
    assert graph["pkg.inventory"] == {}
    assert import_cycles(graph) == [["pkg.metrics", "pkg.selectors", "pkg.store", "pkg.metrics"]]


def test_the_map_is_read_from_its_tables():
    text = ("## Module map\n\nLayers of `pkg/`, lowest first: `leaf`, `top`.\n\n| Module | Layer | Owns |\n"
            "|---|---|---|\n| `pkg/a.py` | leaf | a |\n| `pkg/commands/*.py` | top | b |\n| `other/c.py` | leaf | c |\n")
    assert module_map("pkg", text) == (["leaf", "top"], {"pkg/a.py": "leaf", "pkg/commands/*.py": "top"})
    with pytest.raises(AssertionError, match="not in the layers line"):
        module_map("pkg", text.replace("| top | b |", "| middle | b |"))
