"""Object identification: the Node interface and global ids, made and decoded
(input ids to primary keys, filter ids to the keys they name)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import strawberry

from app import ids
from schema.context import Info


@strawberry.interface(description="Relay object identification: an opaque global id.")
class Node:
    @strawberry.field
    def id(self) -> strawberry.ID:
        """Every implementation resolves its own id (from its row)."""
        raise NotImplementedError(type(self).__name__)


NodeReader = Callable[[Info, int], Awaitable[Node | None]]
"""Reads one type's node by primary key, or None when the viewer may not read it."""


def global_id(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(ids.encode(type_name, pk))


UNKNOWN_PK = -1
"""A primary key no row has: what an id that is not one of the expected type decodes to."""


def pk(type_name: str, global_id: str) -> int:
    """The primary key of an input id of ``type_name``. A malformed id or another
    type's is ``UNKNOWN_PK``, so the service answers NOT_FOUND for that input as
    for an id it does not know."""
    decoded = ids.decode_as(type_name, global_id)
    return UNKNOWN_PK if decoded is None else decoded


def optional_pk(type_name: str, global_id: str | None) -> int | None:
    """``pk`` of an optional input id (None stays None)."""
    return None if global_id is None else pk(type_name, global_id)


def pks(type_name: str, global_ids: Sequence[str]) -> list[int]:
    """``pk`` of each id of a list input, in order: a bad one answered by its index."""
    return [pk(type_name, global_id) for global_id in global_ids]


def decode_ids(type_name: str, global_ids: Sequence[str] | None) -> list[int] | None:
    """Primary keys for a filter; ids of anything else match nothing (like unknown ids)."""
    if global_ids is None:
        return None
    return [pk for pk in (ids.decode_as(type_name, g) for g in global_ids) if pk is not None]


@functools.cache
def lazy_type(module: str, name: str) -> type[Any]:
    """The type ``name`` of a domain whose module imports this one. The GraphQL graph
    is cyclic (Prospect.enrollments, Enrollment.prospect) and the imports are not:
    a field pointing back up names its type with ``strawberry.lazy(module)`` and
    makes its values with this."""
    found: type[Any] = getattr(importlib.import_module(module), name)
    return found
