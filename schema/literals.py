"""Text that a document's string literals may hold (SPEC R15).

A NUL character cannot be stored in PostgreSQL's text (SQLite would cut the text
where C reads it), and a lone surrogate cannot be written in any encoding. In
variables they are refused as the JSON is read (app/limits.py); in a literal they
arrive as GraphQL escapes (``"Ada\\u0000"``), which only the parser turns into the
character. This validation rule refuses them there, on HTTP and websockets alike,
with an error naming where, before any resolver runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    FieldNode,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectFieldNode,
    StringValueNode,
    ValidationRule,
    VariableDefinitionNode,
)

_SURROGATE = re.compile("[\ud800-\udfff]")


class TextLiterals(ValidationRule):
    """Refuses a string literal (block strings too) holding NUL or a lone surrogate."""

    def enter_string_value(self, node: StringValueNode, _key: Any, parent: Any, _path: Any, ancestors: Any) -> None:
        if "\x00" in node.value:
            what = "a NUL character (\\u0000), which text may not hold"
        elif _SURROGATE.search(node.value):
            what = "a lone surrogate, which is not text"
        else:
            return
        self.report_error(GraphQLError(f"The string at {_where([*ancestors, parent, node])} has {what}.", node))


def _where(ancestors: Sequence[Node | Sequence[Node]]) -> str:
    """Where a value is, as the operation names it: ``createProspect.input.prospect.firstName``."""
    nodes = [node for node in ancestors if isinstance(node, Node)]
    names: list[str] = []
    for node, inner in pairwise(nodes):
        if isinstance(node, FieldNode):
            names.append((node.alias or node.name).value)
        elif isinstance(node, ArgumentNode | ObjectFieldNode):
            names.append(node.name.value)
        elif isinstance(node, DirectiveNode):
            names.append(f"@{node.name.value}")
        elif isinstance(node, VariableDefinitionNode):
            names.append(f"${node.variable.name.value}")
        elif isinstance(node, ListValueNode):
            names.append(str(next(i for i, value in enumerate(node.values) if value is inner)))
    return ".".join(names)
