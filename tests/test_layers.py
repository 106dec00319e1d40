"""The import rules of the house, read from the source with ``ast`` (nothing is imported):

1. no import cycle between modules of ``proxy/`` and ``plugins/``;
2. no package importing a package of a higher layer (``LAYERS``, lowest first);
3. no module importing another module's private name (``from proxy.config import _format_error``);
4. the front ends (``FRONT_ENDS``: the admin API, ``/me``, the dashboard, the CLI) never import each
   other: what they share lives in ``proxy.services`` (logic) or ``proxy.edge.http`` (HTTP helpers).

Every import counts: module level, inside functions, and under ``if TYPE_CHECKING:``. A package is the
first name under ``proxy`` (``proxy.state.live`` -> ``state``; ``proxy.gateway`` -> ``gateway``); everything
under ``plugins/`` is ``plugins``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A package may import any package on a lower line; packages on one line may import each
# other (the domain line leans on itself: snapshots hold tenancy's keys and routing's table, tenancy's
# documents are layers over a snapshot).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("observe",),  # logs and metrics: they know nothing of what they measure
    ("upstream",),  # the provider HTTP client and the SSE parser
    ("plugin",),  # the plugin contract and the registry
    ("plugins",),  # the providers: they import the contract and the SSE parser, nothing else
    ("errors", "config"),
    ("store",),
    ("ledger",),  # the durable ledger in PostgreSQL: reads the store's records, below the domain
    ("tenancy", "routing", "metering", "state", "gateway"),  # the domain and the running gateway's state
    ("edge", "dataplane", "services"),  # the request path; the logic the front ends share
    ("responses", "messages"),  # endpoints in another wire format, served by the spine through a dialect
    ("admin", "me", "ui"),  # HTTP front ends
    ("app",),  # wires the app
    ("cli",),  # serves the app, and calls services
    ("proxy", "__main__", "testing"),  # the package's own lazy exports, ``python -m proxy``, test helpers
)

FRONT_ENDS = frozenset({"admin", "me", "ui", "cli"})

# Known edges that break the rule, each with why. Every entry must still exist (a fixed one is removed).
ALLOWED: dict[tuple[str, str], str] = {
    # The registry lists the built-in plugins' folder (``plugins.__path__``): the host's one way in.
    ("proxy.plugin.registry", "plugins"): "plugin discovery",
}


def modules() -> dict[str, Path]:
    """Module name -> file, for every module of ``proxy/`` and ``plugins/``."""
    found: dict[str, Path] = {}
    for top in ("proxy", "plugins"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path) -> Iterator[str]:
    """Every dotted name ``name`` imports, with ``from a import b`` giving ``a.b`` (``b`` may be a
    module or a name in ``a``: the caller resolves it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (the longest known prefix of each imported name)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        edges = graph.setdefault(name, set())
        for target in imported_names(name, path):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "plugins":
        return "plugins"
    return parts[1] if len(parts) > 1 else "proxy"


def layer_of(package: str) -> int:
    for level, names in enumerate(LAYERS):
        if package in names:
            return level
    raise AssertionError(f"package {package!r} is in no layer: add it to LAYERS in {__file__}")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(path_through(graph, set(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A closed path inside one strongly connected component, from its first module back to it."""
    start = min(component)
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if nxt not in parents:
                parents[nxt] = node
                queue.append(nxt)
    return sorted(component)


def violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for source, targets in sorted(graph.items()):
        mine = package_of(source)
        for target in sorted(targets):
            theirs = package_of(target)
            if theirs == mine or (source, target) in ALLOWED:
                continue
            if mine in FRONT_ENDS and theirs in FRONT_ENDS:
                out.append(f"{source} -> {target}: front ends {mine!r} and {theirs!r} stay apart")
            elif layer_of(theirs) > layer_of(mine):
                out.append(f"{source} -> {target}: {mine!r} is below {theirs!r}")
    return out


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_import_from_a_higher_layer() -> None:
    found = violations(import_graph())
    assert not found, "imports against the layers:\n" + "\n".join(found)


def private_imports() -> list[str]:
    out = []
    known = modules()
    for name, path in known.items():
        for target in imported_names(name, path):
            module, _, last = target.rpartition(".")
            if last.startswith("_") and not last.startswith("__") and module in known and module != name:
                out.append(f"{name} imports {target}")
    return out


def test_no_private_names_imported_from_another_module() -> None:
    found = private_imports()
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_every_allowed_edge_still_exists() -> None:
    graph = import_graph()
    stale = [f"{s} -> {t}" for s, t in ALLOWED if t not in graph.get(s, set())]
    assert not stale, "remove these from ALLOWED, they are gone:\n" + "\n".join(stale)


def test_the_checks_can_fail() -> None:
    graph = {"proxy.a.x": {"proxy.b.y"}, "proxy.b.y": {"proxy.a.x"}}
    assert cycles(graph) == [["proxy.a.x", "proxy.b.y", "proxy.a.x"]]
    upward = {"proxy.store.base": {"proxy.app"}, "proxy.admin.keys": {"proxy.me.app"}, "proxy.app": set()}
    assert violations(upward) == [
        "proxy.admin.keys -> proxy.me.app: front ends 'admin' and 'me' stay apart",
        "proxy.store.base -> proxy.app: 'store' is below 'app'",
    ]
