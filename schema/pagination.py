"""Connections: pages of at most 100 nodes, in keyset order, with opaque cursors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField
from tortoise.queryset import QuerySet

from app import ids
from schema.context import PublicError
from schema.loaders import loaded

T = TypeVar("T")
R = TypeVar("R")

MAX_PAGE = 100
DEFAULT_PAGE = 50


def _cursor(key: int | None) -> str | None:
    return None if key is None else ids.encode("Cursor", key)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_key: strawberry.Private[int | None]
    end_key: strawberry.Private[int | None]

    @strawberry.field
    def start_cursor(self) -> str | None:
        return _cursor(self.start_key)

    @strawberry.field
    def end_cursor(self) -> str | None:
        return _cursor(self.end_key)


def _edge_cursor(self: Edge[Any]) -> str:
    return ids.encode("Cursor", self.key)


@strawberry.type
class Edge(Generic[T]):
    key: strawberry.Private[int]
    """Its node's key in the connection's order; the cursor is made only when asked."""
    cursor: str = strawberry.field(resolver=_edge_cursor)
    node: T


class _Count:
    """A connection's total, counted only when a selection asks for it (a COUNT over
    a big organization costs more than its page), and then once per connection."""

    def __init__(self, count: Callable[[], Awaitable[int]] | int) -> None:
        self._count = count
        self._total: int | None = count if isinstance(count, int) else None
        self._counting = asyncio.Lock()  # aliases of totalCount resolve together

    async def value(self) -> int:
        if self._total is not None:
            return self._total
        async with self._counting:
            if self._total is None:
                assert not isinstance(self._count, int)
                self._total = await self._count()
        return self._total


@strawberry.type
class Connection(Generic[T]):
    page_info: PageInfo
    edges: list[Edge[T]]
    count: strawberry.Private[_Count]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.count.value()


def node_fields(info: strawberry.Info[Any, Any]) -> set[str]:
    """The names of the fields a connection's selection asks of its nodes
    (``edges { node { ... } }``, through fragments). Directives are not weighed:
    a field under ``@skip`` counts as asked, which costs at most a needless load."""

    def named(selections: Sequence[Any], name: str) -> list[SelectedField]:
        return [field for field in _fields(selections) if field.name == name]

    nodes = [
        node
        for connection in info.selected_fields
        for edge in named(connection.selections, "edges")
        for node in named(edge.selections, "node")
    ]
    return {field.name for node in nodes for field in _fields(node.selections)}


def _fields(selections: Sequence[Any]) -> list[SelectedField]:
    """The fields of a selection set, those of its fragments included."""
    found: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            found.append(selection)
        elif isinstance(selection, FragmentSpread | InlineFragment):
            found.extend(_fields(selection.selections))
    return found


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
    rows: Sequence[R], size: int, total: _Count, had_after: bool, wrap: Callable[[R], T], key: str = "id"
) -> Connection[T]:
    page = rows[:size]
    edges = [Edge(key=getattr(row, key), node=wrap(row)) for row in page]
    return Connection(
        page_info=PageInfo(
            has_next_page=len(rows) > size,
            has_previous_page=had_after,
            start_key=edges[0].key if edges else None,
            end_key=edges[-1].key if edges else None,
        ),
        edges=edges,
        count=total,
    )


async def paginate(
    query: QuerySet[Any],
    first: int | None,
    after: str | None,
    wrap: Callable[[Any], T],
    *,
    key: str = "id",
    descending: bool = False,
) -> Connection[T]:
    """A page of ``query`` in ``key`` order, highest first when ``descending`` (newest
    first by id) (keyset pagination: stable under inserts). ``totalCount`` is
    counted only when selected."""
    size = page_size(first)
    start = after_pk(after)
    page_query = query.order_by(f"-{key}" if descending else key)
    if start is not None:
        page_query = page_query.filter(**{f"{key}__{'lt' if descending else 'gt'}": start})
    rows = await page_query.limit(size + 1)
    return _connection(rows, size, _Count(query.count), start is not None, wrap, key)


def loaded_page(
    loader: DataLoader[int, list[R]], key: int, first: int | None, after: str | None, wrap: Callable[[R], T]
) -> Connection[T] | Awaitable[Connection[T]]:
    """A page of the rows ``loader`` groups under ``key`` (paginate_loaded): at once
    when the loader holds them (a page's resolver loaded them for all its rows)."""
    return loaded(loader, key, lambda rows: paginate_loaded(rows, first, after, wrap))


def paginate_loaded(
    rows: Sequence[Any], first: int | None, after: str | None, wrap: Callable[[Any], T]
) -> Connection[T]:
    """The same page over rows a DataLoader already fetched (ordered by id)."""
    size = page_size(first)
    start = after_pk(after)
    remaining = [row for row in rows if start is None or row.pk > start]
    return _connection(remaining[: size + 1], size, _Count(len(rows)), start is not None, wrap)
