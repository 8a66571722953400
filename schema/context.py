"""The per-request context: the viewer (an Actor), the request's DataLoaders, the settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.utils.str_converters import to_camel_case

from app.accounts.actor import Actor
from app.accounts.sessions import Session
from app.config import Settings
from app.errors import DomainError, Field
from app.state import AppState, state_of
from schema.loaders import Loaders


class AuthenticationError(Exception):
    """No valid token: HTTP 401, websocket close 4403."""


@dataclass
class Context:
    request: Request | WebSocket
    actor_or_none: Actor | None
    connection_params: dict[str, object] | None = None
    """What a websocket client sent in connection_init."""
    session: Session | None = None
    """A websocket connection's, once acknowledged: it keeps the actor current."""
    _loaders: Loaders | None = field(default=None, init=False)

    @property
    def loaders(self) -> Loaders:
        """The request's DataLoaders, made when first used, for the viewer as it is now
        (a websocket session's role as of its last check)."""
        if self._loaders is None:
            self._loaders = Loaders(self.session.actor if self.session is not None else self.actor_or_none)
        return self._loaders

    @property
    def state(self) -> AppState:
        return state_of(self.request.app)

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def actor(self) -> Actor:
        if self.session is not None:
            return self.session.actor
        if self.actor_or_none is None:
            raise AuthenticationError
        return self.actor_or_none

    def reset_loaders(self) -> None:
        """New loaders: after a mutation, nothing cached before it is served
        (made when next used: a live event that needs none costs none)."""
        self._loaders = None


Info = strawberry.Info[Context, None]


class PublicError(Exception):
    """An error whose message is safe to show the client as a GraphQL error
    (bad pagination arguments and the like); everything else is masked. A domain
    error's code and field go into the GraphQL error's ``extensions``."""

    def __init__(self, message: str, *, code: str | None = None, field: list[str] | None = None) -> None:
        super().__init__(message)
        self.extensions: dict[str, object] = {"code": code, "field": field} if code else {}


INPUT = ("input",)
"""A mutation's one argument, which its error paths start with."""


def input_path(
    at: Field | None, *, under: Sequence[str] = INPUT, names: Mapping[str, str] | None = None
) -> list[str] | None:
    """A domain error's field as the path a client sees: under the argument that
    holds the inputs, names in camelCase (or as ``names`` says where the input's
    name differs from the service's), indices as strings."""
    if at is None:
        return None
    renamed = names or {}
    return [*under, *(str(part) if isinstance(part, int) else renamed.get(part) or to_camel_case(part) for part in at)]


def domain_to_public(error: DomainError, *, under: Sequence[str] = ()) -> PublicError:
    return PublicError(error.message, code=error.code.value, field=input_path(error.field, under=under))
