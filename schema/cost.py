"""The cost of an operation, computed from its document before anything runs (SPEC R15).

Every field costs 1. A field that returns a list multiplies what it selects by the
list's length: a connection's edges by its page size (`first`, else the default
page), any other list by its cap where the domain has one (a sequence's steps, an
action's operations, a batch mutation's rows) and otherwise by an estimate
(configuration such as workflows, statuses and actions has no cap: the estimates
are a few times what the presets make). Fragments count where they are spread,
and variables (`first: $n`) count at the value sent. An operation over the budget
is refused with a GraphQL error naming both, before any resolver runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
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
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from strawberry.extensions import SchemaExtension

from app.prospects.service import MAX_BATCH
from app.sequences.service import MAX_STEPS
from app.webhooks.service import MAX_ENDPOINTS
from app.workflows.operations import MAX_OPERATIONS
from schema.relay import DEFAULT_PAGE, MAX_PAGE

ESTIMATE = 20
"""The length assumed of a list with neither a page size nor an entry below."""

LENGTHS: dict[tuple[str, str], int] = {
    ("Sequence", "steps"): MAX_STEPS,
    ("Action", "operations"): MAX_OPERATIONS,
    ("AutomationRule", "operations"): MAX_OPERATIONS,
    ("Query", "webhookEndpoints"): MAX_ENDPOINTS,
    ("Query", "actions"): 50,
    ("Status", "actions"): 50,
    ("Query", "automationRules"): 50,
    ("Query", "users"): 100,
    ("Query", "agentLoad"): 100,
    ("Query", "apiTokens"): 100,
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
}
"""Lengths of lists that are not pages, by (type, field): caps, then estimates."""


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    return _Coster(schema, fragments, _variable_values(operation, variables)).selections(
        operation.selection_set, schema.get_root_type(operation.operation), None
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


class _Coster:
    def __init__(
        self, schema: GraphQLSchema, fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.spread_costs: dict[str, int] = {}
        self.spreading: set[str] = set()

    def selections(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None, page: int | None
    ) -> int:
        """What a selection set costs once; ``page`` is the length of ``parent``'s
        edges when ``parent`` is a connection."""
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.spread(selection.name.value, page)
        return total

    def spread(self, name: str, page: int | None) -> int:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.spreading:
            return 0  # unknown or cyclic: graphql-core's own rules report it
        key = f"{name}@{page}"
        if key not in self.spread_costs:  # a fragment spread many times is costed once
            self.spreading.add(name)
            parent = self.schema.get_type(fragment.type_condition.name.value)
            self.spread_costs[key] = self.selections(fragment.selection_set, parent, page)
            self.spreading.discard(name)
        return self.spread_costs[key]

    def field(self, node: FieldNode, parent: GraphQLNamedType | None, page: int | None) -> int:
        definition = self._definition(node.name.value, parent)
        if definition is None or node.selection_set is None:
            return 1
        named = get_named_type(definition.type)
        inner_page = self._page_size(node) if _is_connection(named) else None
        length = 1
        if is_list_type(get_nullable_type(definition.type)):
            if node.name.value == "edges" and page is not None:
                length = page
            else:
                length = LENGTHS.get((parent.name if parent else "", node.name.value), ESTIMATE)
        return 1 + length * self.selections(node.selection_set, named, inner_page)

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


def _definitions(context: ValidationContext) -> Iterator[OperationDefinitionNode]:
    for definition in context.document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            yield definition


class CostLimiter(SchemaExtension):
    """Refuses an operation whose cost is over ``max_cost`` at validation."""

    def __init__(self, *, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        budget, variables = self.max_cost, context.variables or {}

        class CostRule(ValidationRule):
            def __init__(self, validation: ValidationContext) -> None:
                super().__init__(validation)
                document = validation.document
                fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
                for operation in _definitions(validation):
                    cost = operation_cost(validation.schema, operation, fragments, variables)
                    if cost > budget:
                        self.report_error(
                            GraphQLError(
                                f"Query cost {cost:,} is over the budget of {budget:,} (GRAPHQL_MAX_COST): "
                                f"every field costs 1 and a list multiplies what it selects by its length "
                                f"(`first`, {DEFAULT_PAGE} when absent); ask for smaller pages or fewer nested lists.",
                                operation,
                            )
                        )

        context.validation_rules = (*context.validation_rules, CostRule)
        yield
