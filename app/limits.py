"""Bounds on what an HTTP request may send and what a GraphQL response may weigh
(SPEC R15), for the composition root (app/web.py).

- ``BodyLimit``: each path's body cap. A declared Content-Length over the cap is
  answered 413 before a byte is read; a body without one is counted as it
  arrives and refused the moment it passes the cap, never read further.
- ``BoundedGraphQL``: Strawberry's ASGI view whose request JSON must be UTF-8,
  an object, nested no deeper than the parser's stack allows, free of lone
  surrogates and of numbers no JSON parser holds (NaN, Infinity, past a double's
  range or past Python's 4,300 digits) (400 saying which, as a JSON error), and
  whose response is at most
  ``max_response_bytes`` (else a GraphQL error in its place). The response is
  encoded in parts and dropped the moment it passes the cap: its data may name
  one long text many times (every enrollment's sequence's steps), which costs
  nothing in memory until it is written out. A multipart subscription's stream
  is not bounded as a whole (it lasts as long as the subscription): each of its
  parts is.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from cross_web import HTTPException
from starlette import status
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
        value = json.loads(text, parse_constant=_not_a_number, parse_float=_finite)
    except BadJSON:
        raise
    except json.JSONDecodeError as error:
        raise BadJSON(f"The body is not JSON: {error.msg} (line {error.lineno}, column {error.colno}).") from None
    except RecursionError:
        raise BadJSON("The JSON is nested too deeply.") from None
    except ValueError:  # an integer longer than int() reads (sys.get_int_max_str_digits())
        raise BadJSON(f"The JSON has a number of more than {sys.get_int_max_str_digits():,} digits.") from None
    # Paired surrogates decode to one character; a lone one cannot be stored or sent.
    if _ESCAPED_SURROGATE.search(text) and (where := _holding(value, _SURROGATE)) is not None:
        raise BadJSON(f"The JSON has a lone surrogate, which is not text, at {_shown(where)}.")
    # PostgreSQL's text cannot hold NUL (SQLite would store it and cut it off where C reads it).
    if "\\u0000" in text and (where := _holding(value, _NUL)) is not None:
        raise BadJSON(f"The JSON has a NUL character (\\u0000), which text may not hold, at {_shown(where)}.")
    return value


def _not_a_number(constant: str) -> float:
    """Python's json reads NaN and Infinity, which JSON does not have: stored, they
    would come back in responses no other parser reads."""
    raise BadJSON(f"The body is not JSON: {constant} is not a JSON number.")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise BadJSON(f"The JSON has a number too large to hold: {text if len(text) <= 20 else text[:20] + '…'}.")
    return number


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
        """Strawberry's response, but encoded within the cap."""
        body = encode_within(response_data, self.max_response_bytes)
        if body is None:
            body = _dumps({"data": None, "errors": [{"message": self._over_limit()}]}).encode()
        response = Response(body, status_code=status.HTTP_200_OK, media_type="application/json")
        response.headers.raw.extend(sub_response.headers.raw)
        response.background = sub_response.background or None
        response.status_code = sub_response.status_code or response.status_code
        return response

    def encode_json_string(self, data: object) -> str:
        """A part of a multipart stream (one subscription event, ``{"payload": ...}``, or
        a heartbeat), encoded within the cap: an event over it is replaced by an error,
        and the stream goes on."""
        body = encode_within(data, self.max_response_bytes)
        if body is None:
            return _dumps({"payload": {"data": None, "errors": [{"message": self._over_limit()}]}})
        return body.decode("ascii")

    def _over_limit(self) -> str:
        return (
            f"The response is over the limit of {self.max_response_bytes:,} bytes "
            "(GRAPHQL_MAX_RESPONSE_BYTES): ask for fewer fields or smaller pages. A mutation's changes stand."
        )


PART = 256 * KIB
"""The most JSON encoded in one go; a value that may be larger is encoded in parts."""


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))  # as Strawberry's encode_json: ASCII, compact


def encode_within(value: object, most: int) -> bytes | None:
    """``value`` as compact JSON, or None once it passes ``most`` bytes: memory holds at
    most ``most`` bytes of it and one part. A value that surely fits in a PART (most
    responses) costs one walk and one run of json's C encoder."""
    parts: list[bytes] = []
    size = 0
    for part in _parts(value):
        size += len(part)  # ASCII: a character is a byte
        if size > most:
            return None
        parts.append(part.encode("ascii"))
    return b"".join(parts)


def _parts(value: object) -> Iterator[str]:
    if _bound(value, PART) <= PART:
        yield _dumps(value)
    elif isinstance(value, dict):
        yield "{"
        for index, (key, inner) in enumerate(value.items()):
            yield f"{',' if index else ''}{_dumps(key)}:"
            yield from _parts(inner)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for index, inner in enumerate(value):
            if index:
                yield ","
            yield from _parts(inner)
        yield "]"
    elif isinstance(value, str):  # escaping is character by character: slices join up
        yield '"'
        for start in range(0, len(value), PART // 12):
            yield _dumps(value[start : start + PART // 12])[1:-1]
        yield '"'
    else:
        yield _dumps(value)


def _bound(value: object, most: int) -> int:
    """At least the length of ``value``'s JSON, counting no further than past ``most``.
    A character escapes to at most 6 (``\\u001f``), one past the BMP to 12."""
    size = 0
    stack: list[Any] = [value]
    pop, extend = stack.pop, stack.extend
    while stack and size <= most:
        item = pop()
        kind = type(item)
        if kind is dict:
            keys = "".join(item)
            size += 4 * len(item) + 2 + 6 * len(keys) * (1 if keys.isascii() else 2)
            extend(item.values())
        elif kind is str:
            size += 2 + 6 * len(item) * (1 if item.isascii() else 2)
        elif kind is list or kind is tuple:
            size += len(item) + 2
            extend(item)
        elif kind is int and not -(10**20) < item < 10**20:
            size += len(str(item))
        else:
            size += 24  # a number (repr of a float: at most 24), true, false, null
    return size
