"""The websocket (issue #19): what connection_init accepts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from starlette.applications import Starlette
from websockets.typing import Subprotocol

from app import ids
from app.accounts import service as accounts
from app.accounts.models import Role, User
from app.clock import FrozenClock
from app.config import Settings
from app.web import create_app
from tests.conftest import Org
from tests.loopback import serving

PROTOCOL = Subprotocol("graphql-transport-ws")
ACK = "ack"

# connection_init payloads ({token}: an AGENT's, {other}: a MANAGER's, {revoked}: a
# revoked one, {inactive}: a deactivated user's) and the answer: ACK or a close code.
CONNECTION_INIT = [
    pytest.param({"Authorization": "Bearer {token}"}, ACK, id="capitalised-as-graphiql-sends-headers"),
    pytest.param({"AUTHORIZATION": "bearer {token}"}, ACK, id="key-and-scheme-in-any-case"),
    pytest.param({"headers": {"Authorization": "Bearer {token}"}}, ACK, id="apollo-headers"),
    pytest.param({"headers": {"authorization": "Bearer {token}"}}, ACK, id="apollo-headers-lower-case"),
    pytest.param({"authorization": "Bearer {token}", "headers": {"Authorization": "Bearer {token}"}}, ACK, id="twice"),
    pytest.param({"Authorization": "Bearer {token}", "authorization": "Bearer ll_no"}, 4403, id="keys-differ"),
    pytest.param(
        {"authorization": "Bearer {token}", "headers": {"authorization": "Bearer {other}"}}, 4403, id="nest-differ"
    ),
    pytest.param({"headers": {"headers": {"authorization": "Bearer {token}"}}}, 4403, id="headers-within-headers"),
    pytest.param({"headers": "Bearer {token}"}, 4403, id="headers-not-an-object"),
    pytest.param({"Authorization": ["Bearer {token}"]}, 4403, id="not-a-string"),
    pytest.param({"Authorization": "{token}"}, 4403, id="no-scheme"),
    pytest.param({"Authorization": "Bearer {revoked}"}, 4403, id="revoked-token"),
    pytest.param({"headers": {"Authorization": "Bearer {inactive}"}}, 4403, id="deactivated-user"),
]


@dataclass
class Served:
    app: Starlette
    url: str

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    async def graphql(self, token: str, query: str, **variables: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {token}"}
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]


@pytest.fixture
async def served(org: Org, settings: Settings, clock: FrozenClock, redis: Redis) -> AsyncIterator[Served]:
    app = create_app(settings, clock=clock, redis=redis, manage_resources=False)
    async with serving(app) as url:
        yield Served(app, url)


def _fill(value: Any, tokens: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**tokens)
    if isinstance(value, dict):
        return {key: _fill(item, tokens) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, tokens) for item in value]
    return value


async def _tokens(org: Org, clock: FrozenClock) -> dict[str, str]:
    admin = org.actor(Role.ADMIN, clock)
    revoked, row = await accounts.create_token(actor=admin, name="old", user_id=org.user_gid(Role.AGENT))
    await accounts.revoke_token(actor=admin, token_id=ids.encode("ApiToken", row.id))
    leaver = await accounts.create_user(actor=admin, name="Leaver", email="leaver@acme.example", role=Role.AGENT)
    inactive, _ = await accounts.create_token(actor=admin, name="leaver", user_id=ids.encode("User", leaver.id))
    await User.filter(id=leaver.id).update(active=False)
    return {
        "token": org.tokens[Role.AGENT],
        "other": org.tokens[Role.MANAGER],
        "revoked": revoked,
        "inactive": inactive,
    }


@pytest.mark.parametrize(("payload", "answer"), CONNECTION_INIT)
async def test_connection_init(served: Served, org: Org, clock: FrozenClock, payload: object, answer: object) -> None:
    init = {"type": "connection_init", "payload": _fill(payload, await _tokens(org, clock))}
    async with websockets.connect(served.ws, subprotocols=[PROTOCOL]) as ws:
        await ws.send(json.dumps(init))
        try:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            assert closed.rcvd.code == answer
            return
        assert answer == ACK and reply == {"type": "connection_ack"}, reply
