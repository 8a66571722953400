"""Resolvers graphql-core calls directly, without Strawberry's wrapper.

Strawberry wraps every resolver in one that makes an ``Info``, converts the
arguments and runs the field's extensions, and it does so for each field of each
object: a few µs a field, a sixth of a page of 100 prospects with their statuses,
owners and enrollments (1,700 fields). Most fields need none of it: a sync method
of ``self`` alone (a row's column), or of ``self``, ``info`` and scalar arguments
(a value from the request's loaders, a nested page), or a plain attribute. For
those the wrapper is replaced by a direct call with what the method asks for; a
field with an input, enum or list argument, an extension or an async resolver
keeps Strawberry's.

A direct field of ``self`` alone whose type is a scalar or an enum (a row's
column, an id) goes further: ``Executor``, as it executes an object's fields,
asks it for its value and coerces it there, without the rest of graphql-core's
per-field work (a Path, a ``GraphQLResolveInfo``, the argument values, the
completion's dispatch). A null, an error or a value that does not coerce takes
graphql-core's way, which reports it as it would have. An object value whose
type needs no check (no ``is_type_of``) goes straight to its fields. Together
about a quarter of graphql-core's time for a page of 100 prospects with their
statuses, owners and enrollments.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from operator import attrgetter
from types import FunctionType
from typing import Any, cast

import strawberry
from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryOptional
from strawberry.types.field import StrawberryField

Resolve = Callable[..., Any]

_SCALARS = (int, float, str, bool, strawberry.ID)
"""Argument types whose values graphql-core passes as Strawberry would (no conversion)."""


LEAF = "leadline.leaf"
"""The key, in a GraphQL field's extensions, of its (getter of the source, leaf type)."""


def install(schema: strawberry.Schema) -> int:
    """Replaces the wrapper of every field it can; how many it replaced."""
    replaced = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for field in graphql_type.fields.values():
            resolve = direct(schema, field)
            if resolve is not None:
                field.resolve = resolve
                replaced += 1
                get = getattr(resolve, "get", None)
                leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
                if get is not None and is_leaf_type(leaf):
                    field.extensions = {**field.extensions, LEAF: (get, leaf)}
    return replaced


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor (Strawberry's subclass) with the short ways above,
    unless an extension resolves every field (Strawberry's middleware); it holds no
    cycle through itself, and keeps no memo from one subscription event to the next."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager
        self.short_leaves = middleware is None or not middleware.middlewares
        self.plans: dict[tuple[int, str], tuple[GroupedFieldSet, list[tuple[str, Any, Leaf | None]]]] = {}
        """_plan of each grouped field set, by its id and its type's name (the set is
        held with its plan, so the id stays its own)."""
        # graphql-core's helpers hold this executor's bound methods, and so the executor
        # and through it the request's context, loaders and rows: a cycle, which only
        # the cyclic collector frees, in pauses that grow with what requests hold.
        # Through a weak reference it all goes by reference counting when the request ends.
        this = weakref.ref(self)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: this().gather_async_work(values),  # type: ignore[union-attr]
            track=lambda values: this().track_async_work(values),  # type: ignore[union-attr]
        )

    def build_per_event_executor(self, payload: Any) -> Any:
        """An event's executor, with memos of its own. Its root fields are collected
        afresh every event, so memos it shared with the subscription's executor
        (graphql-core's of sub-fields and of stream usages, ours of plans), keyed by
        what was collected, gained entries every event for as long as the
        subscription lived."""
        executor = cast(Executor, super().build_per_event_executor(payload))
        executor._relevant_sub_fields = {}
        executor._stream_usages = type(self._stream_usages)()
        executor.plans = {}
        return executor

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        """The fields of one object, as graphql-core executes them, the leaves of
        ``self`` answered here (no Path, no call of execute_field) unless null,
        wrong or failing, which graphql-core's execute_field then reports."""
        if not self.short_leaves:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        key = (id(grouped_field_set), parent_type.name)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = (grouped_field_set, _plan(parent_type, grouped_field_set))
        results: dict[str, Any] = {}
        pending: list[str] = []
        try:
            for name, details, leaf in plan[1]:
                if leaf is not None:
                    value = _leaf_value(leaf, source_value)
                    if value is not None:
                        results[name] = value
                        continue
                result = self.execute_field(
                    parent_type, source_value, details, Path(path, name, parent_type.name), position_context
                )
                if result is not Undefined:
                    results[name] = result
                    if self.is_awaitable(result):
                        pending.append(name)
        except Exception:
            if pending:  # their errors are still observed
                self.settle_in_background([results[name] for name in pending])
            raise
        return _awaiting(results, pending) if pending else results

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """An object (nullable or not) whose type has no ``is_type_of`` goes straight
        to its fields; anything else (null, an error, a list, a leaf, an interface)
        graphql-core's way."""
        object_type = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        if (
            isinstance(object_type, GraphQLObjectType)
            and object_type.is_type_of is None
            and result is not None
            and not isinstance(result, Exception)
        ):
            return self.collect_and_execute_subfields(object_type, field_details_list, path, result, position_context)
        return super().complete_value(return_type, field_details_list, info, path, result, position_context)


Leaf = tuple[Callable[[Any], Any], GraphQLLeafType]


def _plan(parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> list[tuple[str, Any, Leaf | None]]:
    """Each response name of an object's selection, its field details and its leaf
    getter (None for other fields and fields not of this type, e.g. __typename)."""
    plan = []
    for name, details in grouped_field_set.items():
        field = parent_type.fields.get(details[0].node.name.value)
        plan.append((name, details, None if field is None else field.extensions.get(LEAF)))
    return plan


def _leaf_value(leaf: Leaf, source: Any) -> Any:
    """The leaf's coerced value, or None when graphql-core's way must answer."""
    get, leaf_type = leaf
    try:
        value = get(source)
        if value is None or isinstance(value, Exception):
            return None
        coerced = leaf_type.coerce_output_value(value)
    except Exception:
        return None
    return None if coerced is Undefined else coerced


async def _awaiting(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
    if len(pending) == 1:
        results[pending[0]] = await results[pending[0]]
    else:
        values = await gather_with_cancel(*(results[name] for name in pending))
        results.update(zip(pending, values, strict=True))
    return results


def direct(schema: strawberry.Schema, field: GraphQLField) -> Resolve | None:
    """The direct resolver of ``field``, or None when it needs Strawberry's wrapper."""
    definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or definition.extensions or field.subscribe:
        return None
    resolver = definition.base_resolver
    if resolver is None:
        return None if field.args else _attribute(definition.python_name)
    method = resolver.wrapped_func
    if not isinstance(method, FunctionType) or resolver.is_async or resolver.self_parameter is None:
        return None
    if not all(_scalar(argument.type) for argument in definition.arguments):
        return None
    arguments = {schema.config.name_converter.from_argument(a): a.python_name for a in definition.arguments}
    taken = [resolver.self_parameter.name]
    if resolver.info_parameter is not None:
        taken.append(resolver.info_parameter.name)
    if list(resolver.signature.parameters) != [*taken, *arguments.values()]:
        return None  # another parameter Strawberry fills (root, parent): its wrapper knows how
    if resolver.info_parameter is None:
        return None if arguments else _of_self(method)
    return _of_self_and_info(method, schema.config.info_class, definition, arguments)


def _scalar(type_: object) -> bool:
    if isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    return type_ in _SCALARS


def _attribute(name: str) -> Resolve:
    get = attrgetter(name)

    def resolve(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
        return get(source)

    resolve.get = get  # type: ignore[attr-defined]
    return resolve


def _of_self(method: Callable[[Any], Any]) -> Resolve:
    def resolve(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
        return method(source)

    resolve.get = method  # type: ignore[attr-defined]
    return resolve


def _of_self_and_info(
    method: Callable[..., Any], info_class: type[Any], definition: StrawberryField, arguments: dict[str, str]
) -> Resolve:
    """graphql-core passes the arguments given, by their GraphQL names; those left
    out take the method's defaults, as through Strawberry."""
    renamed = {name: python for name, python in arguments.items() if name != python}

    def resolve(source: Any, info: GraphQLResolveInfo[Any], **given: Any) -> Any:
        if renamed:
            given = {renamed.get(name, name): value for name, value in given.items()}
        return method(source, info_class(_raw_info=info, _field=definition), **given)

    return resolve
