"""Object identification: the Node interface and global ids, made and decoded."""

from __future__ import annotations

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


def decode_ids(type_name: str, global_ids: Sequence[str] | None) -> list[int] | None:
    """Primary keys for a filter; ids of anything else match nothing (like unknown ids)."""
    if global_ids is None:
        return None
    return [pk for pk in (ids.decode_as(type_name, g) for g in global_ids) if pk is not None]


def lazy_type(module: str, name: str) -> type[Any]:
    """The type ``name`` of a domain whose module imports this one. The GraphQL graph
    is cyclic (Prospect.enrollments, Enrollment.prospect) and the imports are not:
    a field pointing back up names its type with ``strawberry.lazy(module)`` and
    makes its values with this."""
    found: type[Any] = getattr(importlib.import_module(module), name)
    return found
