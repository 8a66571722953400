"""Multi-row statements Tortoise lacks: INSERT … RETURNING id (its bulk_create
hands no ids back, and batch creation needs them for history rows), a
compare-and-set UPDATE … RETURNING id over many rows (the send engine's claim),
and one UPDATE run for many rows with their own values (executemany)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

M = TypeVar("M", bound=Model)
MAX_PARAMETERS = 30_000
"""Below SQLite's 32,766 and Postgres's 65,535 bound parameters per statement."""


async def insert_returning_ids(objects: Sequence[M]) -> list[M]:
    """Inserts ``objects`` (all of one model, ``id`` unset) and sets their ids.

    Both SQLite and Postgres allocate the ids of one multi-row INSERT in row
    order, so the sorted RETURNING ids line up with the rows.
    """
    if not objects:
        return []
    model = type(objects[0])
    meta = model._meta
    db = connections.get(meta.default_connection or "default")
    columns = [name for name in meta.db_fields if name != meta.db_pk_column]
    by_column = {meta.fields_db_projection[f]: meta.fields_map[f] for f in meta.fields_db_projection}
    postgres = db.capabilities.dialect == "postgres"
    rows_per_statement = max(1, MAX_PARAMETERS // len(columns))
    column_sql = ", ".join(f'"{c}"' for c in columns)
    for start in range(0, len(objects), rows_per_statement):
        chunk = objects[start : start + rows_per_statement]
        params: list[object] = []
        groups = []
        for obj in chunk:
            marks = []
            for column in columns:
                field = by_column[column]
                params.append(field.to_db_value(getattr(obj, field.model_field_name), obj))
                marks.append(f"${len(params)}" if postgres else "?")
            groups.append("(" + ", ".join(marks) + ")")
        sql = f'INSERT INTO "{meta.db_table}" ({column_sql}) VALUES {", ".join(groups)} RETURNING "{meta.db_pk_column}"'
        rows = await db.execute_query_dict(sql, params)
        new_ids = sorted(int(row[meta.db_pk_column]) for row in rows)
        for obj, pk in zip(chunk, new_ids, strict=True):
            obj.pk = pk
            obj._saved_in_db = True
    return list(objects)


async def compare_and_set(
    model: type[Model],
    ids: Sequence[int],
    *,
    expect: Mapping[str, object],
    values: Mapping[str, object],
    increment: Sequence[str] = (),
) -> list[int]:
    """``UPDATE … SET values WHERE id IN ids AND expect RETURNING id``: a
    compare-and-set on many rows in one statement; the ids it changed.

    Each row is changed by at most one of any number of concurrent callers
    (Postgres re-checks ``expect`` after waiting for a row lock; SQLite runs one
    writer at a time), so the returned ids are this caller's alone.
    """
    if not ids:
        return []
    meta = model._meta
    db = connections.get(meta.default_connection or "default")
    postgres = db.capabilities.dialect == "postgres"
    params: list[object] = []

    def bind(field_name: str, value: object) -> str:
        field = meta.fields_map[field_name]
        params.append(field.to_db_value(value, model))
        return f"${len(params)}" if postgres else "?"

    def column(field_name: str) -> str:
        return f'"{meta.fields_db_projection[field_name]}"'

    assignments = [f"{column(name)} = {bind(name, value)}" for name, value in values.items()]
    assignments += [f"{column(name)} = {column(name)} + 1" for name in increment]
    id_marks = ", ".join(bind(meta.pk_attr, pk) for pk in ids)
    # After the ids: ? marks are by position. None compares as IS NULL.
    conditions = [
        f"{column(name)} IS NULL" if value is None else f"{column(name)} = {bind(name, value)}"
        for name, value in expect.items()
    ]
    pk = column(meta.pk_attr)
    sql = (
        f'UPDATE "{meta.db_table}" SET {", ".join(assignments)} '
        f"WHERE {pk} IN ({id_marks}) AND {' AND '.join(conditions)} RETURNING {pk}"
    )
    rows = await db.execute_query_dict(sql, params)
    return sorted(int(row[meta.db_pk_column]) for row in rows)


async def update_each(objects: Sequence[M], fields: Sequence[str], connection: BaseDBAsyncClient) -> None:
    """Saves ``fields`` of each object: one prepared UPDATE run for every row
    (executemany), far cheaper than Tortoise's bulk_update with its CASE per field."""
    if not objects:
        return
    meta = type(objects[0])._meta
    postgres = connection.capabilities.dialect == "postgres"
    marks = [f"${i}" if postgres else "?" for i in range(1, len(fields) + 2)]
    assignments = ", ".join(
        f'"{meta.fields_db_projection[name]}" = {mark}' for name, mark in zip(fields, marks, strict=False)
    )
    sql = f'UPDATE "{meta.db_table}" SET {assignments} WHERE "{meta.db_pk_column}" = {marks[-1]}'
    rows = [
        [meta.fields_map[name].to_db_value(getattr(obj, name), obj) for name in fields] + [obj.pk] for obj in objects
    ]
    await connection.execute_many(sql, rows)


async def insert_rows(model: type[Model], rows: Sequence[Mapping[str, object]]) -> None:
    """Inserts plain rows (field name → value) in multi-row INSERTs, without making a
    model object for each: for append-only tables written on hot paths."""
    if not rows:
        return
    meta = model._meta
    db = connections.get(meta.default_connection or "default")
    postgres = db.capabilities.dialect == "postgres"
    names = list(rows[0])
    converters = [meta.fields_map[name] for name in names]
    column_sql = ", ".join(f'"{meta.fields_db_projection[name]}"' for name in names)
    per_statement = max(1, MAX_PARAMETERS // len(names))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params: list[object] = []
        groups = []
        for row in chunk:
            marks = []
            for name, field in zip(names, converters, strict=True):
                params.append(field.to_db_value(row[name], model))
                marks.append(f"${len(params)}" if postgres else "?")
            groups.append("(" + ", ".join(marks) + ")")
        await db.execute_query(f'INSERT INTO "{meta.db_table}" ({column_sql}) VALUES {", ".join(groups)}', params)
