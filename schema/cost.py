"""The cost of an operation, computed from its document before anything runs (SPEC R15).

Every field costs 1, but free text costs what it weighs against a name (WEIGHTS).
A field that returns a list multiplies what it selects by the list's length: a connection's edges by its page size (`first`, else the default
page), any other list by its cap (configuration's in app/caps.py, a sequence's
steps, an action's operations, a batch mutation's rows, an enum's values). A list
that splits a capped total among the distinct objects of an outer list (the
statuses of every workflow, the actions of every category) counts each at its
share of the total. Fragments count where they are spread, and variables
(`first: $n`) count at the value sent. An operation over the budget is refused
with a GraphQL error naming both, before any resolver runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)

from app import caps
from app.messaging.mailboxes import MAX_MAILBOXES
from app.prospects.service import MAX_BATCH
from app.prospects.suppressions import MAX_ADD
from app.sequences.service import MAX_STEPS
from app.sequences.state import Stage
from app.webhooks.service import MAX_ENDPOINTS
from app.workflows.models import SystemStatus
from app.workflows.operations import MAX_OPERATIONS
from schema.pagination import DEFAULT_PAGE, MAX_PAGE

ESTIMATE = 20
"""The length assumed of a list with neither a page size nor an entry below (a
mutation's errors: one for each field at fault)."""

Key = tuple[str, str]
"""A field: (type, field) as the schema names them."""

WEIGHTS: dict[Key, int] = {
    **{(owner, "body"): 100 for owner in ("Message", "SequenceStep", "Operation")},
    **{(owner, "subject"): 10 for owner in ("Message", "SequenceStep", "Operation")},
    **{(owner, "note"): 10 for owner in ("Activity", "Task", "StatusChange")},
    ("Prospect", "customFields"): 10,
    ("Event", "payload"): 10,
}
"""Fields of free text, by what they commonly weigh against a name: a body a few KB,
a subject, a note or a payload a line or a few. The response cap bounds the rest."""

LENGTHS: dict[Key, int] = {
    ("Query", "workflows"): caps.MAX_WORKFLOWS,
    ("ApplyPresetPayload", "workflows"): caps.MAX_WORKFLOWS,
    ("Workflow", "statuses"): caps.MAX_STATUSES_PER_WORKFLOW,
    ("PipelineReport", "rows"): caps.MAX_STATUSES,
    ("Action", "availableIn"): caps.MAX_STATUSES,
    ("Query", "actionCategories"): caps.MAX_CATEGORIES,
    ("Query", "actions"): caps.MAX_ACTIONS,
    ("Status", "actions"): caps.MAX_ACTIONS,
    ("ActionCategory", "actions"): caps.MAX_ACTIONS,
    ("Query", "automationRules"): caps.MAX_RULES,
    ("Query", "users"): caps.MAX_USERS,
    ("Query", "agentLoad"): caps.MAX_USERS,
    ("Query", "apiTokens"): caps.MAX_ACTIVE_TOKENS,
    ("Query", "systemStatusCounts"): len(SystemStatus),
    ("SequenceStats", "byStage"): len(Stage),
    ("Sequence", "steps"): MAX_STEPS,
    ("Action", "operations"): MAX_OPERATIONS,
    ("AutomationRule", "operations"): MAX_OPERATIONS,
    ("Query", "webhookEndpoints"): MAX_ENDPOINTS,
    ("Query", "mailboxes"): MAX_MAILBOXES,
    **{("UpsertProspectsPayload", field): MAX_BATCH for field in ("created", "updated", "errors")},
    **{
        (payload, field): MAX_BATCH
        for payload, rows in (
            ("CreateProspectsPayload", "prospects"),
            ("ProspectsPayload", "prospects"),
            ("EnrollProspectsPayload", "enrollments"),
            ("EnrollmentsPayload", "enrollments"),
        )
        for field in (rows, "errors")
    },
    ("AddSuppressionsPayload", "suppressions"): MAX_ADD,
    ("AddSuppressionsPayload", "errors"): MAX_ADD,
}
"""Lengths of lists that are not pages: their caps."""

TOTALS: dict[Key, int] = {
    ("Workflow", "statuses"): caps.MAX_STATUSES,
    ("ActionCategory", "actions"): caps.MAX_ACTIONS,
}
"""Lists whose lengths, summed over distinct parents, are at most a total: a status
is in one workflow, an action in one category."""

DISTINCT: frozenset[Key] = frozenset(
    {("Query", "workflows"), ("ApplyPresetPayload", "workflows"), ("Query", "actionCategories")}
)
"""Lists of distinct objects: under one of length n, a list in TOTALS counts at
total / n for each (n of them hold at most the total, however it is spread)."""


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    return _Coster(schema, fragments, _variable_values(operation, variables)).selections(
        operation.selection_set, schema.get_root_type(operation.operation), None, _NO_SHARES
    )


def _variable_values(operation: OperationDefinitionNode, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The variables sent, else the operation's defaults for them (only literal
    integers matter here: page sizes)."""
    values = dict(variables)
    for definition in operation.variable_definitions or ():
        name, default = definition.variable.name.value, definition.default_value
        if name not in values and isinstance(default, IntValueNode):
            values[name] = int(default.value)
    return values


Shares = tuple[tuple[Key, int], ...]
"""The lengths that lists in TOTALS count at in one selection set."""
_NO_SHARES: Shares = ()


def _shares(length: int) -> Shares:
    """The share of each total among ``length`` distinct parents (rounded up)."""
    return tuple((key, min(LENGTHS[key], -(-total // max(length, 1)))) for key, total in TOTALS.items())


class _Coster:
    def __init__(
        self, schema: GraphQLSchema, fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.spread_costs: dict[tuple[str, int | None, Shares], int] = {}
        self.spreading: set[str] = set()

    def selections(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None, page: int | None, shares: Shares
    ) -> int:
        """What a selection set costs once; ``page`` is the length of ``parent``'s
        edges when ``parent`` is a connection, ``shares`` the lengths of its lists
        in TOTALS when ``parent`` is one of a list of distinct objects."""
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page, shares)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner, page, shares)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.spread(selection.name.value, page, shares)
        return total

    def spread(self, name: str, page: int | None, shares: Shares) -> int:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.spreading:
            return 0  # unknown or cyclic: graphql-core's own rules report it
        key = (name, page, shares)
        if key not in self.spread_costs:  # a fragment spread many times is costed once
            self.spreading.add(name)
            parent = self.schema.get_type(fragment.type_condition.name.value)
            self.spread_costs[key] = self.selections(fragment.selection_set, parent, page, shares)
            self.spreading.discard(name)
        return self.spread_costs[key]

    def field(self, node: FieldNode, parent: GraphQLNamedType | None, page: int | None, shares: Shares) -> int:
        definition = self._definition(node.name.value, parent)
        key = (parent.name if parent else "", node.name.value)
        if definition is None or node.selection_set is None:
            return WEIGHTS.get(key, 1)
        named = get_named_type(definition.type)
        inner_page = self._page_size(node) if _is_connection(named) else None
        length, inner_shares = 1, _NO_SHARES
        if is_list_type(get_nullable_type(definition.type)):
            if node.name.value == "edges" and page is not None:
                length = page
            else:
                length = dict(shares).get(key) or LENGTHS.get(key, ESTIMATE)
            if key in DISTINCT:
                inner_shares = _shares(length)
        return 1 + length * self.selections(node.selection_set, named, inner_page, inner_shares)

    def _definition(self, name: str, parent: GraphQLNamedType | None) -> GraphQLField | None:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return None
        field: GraphQLField | None = parent.fields.get(name)
        return field

    def _page_size(self, node: FieldNode) -> int:
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            value: Any = argument.value
            if isinstance(value, VariableNode):
                value = self.variables.get(value.name.value)
            elif isinstance(value, IntValueNode):
                value = int(value.value)
            if isinstance(value, int) and not isinstance(value, bool):
                return min(max(value, 0), MAX_PAGE)  # out of range: refused by the resolver
        return DEFAULT_PAGE


def _is_connection(named: GraphQLNamedType) -> bool:
    return isinstance(named, GraphQLObjectType) and "edges" in named.fields and "pageInfo" in named.fields


def cost_errors(
    schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any], budget: int
) -> list[GraphQLError]:
    """An error for each operation of ``document`` whose cost is over ``budget``."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    errors = []
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        cost = operation_cost(schema, operation, fragments, variables)
        if cost > budget:
            errors.append(
                GraphQLError(
                    f"Query cost {cost:,} is over the budget of {budget:,} (GRAPHQL_MAX_COST): "
                    f"every field costs 1 and a list multiplies what it selects by its length "
                    f"(`first`, {DEFAULT_PAGE} when absent); ask for smaller pages or fewer nested lists.",
                    operation,
                )
            )
    return errors
