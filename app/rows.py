"""Rows into models without Tortoise's detour for joined rows.

Tortoise's select reads every row as if it joined related models, even when the
query selects one model's columns alone: the row is copied into a dict, then
into a list of items, sliced, copied into another dict and passed as keyword
arguments, and each field is then set by a call. A page of 100 prospects with
their statuses, owners and enrollments builds ~220 instances: building them here
takes 14 % off its CPU (tests/benchmarks/README.md).

``FastSelect`` builds the instances of a query that selects every column of its
model, with nothing joined, prefetched or annotated: the row's values go into the
instance's ``__dict__`` at once, then the fields whose values need converting
(datetimes, enums, JSON, decimals) are converted by the field, as Tortoise's
``_init_from_db`` converts them. Anything else (``.only()``, ``select_related``,
``prefetch_related``, annotations) takes Tortoise's way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from tortoise.backends.base.executor import CHUNK_SIZE, BaseExecutor
from tortoise.fields.base import Field
from tortoise.models import Model

Build = Callable[[Sequence[Any]], Model]

_builders: dict[tuple[type[Model], tuple[str, ...]], Build | None] = {}
"""By model and the row's column names (a query's columns come in one order per
model and process, so this holds a few per model)."""


def builder(model: type[Model], columns: tuple[str, ...]) -> Build | None:
    """What makes an instance of ``model`` from a row of ``columns``, as
    ``model._init_from_db(**row)`` would, or None when the row is not every
    column of the model (a partial select) or a field is set through a descriptor."""
    key = (model, columns)
    if key not in _builders:
        _builders[key] = _make(model, columns)
    return _builders[key]


def _make(model: type[Model], columns: tuple[str, ...]) -> Build | None:
    meta = model._meta
    names: dict[str, str] = {}
    converters: list[tuple[str, Callable[[Any], Any]]] = []
    for column, name, _field in meta.db_native_fields:
        names[column] = name
    for column, name, field in meta.db_default_fields:
        names[column] = name
        converters.append((name, _default_converter(field)))
    for column, name, field in meta.db_complex_fields:
        names[column] = name
        converters.append((name, field.to_python_value))
    if len(columns) != len(names) or set(columns) != set(names):
        return None
    attributes = [names[column] for column in columns]
    if any(hasattr(getattr(model, name, None), "__set__") for name in attributes):
        return None  # set through a descriptor: object.__setattr__ would call it, __dict__ would not
    custom_pk = meta.db_pk_column not in meta.generated_db_fields
    new = model.__new__

    def build(row: Sequence[Any]) -> Model:
        instance = new(model)
        values = instance.__dict__
        values["_partial"] = False
        values["_saved_in_db"] = True
        values["_custom_generated_pk"] = custom_pk
        values["_await_when_save"] = {}
        values.update(zip(attributes, row, strict=True))
        for name, convert in converters:
            values[name] = convert(values[name])
        return instance

    return build


def _default_converter(field: Field[Any]) -> Callable[[Any], Any]:
    """Tortoise's conversion of a field that keeps the base ``to_python_value``: to
    its type, None as it is."""
    field_type = field.field_type

    def convert(value: Any) -> Any:
        return None if value is None else field_type(value)

    return convert


class FastSelect(BaseExecutor):
    """An engine's executor whose selects of whole rows of one model build their
    instances with ``builder``."""

    async def execute_select(
        self, sql: str, values: list[Any] | None = None, custom_fields: list[Any] | None = None
    ) -> list[Any]:
        joined = self.select_related_idx is not None and len(self.select_related_idx) > 1
        if joined or custom_fields or self.prefetch_map or self._prefetch_queries:
            return await super().execute_select(sql, values, custom_fields)
        rows: Sequence[Any] = (await self.db.execute_query(sql, values))[1]
        if not rows:
            return []
        build = builder(self.model, tuple(rows[0].keys()))
        if build is None:
            init = self.model._init_from_db
            return [init(**row) for row in rows]
        instances: list[Model] = []
        for start in range(0, len(rows), CHUNK_SIZE):
            if start:  # as Tortoise: a long select lets the event loop run between chunks
                await asyncio.sleep(0)
            instances.extend(map(build, rows[start : start + CHUNK_SIZE]))
        return instances
