"""One writer per concept (STYLE.md): StageChange and StatusChange rows and their
events are made in one module each, so no path can write a change without its
event and side effects."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRITERS = {
    "StageChange": "app/sequences/stages.py",
    "StatusChange": "app/prospects/statuses.py",
}
EVENTS = {
    "stage_changed": "StageChange",
    "stage_changed_row": "StageChange",
    "status_changed": "StatusChange",
    "STAGE_CHANGED": "StageChange",
    "STATUS_CHANGED": "StatusChange",
}
"""The event log's payload builders and event types, by the change whose event they make."""
CREATING = {"create", "bulk_create", "get_or_create", "update_or_create"}
INSERTING = {"insert_returning", "insert_rows"}
"""app.bulk's inserts of plain rows, which take the model first."""


class _Module:
    """The calls of one module that make a change row or its event."""

    def __init__(self, tree: ast.Module) -> None:
        self.models: set[str] = set()
        """Local names of the change models (schema/ has GraphQL types of the same names)."""
        self.modules: set[str] = set()
        """Local names of ``….models`` modules."""
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    if node.module.endswith(".models") and alias.name in WRITERS:
                        self.models.add(local)
                    elif alias.name == "models":
                        self.modules.add(local)
        self.tree = tree

    def model(self, node: ast.expr) -> str | None:
        """The change model ``node`` names: ``StageChange``, ``models.StageChange``."""
        if isinstance(node, ast.Name) and node.id in self.models:
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in self.modules:
            return node.attr if node.attr in WRITERS else None
        return None

    def calls(self) -> Iterator[ast.Call]:
        """The module's calls but those in the payload builders' own bodies (wherever the
        builders live: they only make events, which their callers write)."""
        nodes: list[ast.AST] = [self.tree]
        while nodes:
            node = nodes.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in EVENTS:
                continue
            if isinstance(node, ast.Call):
                yield node
            nodes.extend(ast.iter_child_nodes(node))

    def writes(self, call: ast.Call) -> str | None:
        """The change model whose row or event ``call`` makes, if any: ``StageChange(…)``,
        ``StatusChange.create(…)``, ``bulk.insert_returning(StageChange, …)``,
        ``log.status_changed(…)``, ``log.prospect_event(EventType.STATUS_CHANGED, …)``."""
        if model := self.model(call.func):
            return model
        if (
            isinstance(call.func, ast.Attribute)
            and call.func.attr in CREATING
            and (model := self.model(call.func.value))
        ):
            return model
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
        if name in EVENTS:
            return EVENTS[name]
        if name in INSERTING and call.args and (model := self.model(call.args[0])):
            return model
        if call.args and isinstance(call.args[0], ast.Attribute) and call.args[0].attr in EVENTS:
            return EVENTS[call.args[0].attr]
        return None


def test_stage_and_status_changes_are_written_by_their_writer_only() -> None:
    found: defaultdict[str, set[str]] = defaultdict(set)
    for path in sorted(p for layer in ("app", "schema", "tasks") for p in (ROOT / layer).rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name.startswith("app/migrations/"):
            continue  # they name the models, and write no rows
        module = _Module(ast.parse(path.read_text(), name))
        for call in module.calls():
            if model := module.writes(call):
                found[model].add(name)

    assert {model: sorted(names) for model, names in found.items()} == {
        model: [name] for model, name in WRITERS.items()
    }


def test_the_writers_and_the_verbs_run_no_automation() -> None:
    """Their callers fire the rules after: a writer that ran them would import the
    rules' operations, which write through it (the cycle this keeps out)."""
    for name in ("app/sequences/stages.py", "app/prospects/statuses.py", "app/sequences/lifecycle.py"):
        tree = ast.parse((ROOT / name).read_text(), name)
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {
            f"{node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }
        assert not {m for m in imported if m.startswith(("app.prospects.effects", "app.automation"))}, name
