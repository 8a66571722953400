"""Bounds on what an HTTP request may send and what a GraphQL response may weigh
(SPEC R15), for the composition root (app/web.py).

- ``BodyLimit``: each path's body cap. A declared Content-Length over the cap is
  answered 413 before a byte is read; a body without one is counted as it
  arrives and refused the moment it passes the cap, never read further.
- ``BoundedGraphQL``: Strawberry's ASGI view whose request JSON must be UTF-8,
  an object, nested no deeper than the parser's stack allows and free of lone
  surrogates (400 saying which, as a JSON error), and whose response is at most
  ``max_response_bytes`` (else a GraphQL error in its place).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse

KIB = 1024
MIB = 1024 * KIB

ContextT = TypeVar("ContextT")
RootT = TypeVar("RootT")


class BodyTooLarge(Exception):
    """Raised from ``receive`` into the handler reading a body past its cap."""


class BodyLimit:
    """ASGI middleware: a request body larger than its path's cap gets 413 and a
    JSON error (``errors`` on GraphQL paths, ``error`` elsewhere)."""

    def __init__(
        self, app: ASGIApp, *, caps: Sequence[tuple[str, int]], default: int, graphql_paths: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.caps = caps
        self.default = default
        self.graphql_paths = frozenset(graphql_paths)

    def cap(self, path: str) -> int:
        """The cap of the first prefix of ``path`` listed, else the default."""
        return next((most for prefix, most in self.caps if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        most = self.cap(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > most:
            await self._refuse(scope, receive, send, most)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > most:
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:  # a handler answered before reading all: nothing left to say
                raise
            await self._refuse(scope, receive, send, most)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, most: int) -> None:
        message = f"The request body is larger than {most:,} bytes."
        content: dict[str, Any] = (
            {"errors": [{"message": message}]} if scope["path"] in self.graphql_paths else {"error": message}
        )
        # The rest of the body is never read: the connection cannot carry another request.
        await JSONResponse(content, status_code=413, headers={"Connection": "close"})(scope, receive, send)


class BadJSON(json.JSONDecodeError):
    """JSON a request may not carry. A JSONDecodeError, so that Strawberry's
    websocket handler closes the socket (4400) as for any message not JSON."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL = re.compile("\x00")


def decode_json(data: str | bytes) -> object:
    """The JSON value of a request body or websocket message; BadJSON says what is wrong."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadJSON(f"The body is not UTF-8 (byte {error.start}).") from None
    else:
        text = data
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadJSON(f"The body is not JSON: {error.msg} (line {error.lineno}, column {error.colno}).") from None
    except RecursionError:
        raise BadJSON("The JSON is nested too deeply.") from None
    # Paired surrogates decode to one character; a lone one cannot be stored or sent.
    if _ESCAPED_SURROGATE.search(text) and (where := _holding(value, _SURROGATE)) is not None:
        raise BadJSON(f"The JSON has a lone surrogate, which is not text, at {_shown(where)}.")
    # PostgreSQL's text cannot hold NUL (SQLite would store it and cut it off where C reads it).
    if "\\u0000" in text and (where := _holding(value, _NUL)) is not None:
        raise BadJSON(f"The JSON has a NUL character (\\u0000), which text may not hold, at {_shown(where)}.")
    return value


def _shown(where: str) -> str:
    """A path as a message shows it: a key may hold the very character refused."""
    where = _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", where)
    return _NUL.sub("\\\\u0000", where) or "its top level"


def _holding(value: object, pattern: re.Pattern[str]) -> str | None:
    """The dotted path of the first string (or key) in which ``pattern`` is found."""
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if pattern.search(item):
                return path
        elif isinstance(item, dict):
            for key, inner in item.items():
                where = f"{path}.{key}" if path else key
                if pattern.search(key):
                    return where
                stack.append((where, inner))
        elif isinstance(item, list):
            stack.extend((f"{path}.{index}" if path else str(index), inner) for index, inner in enumerate(item))
    return None


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, int | float) else "null"


class BoundedGraphQL(GraphQL[ContextT, RootT]):
    """Strawberry's ASGI view with the bounds above; its refusals are JSON."""

    max_response_bytes: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            response = JSONResponse({"errors": [{"message": error.reason}]}, status_code=error.status_code)
        await response(scope, receive, send)

    def decode_json(self, data: str | bytes) -> object:
        return decode_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            value = decode_json(data)
        except BadJSON as error:
            raise HTTPException(400, error.reason) from None
        if not isinstance(value, dict):
            raise HTTPException(400, f"The body must be a JSON object with a `query`, not {_kind(value)}.")
        return value

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        size = len(response.body)
        if size <= self.max_response_bytes:
            return response
        message = (
            f"The response is {size:,} bytes, over the limit of {self.max_response_bytes:,} "
            "(GRAPHQL_MAX_RESPONSE_BYTES): ask for fewer fields or smaller pages. A mutation's changes stand."
        )
        return JSONResponse({"data": None, "errors": [{"message": message}]})
