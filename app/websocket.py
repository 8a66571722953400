"""graphql-transport-ws as Leadline serves it: the websocket side of the GraphQL
view (part of the composition root with app.web, so it knows the GraphQL context).

- A message that is not graphql-transport-ws at all (not an object, no string
  ``type``, a ``subscribe`` without a string ``id`` or ``payload.query``, or with
  ``variables`` that are not an object) closes the socket with 4400, as the
  protocol says. A well-formed ``subscribe`` whose document does not parse, names
  no operation of it, fails validation or gets bad variables is an ``error``
  message for that operation alone; the socket and its other operations go on.
- Once acknowledged, the connection is a session (app.accounts.sessions): when its
  token is revoked or its user deactivated, it is closed with 4403.
- The server pings every PING_SECONDS once acknowledged: proxies keep the
  connection open, and a dead client is found by a failed send.
- A result shared by the subscribers of one feed (schema.events.shared) is
  encoded once; each operation's ``next`` frame is that payload with its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.schema import StreamResult
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage, Message
from strawberry.types.execution import ExecutionResult, PreExecutionError

from app.accounts.sessions import Session
from app.state import state_of
from schema.context import Context
from schema.events.shared import SharedResult

PING_SECONDS = 15.0
FORBIDDEN = 4403


def protocol_fault(message: object) -> str | None:
    """Why ``message`` is not a graphql-transport-ws message, or None if it is one
    (types the protocol does not know are left to Strawberry, which closes with 4400 too)."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "Invalid message: expected an object with a string `type`"
    kind, payload = message["type"], message.get("payload")
    if kind in ("subscribe", "complete") and not (isinstance(message.get("id"), str) and message["id"]):
        return f"Invalid {kind} message: `id` must be a non-empty string"
    if kind in ("connection_init", "ping", "pong") and not isinstance(payload, dict | None):
        return f"Invalid {kind} message: `payload` must be an object"
    if kind != "subscribe":
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "Invalid subscribe message: `payload.query` must be a string"
    if not isinstance(payload.get("operationName"), str | None):
        return "Invalid subscribe message: `payload.operationName` must be a string"
    for key in ("variables", "extensions"):
        if not isinstance(payload.get(key), dict | None):
            return f"Invalid subscribe message: `payload.{key}` must be an object"
    return None


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pinger: asyncio.Task[None] | None = None
        self._attending = contextlib.AsyncExitStack()

    async def handle_message(self, message: Message) -> None:
        if (fault := protocol_fault(message)) is not None:
            await self.handle_invalid_message(fault)
            return
        await super().handle_message(message)

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        # Strawberry closes the whole socket when one operation's document does not parse
        # or names no operation; here that operation gets an `error` message instead.
        return None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._pinger is None:
            await self._attend()
            self._pinger = asyncio.create_task(self._ping())

    async def _attend(self) -> None:
        """The connection becomes a session, ended with 4403 when its token stops authenticating."""
        state = state_of(self.context.request.app)
        session = Session(self.context.actor, self._forbid)
        if state.hub is not None:
            await self._attending.enter_async_context(state.hub.attend(session))
        else:  # no Redis (some tests): the periodic check alone
            self._attending.enter_context(state.sessions.attending(session))
        self.context.session = session

    async def _forbid(self) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with contextlib.suppress(Exception):  # the client left meanwhile
            await self.websocket.close(code=FORBIDDEN, reason="Forbidden")

    async def _ping(self) -> None:
        interval = float(getattr(self.view, "ping_seconds", PING_SECONDS))
        with contextlib.suppress(Exception):  # the socket closed: shutdown follows
            while True:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def _send_result_stream(self, operation: Operation[Context, None], result_source: StreamResult) -> None:
        # Strawberry's, but a shared result's `next` frame is its payload encoded once for
        # all its subscribers with this operation's id spliced in (schema.events.shared).
        first = True
        async for result in result_source:
            if first and isinstance(result, PreExecutionError):
                await self._handle_pre_execution_error(operation, result)
                return
            if not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            if isinstance(result, SharedResult) and isinstance(self.websocket, ASGIWebSocketAdapter):
                if operation.completed:
                    return
                frame = f'{{"id":{json.dumps(operation.id)},"type":"next","payload":{result.payload(self.view.encode_json)}}}'
                try:
                    await self.websocket.ws.send_text(frame)
                except WebSocketDisconnect as gone:
                    raise WebSocketDisconnected from gone
            else:
                await operation.send_next(result)
            first = False

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().shutdown()
        await self._attending.aclose()
