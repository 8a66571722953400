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
type needs no check (no ``is_type_of``), or only Strawberry's isinstance check
for types with interfaces, goes straight to its fields. Together about a quarter
of graphql-core's time for a page of 100 prospects with their statuses, owners
and enrollments.

A plain attribute of ``self`` whose type is such an object, or a list of them
(an edge's node, a connection's edges), is completed there too, without the
resolve info graphql-core would build for it and nothing would read: two of the
five non-leaf fields of each row of that page.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from operator import attrgetter
from time import perf_counter
from types import FunctionType
from typing import Any, cast

import strawberry
from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
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
from strawberry.types.base import StrawberryObjectDefinition, StrawberryOptional
from strawberry.types.field import StrawberryField

Resolve = Callable[..., Any]

_SCALARS = (int, float, str, bool, strawberry.ID)
"""Argument types whose values graphql-core passes as Strawberry would (no conversion)."""


LEAF = "leadline.leaf"
"""The key, in a GraphQL field's extensions, of its (getter of the source, leaf type)."""

ATTRIBUTE = "leadline.attribute"
"""The key, in a GraphQL field's extensions, of the getter of a plain attribute of
the source whose type is not a leaf (an edge's node, a connection's edges)."""

PLAIN_CHECK = "leadline.plain_check"
"""The key, in an object type's extensions, set when its ``is_type_of`` (if any) is
Strawberry's, made for a type with interfaces: an isinstance check that reads no
resolve info."""


def install(schema: strawberry.Schema) -> int:
    """Replaces the wrapper of every field it can; how many it replaced."""
    replaced = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        definition = graphql_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if isinstance(definition, StrawberryObjectDefinition) and definition.is_type_of is None:
            graphql_type.extensions = {**graphql_type.extensions, PLAIN_CHECK: True}
        for field in graphql_type.fields.values():
            resolve = direct(schema, field)
            if resolve is not None:
                field.resolve = resolve
                replaced += 1
                get = getattr(resolve, "get", None)
                leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
                if get is not None and is_leaf_type(leaf):
                    field.extensions = {**field.extensions, LEAF: (get, leaf)}
                elif get is not None and getattr(resolve, "attribute", False):
                    field.extensions = {**field.extensions, ATTRIBUTE: get}
    return replaced


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor (Strawberry's subclass) with the short ways above,
    unless an extension resolves every field (Strawberry's middleware); it holds no
    cycle through itself, and keeps no memo from one subscription event to the next."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager
        self.short_ways = middleware is None or not middleware.middlewares
        self.plans: dict[tuple[int, str], tuple[GroupedFieldSet, list[Step]]] = {}
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
        wrong or failing, which graphql-core's execute_field then reports, and its
        plain attributes of object and list types completed here."""
        if not self.short_ways:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        key = (id(grouped_field_set), parent_type.name)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = (grouped_field_set, _plan(parent_type, grouped_field_set))
        results: dict[str, Any] = {}
        pending: list[str] = []
        try:
            for name, details, leaf, attribute in plan[1]:
                if leaf is not None:
                    value = _leaf_value(leaf, source_value)
                    if value is not None:
                        results[name] = value
                        continue
                field_path = Path(path, name, parent_type.name)
                if attribute is not None and self._completes_directly(value := attribute[0](source_value)):
                    result = self._complete_attribute(attribute[1], details, field_path, value, position_context)
                else:
                    result = self.execute_field(parent_type, source_value, details, field_path, position_context)
                if result is not Undefined:
                    results[name] = result
                    if self.is_awaitable(result):
                        pending.append(name)
        except Exception:
            if pending:  # their errors are still observed
                self.settle_in_background([results[name] for name in pending])
            raise
        return _awaiting(results, pending) if pending else results

    def _completes_directly(self, value: Any) -> bool:
        """Whether an attribute's value is completed by _complete_attribute: a list or
        an object; a null, an error or an awaitable takes execute_field's way, which
        reports or awaits it."""
        return type(value) is list or not (value is None or isinstance(value, Exception) or self.is_awaitable(value))

    def _complete_attribute(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> Any:
        """execute_field for a plain attribute of an object or list type whose value is
        at hand: its completion and error handling, without a resolve info (no
        resolver below it is given this one, and the completion of an object type
        with no ``is_type_of`` or Strawberry's, or of a list of them, reads none)."""
        try:
            completed = self.complete_value(
                return_type, field_details_list, cast("GraphQLResolveInfo[Any]", None), path, value, position_context
            )
            if self.is_awaitable(completed):
                return _settled_field(self, completed, return_type, field_details_list, path)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return completed

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        items: Any,
        position_context: Any,
    ) -> Any:
        """A list of more than SHORT_LIST items (a page's edges) completed in slices of
        about SLICE seconds, one a turn of the event loop, so that other requests'
        steps run between: completing a page of 100 prospects with their statuses,
        owners and enrollments in one step (~7 ms) kept every request that arrived
        meanwhile waiting. A streamed list, a list completed outside an event loop
        (``execute_sync``), or any list while an extension resolves every field,
        graphql-core's way."""
        if (
            not self.short_ways
            or type(items) is not list
            or len(items) <= SHORT_LIST
            or self.get_stream_usage(field_details_list, path) is not None
            or not _in_event_loop()
        ):
            return super().complete_iterable_value(item_type, field_details_list, info, path, items, position_context)
        return self._complete_in_slices(item_type, field_details_list, info, path, items, position_context)

    async def _complete_in_slices(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        items: list[Any],
        position_context: Any,
    ) -> list[Any]:
        completed: list[Any] = []
        pending: list[int] = []
        began = perf_counter()
        try:
            for index, item in enumerate(items):
                if perf_counter() - began > SLICE:
                    await asyncio.sleep(0)
                    began = perf_counter()
                item_path = path.add_key(index, None)
                if self.is_awaitable(item):
                    completed.append(
                        self.complete_awaitable_list_item_value(
                            item, item_type, field_details_list, info, item_path, position_context
                        )
                    )
                    pending.append(index)
                elif self.complete_list_item_value(
                    item, completed, item_type, field_details_list, info, item_path, position_context
                ):
                    pending.append(index)
        except BaseException:
            if pending:  # their errors are still observed
                self.settle_in_background([completed[index] for index in pending])
            raise
        if pending:
            values = await gather_with_cancel(*(completed[index] for index in pending))
            for index, value in zip(pending, values, strict=True):
                completed[index] = value
        return completed

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """An object (nullable or not) of a type with no ``is_type_of`` or Strawberry's,
        which it passes, goes straight to its fields; anything else (null, an error, a
        list, a leaf, an interface, an object of another type) graphql-core's way."""
        object_type = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        if isinstance(object_type, GraphQLObjectType) and result is not None and not isinstance(result, Exception):
            check = object_type.is_type_of
            if check is None or (PLAIN_CHECK in object_type.extensions and check(result, info) is True):
                return self.collect_and_execute_subfields(
                    object_type, field_details_list, path, result, position_context
                )
        return super().complete_value(return_type, field_details_list, info, path, result, position_context)


SLICE = 0.001
"""Seconds of a list's completion in one turn of the event loop: at 20 clients on a
70/30 mix, 0.5 ms kept a page's p99 over 250 ms, 2 ms the viewer's near 45 ms
(tests/benchmarks/README.md)."""

SHORT_LIST = 10
"""Lists of at most this many items are completed in one go."""

Leaf = tuple[Callable[[Any], Any], GraphQLLeafType]
Attribute = tuple[Callable[[Any], Any], GraphQLOutputType]
Step = tuple[str, FieldDetailsList, Leaf | None, Attribute | None]
"""A response name, its field details, and its leaf's or its attribute's getter and type."""


def _plan(parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> list[Step]:
    """Each response name of an object's selection, its field details, its leaf
    getter and its attribute getter (None for other fields and for fields not of
    this type, e.g. __typename)."""
    plan: list[Step] = []
    for name, details in grouped_field_set.items():
        field = parent_type.fields.get(details[0].node.name.value)
        if field is None:
            plan.append((name, details, None, None))
        else:
            plan.append((name, details, field.extensions.get(LEAF), _attribute_step(field, details)))
    return plan


def _attribute_step(field: GraphQLField, details: FieldDetailsList) -> Attribute | None:
    """The getter and type of a plain attribute completed without a resolve info: an
    object type with no ``is_type_of`` or Strawberry's, or a list of such objects,
    asked with no directive (a ``@stream`` of a list reads the info)."""
    get = field.extensions.get(ATTRIBUTE)
    if get is None or any(detail.node.directives for detail in details):
        return None
    inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if isinstance(inner, GraphQLList):
        inner = inner.of_type.of_type if isinstance(inner.of_type, GraphQLNonNull) else inner.of_type
    if not isinstance(inner, GraphQLObjectType) or not (inner.is_type_of is None or PLAIN_CHECK in inner.extensions):
        return None
    return get, field.type


async def _settled_field(
    executor: Executor, completed: Any, return_type: GraphQLOutputType, details: FieldDetailsList, path: Path
) -> Any:
    try:
        return await completed
    except Exception as raw_error:
        executor.handle_field_error(raw_error, return_type, details, path)
        return None


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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
    resolve.attribute = True  # type: ignore[attr-defined]
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
