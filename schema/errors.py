"""Mutation payload errors: a DomainError becomes a UserError with its code and field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any, TypeVar

import strawberry

from app.errors import DomainError
from schema.context import Info

P = TypeVar("P")


@strawberry.enum
class ErrorCode(Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    DO_NOT_CONTACT = "DO_NOT_CONTACT"
    ALREADY_ENROLLED = "ALREADY_ENROLLED"
    ACTION_NOT_AVAILABLE = "ACTION_NOT_AVAILABLE"
    NOT_PULLABLE = "NOT_PULLABLE"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"


@strawberry.type(
    description="An expected, user-facing failure. Mutations return these in `errors`, never as GraphQL errors."
)
class UserError:
    code: ErrorCode
    message: str
    field: list[str] | None = strawberry.field(
        description='Path to the input value at fault, e.g. ["input", "prospectIds", "3"].'
    )

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(code=ErrorCode(error.code), message=error.message, field=error.field)


async def guarded(info: Info, payload: Callable[..., P], run: Callable[[], Awaitable[dict[str, Any]]]) -> P:
    """Runs a mutation's service call; DomainErrors become the payload's errors.
    The request's loaders are renewed so the payload shows the state after the change."""
    try:
        result = await run()
    except DomainError as error:
        return payload(errors=[UserError.of(error)])
    finally:
        info.context.reset_loaders()
    return payload(errors=[], **result)


async def guarded_bulk(
    info: Info,
    payload: Callable[..., P],
    field: str,
    run: Callable[[], Awaitable[tuple[Sequence[Any], Sequence[DomainError]]]],
    wrap: Callable[[Any], Any],
) -> P:
    """A bulk mutation: the rows it changed under ``field``, and every refused item's
    error (by index); a DomainError for the whole call becomes the only error."""
    try:
        rows, errors = await run()
    except DomainError as error:
        return payload(errors=[UserError.of(error)])
    finally:
        info.context.reset_loaders()
    return payload(errors=[UserError.of(e) for e in errors], **{field: [wrap(row) for row in rows]})
