"""schema/ modules import each other without a cycle: the domains are layered, and a
GraphQL field pointing back up the layers names its type with strawberry.lazy."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    """The schema modules that ``tree`` imports when it runs (at module level or in a
    function; not under ``if TYPE_CHECKING:``, which only the type checker reads)."""
    found: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        pending.extend(ast.iter_child_nodes(node))
    return found & modules


def import_cycles(root: Path) -> list[set[str]]:
    """The strongly connected components of more than one module in schema/'s import graph."""
    paths = {_module(path, root): path for path in (root / "schema").rglob("*.py")}
    graph = {name: _imports(ast.parse(path.read_text()), set(paths)) - {name} for name, path in paths.items()}

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        pending = [start]
        while pending:
            for target in graph[pending.pop()] - seen:
                seen.add(target)
                pending.append(target)
        return seen

    reachable = {name: reach(name) for name in graph}
    cycles: list[set[str]] = []
    for name in sorted(graph):
        component = {name} | {other for other in reachable[name] if name in reachable[other]}
        if len(component) > 1 and component not in cycles:
            cycles.append(component)
    return cycles


def test_schema_modules_import_without_a_cycle() -> None:
    assert import_cycles(ROOT) == []
