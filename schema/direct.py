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
column, an id) goes further: ``Executor`` asks it for its value and coerces it
without the rest of graphql-core's per-field work (a ``GraphQLResolveInfo``, the
argument values, the completion's dispatch), about three fifths of a field's
cost. A null, an error or a value that does not coerce takes graphql-core's way,
which reports it as it would have.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from operator import attrgetter
from types import FunctionType
from typing import Any

import strawberry
from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
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
    """graphql-core's executor with the short way for leaf fields of ``self`` (above),
    unless an extension resolves every field (Strawberry's middleware)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager
        self.short_leaves = middleware is None or not middleware.middlewares
        # graphql-core's helpers hold this executor's bound methods, and so the executor
        # and through it the request's context, loaders and rows: a cycle, which only
        # the cyclic collector frees, in pauses that grow with what requests hold.
        # Through a weak reference it all goes by reference counting when the request ends.
        this = weakref.ref(self)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: this().gather_async_work(values),  # type: ignore[union-attr]
            track=lambda values: this().track_async_work(values),  # type: ignore[union-attr]
        )

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        field = parent_type.fields.get(field_details_list[0].node.name.value)
        leaf: tuple[Callable[[Any], Any], GraphQLLeafType] | None = (
            field.extensions.get(LEAF) if field is not None and self.short_leaves else None
        )
        if leaf is not None:
            get, leaf_type = leaf
            try:
                value = get(source)
                coerced = (
                    None if value is None or isinstance(value, Exception) else leaf_type.coerce_output_value(value)
                )
            except Exception:
                coerced = None
            if coerced is not None and coerced is not Undefined:
                return coerced
        return super().execute_field(parent_type, source, field_details_list, path, position_context)


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
