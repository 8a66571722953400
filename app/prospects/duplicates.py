"""One person, one record (R12.2): no two prospects of an organization share an
email (stored lower-cased, so exactly) or an externalId.

The unique indexes on (organization, email) and (organization, external_id)
decide; the look-ups here find who holds a key first, so that a refusal names
the holder, and ``retrying`` turns the index's refusal of a write that raced a
concurrent one into that same refusal (the next look-up sees the key taken).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError

from app import ids
from app.errors import Conflict, Duplicate, Field
from app.prospects.events import api_name
from app.prospects.fields import KEYS
from app.prospects.models import Prospect

T = TypeVar("T")
ATTEMPTS = 3
"""Writes a batch tries: one refused by a concurrent insert is checked again and
retried; a third refusal in a row is a CONFLICT to retry later, never a 500."""

Key = tuple[str, str]
"""(field, value): ("email", "ada@example.com")."""


def refused(holder_id: int, key: str, field: Field) -> Duplicate:
    """DUPLICATE under ``field``, naming the prospect that holds ``key``'s value."""
    return Duplicate(f"Prospect {ids.encode('Prospect', holder_id)} already has this {api_name(key)}.", field)


def keys_of(values: Mapping[str, Any]) -> list[Key]:
    """The unique keys a prospect's (cleaned) values give."""
    return [(key, values[key]) for key in KEYS if values.get(key) is not None]


async def holders(organization_id: int, keys: Iterable[Key]) -> dict[Key, int]:
    """Each key a prospect of the organization holds, with that prospect's id: one
    read per kind of key, whatever their number."""
    wanted: dict[str, set[str]] = {}
    for key, value in keys:
        wanted.setdefault(key, set()).add(value)
    held: dict[Key, int] = {}
    for key, values in wanted.items():
        rows = await Prospect.filter(organization_id=organization_id, **{f"{key}__in": sorted(values)}).values_list(
            "id", key
        )
        held.update({(key, value): pk for pk, value in rows})
    return held


async def check(organization_id: int, values: Mapping[str, Any], field: Field, *, own_id: int | None = None) -> None:
    """Raises DUPLICATE (under ``field`` and the key) when another prospect than
    ``own_id`` holds a key of ``values``."""
    held = await holders(organization_id, keys_of(values))
    for key, value in keys_of(values):
        holder = held.get((key, value))
        if holder is not None and holder != own_id:
            raise refused(holder, key, (*field, key))


async def retrying(write: Callable[[], Awaitable[T]]) -> T:
    """Runs ``write`` (which checks the keys, then writes in a transaction of its
    own) again when the unique index refused it: a concurrent writer took a key
    between the check and the write, and the next check reports it."""
    for _ in range(ATTEMPTS):
        try:
            return await write()
        except IntegrityError:
            continue
    raise Conflict("Other changes to these prospects were saved at the same time; try again.")
