"""Relay conventions: Node, connections (at most 100 a page), and mutation payload errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from tortoise.queryset import QuerySet

from app import ids
from app.errors import Code, DomainError
from schema.context import INPUT, Info, PublicError, input_path

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P")

MAX_PAGE = 100
DEFAULT_PAGE = 50


@strawberry.interface(description="Relay object identification: an opaque global id.")
class Node:
    @strawberry.field
    def id(self) -> strawberry.ID:
        """Every implementation resolves its own id (from its row)."""
        raise NotImplementedError(type(self).__name__)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    page_info: PageInfo
    edges: list[Edge[T]]
    total_count: int


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if not 0 <= first <= MAX_PAGE:
        raise PublicError(f"`first` must be between 0 and {MAX_PAGE}.")
    return first


def after_pk(after: str | None) -> int | None:
    if after is None:
        return None
    pk = ids.decode_as("Cursor", after)
    if pk is None:
        raise PublicError("`after` is not a cursor from this connection.")
    return pk


def _connection(
    rows: Sequence[R], size: int, total: int, had_after: bool, wrap: Callable[[R], T], key: str = "id"
) -> Connection[T]:
    page = rows[:size]
    edges = [Edge(cursor=ids.encode("Cursor", getattr(row, key)), node=wrap(row)) for row in page]
    return Connection(
        page_info=PageInfo(
            has_next_page=len(rows) > size,
            has_previous_page=had_after,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        edges=edges,
        total_count=total,
    )


async def paginate(
    query: QuerySet[Any], first: int | None, after: str | None, wrap: Callable[[Any], T], *, key: str = "id"
) -> Connection[T]:
    """A page of ``query`` in ``key`` order (keyset pagination: stable under inserts)."""
    size = page_size(first)
    start = after_pk(after)
    total = await query.count()
    page_query = query.order_by(key)
    if start is not None:
        page_query = page_query.filter(**{f"{key}__gt": start})
    rows = await page_query.limit(size + 1)
    return _connection(rows, size, total, start is not None, wrap, key)


def paginate_loaded(
    rows: Sequence[Any], first: int | None, after: str | None, wrap: Callable[[Any], T]
) -> Connection[T]:
    """The same page over rows a DataLoader already fetched (ordered by id)."""
    size = page_size(first)
    start = after_pk(after)
    remaining = [row for row in rows if start is None or row.pk > start]
    return _connection(remaining[: size + 1], size, len(rows), start is not None, wrap)


strawberry.enum(Code, name="ErrorCode")  # the domain's codes are the API's, one list


@strawberry.type(
    description="An expected, user-facing failure. Mutations return these in `errors`, never as GraphQL errors."
)
class UserError:
    code: Code
    message: str
    field: list[str] | None = strawberry.field(
        description='Path to the input value at fault, e.g. ["input", "prospectIds", "3"].'
    )

    @classmethod
    def of(cls, error: DomainError, names: Mapping[str, str] | None = None, under: Sequence[str] = INPUT) -> UserError:
        """``error`` with its field as an input path (``names``, ``under``: see ``input_path``)."""
        return cls(code=error.code, message=error.message, field=input_path(error.field, under=under, names=names))


async def guarded(
    info: Info,
    payload: Callable[..., P],
    run: Callable[[], Awaitable[dict[str, Any]]],
    names: Mapping[str, str] | None = None,
    *,
    under: Sequence[str] = INPUT,
) -> P:
    """Runs a mutation's service call; DomainErrors become the payload's errors,
    their fields input paths (``names``, ``under``: see ``input_path``).
    The request's loaders are renewed so the payload shows the state after the change."""
    try:
        result = await run()
    except DomainError as error:
        return payload(errors=[UserError.of(error, names, under)])
    finally:
        info.context.reset_loaders()
    return payload(errors=[], **result)


async def guarded_bulk(
    info: Info,
    payload: Callable[..., P],
    field: str,
    run: Callable[[], Awaitable[tuple[Sequence[Any], Sequence[DomainError]]]],
    wrap: Callable[[Any], Any],
    names: Mapping[str, str] | None = None,
    *,
    under: Sequence[str] = INPUT,
) -> P:
    """A bulk mutation: the rows it changed under ``field``, and every refused item's
    error (by index); a DomainError for the whole call becomes the only error."""
    try:
        rows, errors = await run()
    except DomainError as error:
        return payload(errors=[UserError.of(error, names, under)])
    finally:
        info.context.reset_loaders()
    return payload(errors=[UserError.of(e, names, under) for e in errors], **{field: [wrap(row) for row in rows]})


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
