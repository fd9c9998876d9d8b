"""Import-graph rules of the package, checked with grimp: no cycles, and the layering
``layers <- models <- tasks <- inference <- cli``, ``io <- data``, registry and schema at the bottom.

The graph is ``grimp.build_graph("vidrnn", include_external_packages=True)``: every ``import``
statement counts, including those inside functions (lazy imports); external packages are nodes
named by their top-level name (``lightning``, ``torch``). That Lightning is really not imported
by ``load_model`` is checked by running it: ``tests/test_contract.py``.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import dataclass
from pathlib import Path

import grimp
import pytest

PACKAGE = "vidrnn"
PACKAGE_DIR = Path(importlib.util.find_spec(PACKAGE).submodule_search_locations[0])  # no import of vidrnn
REPO = Path(__file__).resolve().parent.parent


# ============================================================================ the graph
def _within(module: str, prefix: str) -> bool:
    """``module`` is ``prefix`` or one of its descendants."""
    return module == prefix or module.startswith(prefix + ".")


def _is_internal(module: str) -> bool:
    return _within(module, PACKAGE)


def _source_modules() -> tuple[dict[str, Path], set[str]]:
    """``{module: file}`` for every ``.py`` file of the package, and the namespace directories
    (directories with Python files but no ``__init__.py``) as module names."""
    modules: dict[str, Path] = {}
    namespaces: set[str] = set()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if not all(p.isidentifier() for p in parts):
            continue
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
        for d in path.parents:
            if d == PACKAGE_DIR:
                break
            if not (d / "__init__.py").is_file():
                namespaces.add(".".join(d.relative_to(PACKAGE_DIR.parent).parts))
    return modules, namespaces


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, include_external_packages=True, cache_dir=None)  # no cache in the repo


def _internal_modules(graph) -> list[str]:
    return sorted(m for m in graph.modules if _is_internal(m))


def _describe(graph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    if not details:
        return f"{importer} -> {imported}"
    return "; ".join(f"{importer} -> {imported} (line {d['line_number']}: {d['line_contents']})" for d in details)


def _imports_of(graph, prefixes: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(importer, imported)`` for every direct import by a module within ``prefixes``."""
    return sorted((m, i) for m in _internal_modules(graph) if any(_within(m, p) for p in prefixes)
                  for i in graph.find_modules_directly_imported_by(m))


# ============================================================================ coverage
def test_grimp_sees_every_module(graph):
    """Every ``.py`` file of the package is in the graph (grimp skips a sub-package without
    ``__init__.py`` and files imports of its modules under ``vidrnn``: the rules would pass
    without looking at it)."""
    sources, namespaces = _source_modules()
    missing = sorted(set(sources) - graph.modules)
    assert not missing, (f"grimp does not see {missing}: directories without __init__.py: {sorted(namespaces)}")
    # a rule that sees no modules passes vacuously: each rule's importers must exist
    for rule in RULES:
        assert any(any(_within(m, p) for p in rule.importers) for m in graph.modules), rule.id


# ============================================================================ cycles
def _strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    components.append(sorted(component))
    return components


def _cycle_through(start: str, component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest cycle ``[start, ..., start]`` inside ``component`` (breadth first)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(edges[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"{start} is on no cycle in {sorted(component)}")


def test_no_import_cycles(graph):
    """No cycle among the package's modules (package ``__init__`` modules included; every
    import counts, lazy ones too; a module importing a name from itself is not a cycle)."""
    nodes = _internal_modules(graph)
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if _is_internal(i) and i != m} for m in nodes}
    cycles = [c for c in _strongly_connected(nodes, edges) if len(c) > 1]
    messages = []
    for component in cycles:
        path = _cycle_through(component[0], set(component), edges)
        steps = "\n    ".join(_describe(graph, a, b) for a, b in itertools.pairwise(path))
        messages.append(f"cycle {' -> '.join(path)} (component {component}):\n    {steps}")
    assert not cycles, "import cycles:\n" + "\n".join(messages)


# ============================================================================ layers
@dataclass(frozen=True)
class Rule:
    """Modules within ``importers`` must not import anything within ``forbidden``; if ``only``
    is given, their imports from the package must all be within ``only``."""

    id: str
    importers: tuple[str, ...]
    reason: str
    forbidden: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None

    def violations(self, graph) -> list[tuple[str, str]]:
        bad = []
        for importer, imported in _imports_of(graph, self.importers):
            forbidden = any(_within(imported, f) for f in self.forbidden)
            outside = (self.only is not None and _is_internal(imported)
                       and not any(_within(imported, o) for o in self.only))
            if forbidden or outside:
                bad.append((importer, imported))
        return bad


_APP = ("vidrnn.inference", "vidrnn.cli", "vidrnn.config", "vidrnn.runner")
_LIGHTNING = ("lightning", "pytorch_lightning")

RULES = [
    Rule("registry", ("vidrnn.registry",), only=(),
         reason="the registry is imported by every model file; it must import nothing from vidrnn"),
    Rule("schema-errors", ("vidrnn.schema", "vidrnn.errors"), only=("vidrnn.errors",),
         reason="the validator and the error types are the bottom layer (schema may raise vidrnn.errors)"),
    Rule("layers", ("vidrnn.layers",), forbidden=("vidrnn.models", "vidrnn.tasks", "vidrnn.data") + _APP,
         reason="layers are model-agnostic blocks"),
    Rule("models", ("vidrnn.models",), forbidden=_LIGHTNING + ("vidrnn.tasks", "vidrnn.data") + _APP,
         reason="models are plain nn.Modules, usable without Lightning, tasks or data"),
    Rule("tasks", ("vidrnn.tasks",), forbidden=("vidrnn.data",) + _APP,
         reason="tasks train a model on whatever batches they get; config and runner assemble them"),
    Rule("data", ("vidrnn.data",), forbidden=("vidrnn.config", "vidrnn.layers", "vidrnn.tasks", "vidrnn.models",
                                              "vidrnn.inference", "vidrnn.cli", "vidrnn.runner"),
         reason="data produces tensors and knows nothing of models, tasks or the config"),
    Rule("io", ("vidrnn.io",), only=("vidrnn.io", "vidrnn.errors", "vidrnn.schema"),
         reason="io (decoding, sampling, files) is the bottom of the data stack"),
    Rule("inference", ("vidrnn.inference",), forbidden=("vidrnn.cli",),
         reason="the CLI is a thin front end over inference, not the other way round"),
    Rule("web", ("vidrnn.web",), forbidden=("vidrnn.cli", "vidrnn.runner", "vidrnn.tasks", "vidrnn.data"),
         reason="the web page is a front end over inference, like the CLI"),
    Rule("viz", ("vidrnn.viz",), only=("vidrnn.viz", "vidrnn.io", "vidrnn.errors"),
         reason="viz consumes tensors and arrays; it never builds or runs models"),
]


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_layer_rule(graph, rule):
    bad = rule.violations(graph)
    lines = "\n  ".join(_describe(graph, a, b) for a, b in bad)
    assert not bad, f"rule {rule.id!r} ({rule.reason}) broken by:\n  {lines}"


def test_only_the_entry_points_import_cli(graph):
    """Nothing but ``vidrnn.cli`` itself and ``vidrnn.__main__`` imports the CLI."""
    importers = sorted(graph.find_modules_that_directly_import("vidrnn.cli") - {"vidrnn.cli", "vidrnn.__main__"})
    lines = "\n  ".join(_describe(graph, m, "vidrnn.cli") for m in importers)
    assert not importers, f"only vidrnn.__main__ may import vidrnn.cli:\n  {lines}"


def test_models_do_not_reach_lightning_even_indirectly(graph):
    """No chain of imports (lazy ones included) leads from a model module to Lightning."""
    chains = [graph.find_shortest_chain(importer=m, imported=external)
              for m in _internal_modules(graph) if _within(m, "vidrnn.models")
              for external in _LIGHTNING if external in graph.modules]
    chains = [c for c in chains if c]
    detail = "\n  ".join(" -> ".join(c) + "\n    "
                         + "\n    ".join(_describe(graph, a, b) for a, b in itertools.pairwise(c)) for c in chains)
    assert not chains, f"models reach Lightning:\n  {detail}"


def test_checker_finds_a_toy_violation_and_cycle():
    """The checker itself: a rule flags a forbidden import, and a cycle is found, on a toy graph."""
    toy = grimp.ImportGraph()
    toy.add_import(importer="vidrnn.layers.a", imported="vidrnn.models.b", line_number=3,
                   line_contents="from vidrnn.models.b import B")
    toy.add_import(importer="vidrnn.models.b", imported="vidrnn.layers.a", line_number=1,
                   line_contents="from vidrnn.layers.a import A")
    toy.add_import(importer="vidrnn.models.b", imported="lightning", line_number=2, line_contents="import lightning")
    rules = {r.id: r for r in RULES}
    assert rules["layers"].violations(toy) == [("vidrnn.layers.a", "vidrnn.models.b")]
    assert rules["models"].violations(toy) == [("vidrnn.models.b", "lightning")]
    assert "line 3: from vidrnn.models.b import B" in _describe(toy, "vidrnn.layers.a", "vidrnn.models.b")
    nodes = sorted(m for m in toy.modules if _is_internal(m))
    edges = {m: {i for i in toy.find_modules_directly_imported_by(m) if _is_internal(i)} for m in nodes}
    assert [c for c in _strongly_connected(nodes, edges) if len(c) > 1] == [["vidrnn.layers.a", "vidrnn.models.b"]]
    assert _cycle_through("vidrnn.layers.a", set(nodes), edges) == ["vidrnn.layers.a", "vidrnn.models.b",
                                                                     "vidrnn.layers.a"]
