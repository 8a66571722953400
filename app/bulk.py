"""Multi-row statements Tortoise lacks: INSERT … RETURNING id (its bulk_create
hands no ids back, and batch creation needs them for history rows), a
compare-and-set UPDATE … RETURNING id over many rows (the send engine's claim),
one UPDATE run for many rows with their own values (executemany), and a read of
the rows whose key is one of many values."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields import CharField, DatetimeField, Field
from tortoise.models import MetaInfo, Model

M = TypeVar("M", bound=Model)
MAX_PARAMETERS = 30_000
"""Below SQLite's 32,766 and Postgres's 65,535 bound parameters per statement."""


def db_value(field: Field[Any], model: type[Model]) -> Callable[[Any], Any]:
    """``field.to_db_value`` for row after row, with the values that need no work
    passed through: None, or a value of a plain field's own type (no conversion or
    validator of its own: ints, text, booleans), an aware datetime (no auto_now), a
    member of a CharEnumField's enum (its value). Anything else takes Tortoise's own
    conversion and checks (max lengths, JSON). Bulk writes made most of their rows'
    cost in these calls (500-row batches: 430,000 validator calls a 10,000-step run)."""
    convert = field.to_db_value
    if type(field).to_db_value is Field.to_db_value and not field.validators:
        kind = field.field_type
        return lambda value: value if value is None or type(value) is kind else convert(value, model)
    if isinstance(field, DatetimeField) and not (field.auto_now or field.auto_now_add):
        return lambda value: (
            value if value is None or (type(value) is datetime and value.tzinfo is not None) else convert(value, model)
        )
    members = getattr(field, "enum_type", None)
    if isinstance(members, type) and issubclass(members, Enum) and isinstance(field, CharField):
        return lambda value: value.value if type(value) is members else convert(value, model)
    return lambda value: convert(value, model)


async def insert_returning_ids(objects: Sequence[M]) -> list[M]:
    """Inserts ``objects`` (all of one model, ``id`` unset) and sets their ids."""
    if not objects:
        return []
    meta = type(objects[0])._meta
    fields = _insert_fields(meta)
    values = [[field.to_db_value(getattr(obj, field.model_field_name), obj) for field in fields] for obj in objects]
    for obj, pk in zip(objects, await _insert_returning(meta, fields, values), strict=True):
        obj.pk = pk
        obj._saved_in_db = True
    return list(objects)


async def insert_returning(model: type[Model], rows: Sequence[Mapping[str, object]]) -> list[int]:
    """Inserts plain rows (field name → value; a field left out takes its default)
    and returns their ids in row order, without making a model object for each:
    ``insert_returning_ids`` for hot paths (the scheduler's messages)."""
    if not rows:
        return []
    meta = model._meta
    fields = _insert_fields(meta)
    columns = [
        (field.model_field_name, field.default() if callable(field.default) else field.default, db_value(field, model))
        for field in fields
    ]
    values = [[convert(row.get(name, default)) for name, default, convert in columns] for row in rows]
    return await _insert_returning(meta, fields, values)


def _insert_fields(meta: MetaInfo) -> list[Field[Any]]:
    return [meta.fields_map[name] for name in meta.fields_db_projection if name != meta.pk_attr]


async def _insert_returning(meta: MetaInfo, fields: list[Field[Any]], values: list[list[object]]) -> list[int]:
    """Runs the INSERTs of ``values``; the new ids, in row order. Both SQLite and
    Postgres allocate the ids of one multi-row INSERT in row order, so the sorted
    RETURNING ids line up with the rows."""
    db = connections.get(meta.default_connection or "default")
    new_ids: list[int] = []
    for sql, params in _inserts(db, meta, fields, values, returning=meta.db_pk_column):
        inserted = await db.execute_query_dict(sql, params)
        new_ids += sorted(int(row[meta.db_pk_column]) for row in inserted)
    return new_ids


async def insert_rows(model: type[Model], rows: Sequence[Mapping[str, object]]) -> None:
    """Inserts plain rows (field name → value) in multi-row INSERTs, without making a
    model object for each: for append-only tables written on hot paths."""
    if not rows:
        return
    meta = model._meta
    fields = [meta.fields_map[name] for name in rows[0]]
    columns = [(field.model_field_name, db_value(field, model)) for field in fields]
    values = [[convert(row[name]) for name, convert in columns] for row in rows]
    db = connections.get(meta.default_connection or "default")
    for sql, params in _inserts(db, meta, fields, values, returning=None):
        await db.execute_query(sql, params)


def _inserts(
    db: BaseDBAsyncClient,
    meta: MetaInfo,
    fields: list[Field[Any]],
    values: list[list[object]],
    *,
    returning: str | None,
) -> Iterator[tuple[str, list[object]]]:
    """The INSERT statements for ``values`` (already database values): (SQL, parameters).

    Postgres: one ``INSERT … SELECT`` over ``_columns_of``, whose text depends on
    which columns are alike, not on the number of rows, so each shape is parsed
    once per connection (a multi-row VALUES of 500 rows would be a new
    10,000-parameter statement to prepare each time, about 40 ms of Postgres's time
    for the scheduler's messages). SQLite: multi-row VALUES, as many as its bound-parameter limit needs."""
    columns = [meta.fields_db_projection[field.model_field_name] for field in fields]
    column_sql = ", ".join(f'"{c}"' for c in columns)
    tail = f' RETURNING "{returning}"' if returning else ""
    if db.capabilities.dialect == "postgres":
        types = [field.get_for_dialect("postgres", "SQL_TYPE") for field in fields]
        expressions, source, params = _columns_of(columns, types, values)
        yield (
            f'INSERT INTO "{meta.db_table}" ({column_sql}) SELECT {", ".join(expressions)} FROM {source}{tail}',
            params,
        )
        return
    per_statement = max(1, MAX_PARAMETERS // len(columns))
    row_marks = "(" + ", ".join("?" for _ in columns) + ")"
    for start in range(0, len(values), per_statement):
        chunk = values[start : start + per_statement]
        sql = f'INSERT INTO "{meta.db_table}" ({column_sql}) VALUES {", ".join(row_marks for _ in chunk)}{tail}'
        yield sql, [value for row in chunk for value in row]


def _columns_of(columns: list[str], types: list[str], rows: list[list[object]]) -> tuple[list[str], str, list[object]]:
    """A Postgres statement's view of ``rows`` (database values, one list per row):
    (each column's value expression, the FROM source, the parameters). A column
    whose rows all hold one value (NULLs, a state, a pass's time, the organization)
    is one parameter; the others are arrays unnested together into ``v``, with one
    row of ``v`` per row. asyncpg encodes an array at 0.6-2.5 µs an element: the
    scheduler's 23 message columns, 17 of them alike, cost more to encode than
    Postgres takes to insert the rows."""
    params: list[object] = []
    expressions: list[str] = []
    arrays: list[tuple[str, str]] = []  # (column, parameter mark) of v's columns
    for name, sql_type, column in zip(columns, types, zip(*rows, strict=True), strict=True):
        if column.count(column[0]) == len(column):
            params.append(column[0])
            expressions.append(f"${len(params)}::{sql_type}")
        else:
            params.append(list(column))
            arrays.append((name, f"${len(params)}::{sql_type}[]"))
            expressions.append(f'v."{name}"')
    if not arrays:  # every column alike: as many copies as there are rows
        params.append(len(rows))
        return expressions, f"generate_series(1, ${len(params)}::INT) AS v", params
    names = ", ".join(f'"{name}"' for name, _ in arrays)
    return expressions, f"unnest({', '.join(mark for _, mark in arrays)}) AS v({names})", params


async def select_in(
    model: type[Model],
    fields: Sequence[str],
    key: str,
    values: Collection[object],
    *,
    null: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """``SELECT fields WHERE key IN values AND each of null IS NULL``: the rows as
    ``values()`` gives them (field name → Python value), read with one array
    parameter on Postgres. Tortoise's query builder spends ~5 µs of Python a value on
    an IN list: the engine reads hundreds of ids at a time (the scheduler's 500
    prospects, the send gate's 50 enrollments and prospects)."""
    if not values:
        return []
    meta = model._meta
    db = connections.get(meta.default_connection or "default")
    native = {name for _, name, _ in meta.db_native_fields}
    columns = [(name, meta.fields_db_projection[name]) for name in fields]
    converters = [
        (name, column, None if name in native else meta.fields_map[name].to_python_value) for name, column in columns
    ]
    selected = ", ".join(f'"{column}"' for _, column in columns)
    key_field = meta.fields_map[key]
    nulls = "".join(f' AND "{meta.fields_db_projection[name]}" IS NULL' for name in null)
    keys = [key_field.to_db_value(value, model) for value in values]
    rows: list[dict[str, Any]] = []
    for among, chunk in _among(db, f'"{meta.fields_db_projection[key]}"', key_field, keys, after=0):
        rows += await db.execute_query_dict(f'SELECT {selected} FROM "{meta.db_table}" WHERE {among}{nulls}', chunk)
    return [
        {name: row[column] if convert is None else convert(row[column]) for name, column, convert in converters}
        for row in rows
    ]


async def compare_and_set(
    model: type[Model],
    ids: Sequence[int],
    *,
    expect: Mapping[str, object],
    values: Mapping[str, object],
    increment: Sequence[str] = (),
    decrement: Sequence[str] = (),
    at_most: Mapping[str, object] | None = None,
    one_of: Mapping[str, Sequence[object]] | None = None,
) -> list[int]:
    """``UPDATE … SET values WHERE id IN ids AND expect RETURNING id``: a
    compare-and-set on many rows in one statement; the ids it changed.
    ``increment`` and ``decrement`` name fields to add 1 to or take 1 from,
    ``at_most`` adds conditions ``field <= value``, ``one_of`` ``field IN values``.

    Each row is changed by at most one of any number of concurrent callers
    (Postgres re-checks ``expect`` after waiting for a row lock; SQLite runs one
    writer at a time), so the returned ids are this caller's alone.
    """
    pk = model._meta.db_pk_column
    steps = [(name, "+") for name in increment] + [(name, "-") for name in decrement]
    rows = await _compare_and_set(model, ids, expect, values, steps, at_most or {}, one_of or {}, returning=f'"{pk}"')
    return sorted(int(row[pk]) for row in rows)


async def compare_and_set_rows(
    model: type[M],
    ids: Sequence[int],
    *,
    expect: Mapping[str, object],
    values: Mapping[str, object],
    increment: Sequence[str] = (),
    at_most: Mapping[str, object] | None = None,
) -> list[M]:
    """``compare_and_set`` that hands back the rows it changed, as they are now, in
    id order: the claim and the read of what was claimed in one statement."""
    steps = [(name, "+") for name in increment]
    rows = await _compare_and_set(model, ids, expect, values, steps, at_most or {}, {}, returning="*")
    objects = [model._init_from_db(**row) for row in rows]
    return sorted(objects, key=lambda obj: obj.pk)


async def _compare_and_set(
    model: type[Model],
    ids: Sequence[int],
    expect: Mapping[str, object],
    values: Mapping[str, object],
    steps: Sequence[tuple[str, str]],
    at_most: Mapping[str, object],
    one_of: Mapping[str, Sequence[object]],
    *,
    returning: str,
) -> list[dict[str, Any]]:
    if not ids:
        return []
    meta = model._meta
    db = connections.get(meta.default_connection or "default")
    postgres = db.capabilities.dialect == "postgres"
    pk = f'"{meta.db_pk_column}"'
    params: list[object] = []

    def bind(field_name: str, value: object) -> str:
        params.append(meta.fields_map[field_name].to_db_value(value, model))
        return f"${len(params)}" if postgres else "?"

    def column(field_name: str) -> str:
        return f'"{meta.fields_db_projection[field_name]}"'

    assignments = [f"{column(name)} = {bind(name, value)}" for name, value in values.items()]
    assignments += [f"{column(name)} = {column(name)} {sign} 1" for name, sign in steps]
    # None compares as IS NULL.
    conditions = [
        f"{column(name)} IS NULL" if value is None else f"{column(name)} = {bind(name, value)}"
        for name, value in expect.items()
    ]
    conditions += [f"{column(name)} <= {bind(name, value)}" for name, value in at_most.items()]
    conditions += [
        f"{column(name)} IN ({', '.join(bind(name, value) for value in members)})" for name, members in one_of.items()
    ]
    # "(…) IS TRUE" leaves the ids the only way in: with stale statistics (a table
    # that filled since it was last analyzed: a campaign's messages all QUEUED) the
    # planner may take an index on state and read every QUEUED row to claim fifty.
    guard = " AND ".join(conditions) or "TRUE"
    head = f'UPDATE "{meta.db_table}" SET {", ".join(assignments)} WHERE ({guard}) IS TRUE AND '
    tail = f" RETURNING {returning}"
    rows: list[dict[str, Any]] = []
    for among, keys in _among(db, pk, meta.fields_map[meta.pk_attr], list(ids), after=len(params)):
        rows += await db.execute_query_dict(f"{head}{among}{tail}", [*params, *keys])
    return rows


def _among(
    db: BaseDBAsyncClient, column: str, field: Field[Any], keys: list[object], *, after: int
) -> Iterator[tuple[str, list[object]]]:
    """``column`` is one of ``keys`` (database values), as (condition, its parameters),
    one per statement to run, its marks numbered after the statement's first ``after``.
    Postgres: one array parameter, so the statement's text (parsed once per connection)
    is the same for any number of keys; SQLite: IN lists within its bound-parameter limit."""
    if db.capabilities.dialect == "postgres":
        yield f"{column} = ANY(${after + 1}::{field.get_for_dialect('postgres', 'SQL_TYPE')}[])", [keys]
        return
    per_statement = MAX_PARAMETERS - after
    for start in range(0, len(keys), per_statement):
        chunk = keys[start : start + per_statement]
        yield f"{column} IN ({', '.join('?' for _ in chunk)})", chunk


async def update_each(objects: Sequence[M], fields: Sequence[str], connection: BaseDBAsyncClient) -> None:
    """Saves ``fields`` of each object, each row with its own values, far cheaper than
    Tortoise's bulk_update with its CASE per field. Postgres: one ``UPDATE … FROM``
    over ``_columns_of`` (parsed once per connection and shape); SQLite: one prepared
    UPDATE run per row (executemany, in process: no round trips to save)."""
    if not objects:
        return
    meta = type(objects[0])._meta
    pk_field = meta.fields_map[meta.pk_attr]
    columns = [meta.fields_db_projection[name] for name in fields] + [meta.db_pk_column]
    converters = [(name, db_value(meta.fields_map[name], type(objects[0]))) for name in fields]
    rows = [[convert(getattr(obj, name)) for name, convert in converters] + [obj.pk] for obj in objects]
    if connection.capabilities.dialect == "postgres":
        types = [meta.fields_map[name].get_for_dialect("postgres", "SQL_TYPE") for name in fields]
        types.append(pk_field.get_for_dialect("postgres", "SQL_TYPE"))
        expressions, source, params = _columns_of(columns, types, rows)
        assignments = ", ".join(f'"{c}" = {e}' for c, e in zip(columns[:-1], expressions[:-1], strict=True))
        sql = (
            f'UPDATE "{meta.db_table}" AS t SET {assignments} FROM {source} WHERE t."{columns[-1]}" = {expressions[-1]}'
        )
        await connection.execute_query(sql, params)
        return
    assignments = ", ".join(f'"{c}" = ?' for c in columns[:-1])
    sql = f'UPDATE "{meta.db_table}" SET {assignments} WHERE "{meta.db_pk_column}" = ?'
    await connection.execute_many(sql, rows)
