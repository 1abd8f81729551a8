"""
The import graph of C{twisted_lb} has no cycle, except the allowances named
below.

The graph is read from the source with C{ast}, without importing anything:
every C{import} and C{from ... import} of a C{twisted_lb} module counts,
wherever it stands (module level, inside a function, under
C{if TYPE_CHECKING:}), because each is an arrow from user to used, and a
lazy or type-only import is a cycle postponed, not removed. C{from package
import name} is an arrow to C{package.name} when that is a module, else to
the package. Importing a module does not count as importing its parent
packages (their C{__init__} re-exports would make every package a cycle).

A cycle is reported as its strongly connected component (every module that
can reach every other), with one path through it as an example.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "twisted_lb"

#: Cycles that may exist for now, each named and kept exactly (the test
#: fails when one grows, shrinks or disappears, so that this list stays
#: true). None is left: a new cycle fails the test.
ALLOWED_CYCLES: frozenset[frozenset[str]] = frozenset()


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """The dotted name of the module at C{path} (a package is its C{__init__})."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package under C{root}, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The modules of C{known} that the module C{name} at C{path} imports."""
    known = set(known)
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts)
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in known else source)
    edges = set()
    for target in found:
        # "import twisted_lb.a.b" names the module twisted_lb.a.b.
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name and target.startswith("twisted_lb"):
            edges.add(target)
    return edges


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package under C{root} with the modules of it that it imports."""
    found = modules(root)
    return {name: imports_of(name, path, found) for name, path in found.items()}


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The components of C{graph} with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
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
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(frozenset(component))
    return components


def example_cycle(graph: Mapping[str, Iterable[str]], component: frozenset[str]) -> list[str]:
    """One cycle through the first module of C{component}, as a path that returns to it."""
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node]):
            if child == start:
                return paths[node] + [start]
            if child in component and child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    raise AssertionError(f"{sorted(component)} is not a cycle")


def describe(graph: Mapping[str, Iterable[str]], component: frozenset[str]) -> str:
    return f"{sorted(component)}, e.g. {' -> '.join(example_cycle(graph, component))}"


def test_no_import_cycle_but_the_allowed_ones() -> None:
    graph = import_graph()
    cycles = set(strongly_connected(graph))
    new = [describe(graph, c) for c in cycles - ALLOWED_CYCLES]
    gone = [sorted(c) for c in ALLOWED_CYCLES - cycles]
    assert not new, "import cycles:\n" + "\n".join(new)
    assert not gone, (
        "allowed cycles that no longer exist as listed (remove or correct them in "
        f"ALLOWED_CYCLES): {gone}; the cycles now: {[sorted(c) for c in cycles]}"
    )


def write_package(root: Path, files: Mapping[str, str]) -> Path:
    package = root / "twisted_lb"
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


@pytest.mark.parametrize(
    "files, cycle",
    [
        # Module-level, absolute.
        (
            {
                "__init__.py": "",
                "a.py": "import twisted_lb.b\n",
                "b.py": "from twisted_lb import a\n",
            },
            {"twisted_lb.a", "twisted_lb.b"},
        ),
        # Inside a function, relative, and under TYPE_CHECKING.
        (
            {
                "__init__.py": "",
                "ws/__init__.py": "",
                "ws/bridge.py": "from .member import M\n",
                "ws/member.py": "if TYPE_CHECKING:\n    from .bridge import T\n",
                "c.py": "def f():\n    from twisted_lb.ws.bridge import T\n",
            },
            {"twisted_lb.ws.bridge", "twisted_lb.ws.member"},
        ),
        (
            {
                "__init__.py": "",
                "p/__init__.py": "",
                "p/x.py": "def f():\n    from ..q import y\n",
                "q/__init__.py": "",
                "q/y.py": "from twisted_lb.p.x import g\n",
            },
            {"twisted_lb.p.x", "twisted_lb.q.y"},
        ),
    ],
)
def test_cycles_are_found(tmp_path: Path, files: dict[str, str], cycle: set[str]) -> None:
    """The graph sees each kind of import, and a cycle made of them is found and named."""
    graph = import_graph(write_package(tmp_path, files))
    components = strongly_connected(graph)
    assert components == [frozenset(cycle)]
    path = example_cycle(graph, components[0])
    assert path[0] == path[-1] and set(path) == cycle


def test_no_cycle_in_a_tree(tmp_path: Path) -> None:
    """Imports that only point one way (a package re-exporting its modules included) are no cycle."""
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "ws/__init__.py": "from .bridge import T\nfrom .member import M\n",
            "ws/bridge.py": "from .member import M\nfrom twisted_lb.ws import relay\n",
            "ws/member.py": "from .relay import R\n",
            "ws/relay.py": "import os\n",
        },
    )
    graph = import_graph(package)
    assert graph["twisted_lb.ws.bridge"] == {"twisted_lb.ws.member", "twisted_lb.ws.relay"}
    assert strongly_connected(graph) == []
