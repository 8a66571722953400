"""A graphql-transport-ws client for tests and the subscription benchmark."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("graphql-transport-ws")


class Rejected(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pings = 0
        self._next_id = 0
        self._held: list[dict[str, Any]] = []

    async def subscribe(self, query: str, **variables: Any) -> str:
        self._next_id += 1
        operation = str(self._next_id)
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": operation, "type": "subscribe", "payload": payload}))
        return operation

    async def complete(self, operation: str) -> None:
        await self.ws.send(json.dumps({"id": operation, "type": "complete"}))

    async def receive(self, seconds: float = 10.0, operation: str | None = None) -> dict[str, Any]:
        """The next message (of ``operation`` if given, keeping the others for later)
        other than a ping, which is answered with a pong."""
        for index, waiting in enumerate(self._held):
            if operation is None or waiting.get("id") == operation:
                return self._held.pop(index)
        async with asyncio.timeout(seconds):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                if message["type"] == "ping":
                    self.pings += 1
                    await self.ws.send(json.dumps({"type": "pong"}))
                elif operation is None or message.get("id") == operation:
                    return message
                else:
                    self._held.append(message)

    async def next_data(self, operation: str, seconds: float = 15.0) -> dict[str, Any]:
        """The next result of ``operation``; an error or completion is a failure."""
        message = await self.receive(seconds, operation)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data


@asynccontextmanager
async def connect(url: str, token: str | None) -> AsyncIterator[Client]:
    """An acknowledged connection, or Rejected with the server's close code."""
    async with websockets.connect(url, subprotocols=[PROTOCOL], max_size=2**22) as ws:
        init = {"authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        try:
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except websockets.ConnectionClosed as closed:
            raise Rejected(closed.rcvd.code if closed.rcvd else 1006) from None
        assert answer["type"] == "connection_ack", answer
        yield Client(ws)
