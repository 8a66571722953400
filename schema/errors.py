"""Mutation payload errors: a DomainError becomes a UserError with its code and field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import strawberry

from app.errors import Code, DomainError
from schema.context import Info, input_path

P = TypeVar("P")


strawberry.enum(Code, name="ErrorCode")  # the domain's codes are the API's, one list
_DESCRIPTIONS = {
    Code.DUPLICATE: "Another prospect of the organization already has this email or externalId.",
    Code.NO_ADDRESS: "The prospect has no address for the channel (no email for EMAIL, no phone for SMS).",
}
for _value in Code.__strawberry_definition__.values:  # type: ignore[attr-defined]
    _value.description = _DESCRIPTIONS.get(Code(_value.value), _value.description)


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
    def of(cls, error: DomainError, names: Mapping[str, str] | None = None) -> UserError:
        """``error`` with its field as an input path (``names``: see ``input_path``)."""
        return cls(code=error.code, message=error.message, field=input_path(error.field, names=names))


async def guarded(
    info: Info,
    payload: Callable[..., P],
    run: Callable[[], Awaitable[dict[str, Any]]],
    names: Mapping[str, str] | None = None,
) -> P:
    """Runs a mutation's service call; DomainErrors become the payload's errors,
    their fields input paths (``names``: see ``input_path``).
    The request's loaders are renewed so the payload shows the state after the change."""
    try:
        result = await run()
    except DomainError as error:
        return payload(errors=[UserError.of(error, names)])
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
) -> P:
    """A bulk mutation: the rows it changed under ``field``, and every refused item's
    error (by index); a DomainError for the whole call becomes the only error."""
    try:
        rows, errors = await run()
    except DomainError as error:
        return payload(errors=[UserError.of(error, names)])
    finally:
        info.context.reset_loaders()
    return payload(errors=[UserError.of(e, names) for e in errors], **{field: [wrap(row) for row in rows]})
