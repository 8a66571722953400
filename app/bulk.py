"""Multi-row INSERT … RETURNING id: Tortoise's bulk_create does not hand ids back,
and batch creation (createProspects, CSV import) needs them for history rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from tortoise import connections
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
