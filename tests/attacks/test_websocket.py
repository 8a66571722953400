"""The websocket: what connection_init accepts, what one malformed
operation may do to a connection, subscriptions sent over HTTP, and sockets whose
token is revoked, whose user is deactivated or whose viewer may no longer see
what it subscribed to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from starlette.applications import Starlette
from websockets.typing import Subprotocol

from app import ids, presets
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import ApiToken, Role, User
from app.accounts.sessions import Session, Sessions
from app.clock import FrozenClock
from app.config import Settings
from app.events import log, stream
from app.events.hub import Hub
from app.prospects import service as prospects
from app.prospects.models import Prospect
from app.state import state_of
from app.web import SUBSCRIPTIONS_OVER_HTTP, create_app
from schema.context import Context
from tests.conftest import Org
from tests.loopback import serving
from tests.ws_client import Client, connect

PROTOCOL = Subprotocol("graphql-transport-ws")
ACK = "ack"
EVENTS = "subscription { events { type prospect { firstName } } }"
VIEWER = "{ viewer { id } }"
AFTER = "subscription($after: String) { events(after: $after) { cursor } }"

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

# One operation's subscribe message ("id": "bad" unless given; "message" stands for the
# whole message, "raw" for its text) and the outcome: ("error", text), an `error`
# message for that operation and the socket open for the next one; or ("close", code)
# for the whole socket.
A = "subscription A { events { cursor } }"


def raw(number: str) -> str:
    """A subscribe message's text whose variable ``n`` is ``number`` as written."""
    return '{"id": "bad", "type": "subscribe", "payload": {"query": "' + A + '", "variables": {"n": ' + number + "}}}"


SUBSCRIBE = [
    pytest.param({"payload": {"query": "subscription {"}}, ("error", "Syntax Error"), id="does-not-parse"),
    pytest.param({"payload": {"query": A, "operationName": "B"}}, ("error", 'operation named "B"'), id="no-B"),
    pytest.param({"payload": {"query": "fragment F on Event { cursor }"}}, ("error", "operation type"), id="no-op"),
    pytest.param({"payload": {"query": "subscription { events { nope } }"}}, ("error", "Cannot query"), id="no-field"),
    pytest.param({"payload": {"query": AFTER, "variables": {"after": 5}}}, ("error", "'$after'"), id="bad-variable"),
    pytest.param({"payload": {"query": AFTER, "variables": [5]}}, ("close", 4400), id="variables-not-an-object"),
    pytest.param({"payload": {"query": 5}}, ("close", 4400), id="query-not-a-string"),
    pytest.param({"payload": {"query": A, "operationName": 3}}, ("close", 4400), id="operation-name-not-a-string"),
    pytest.param({"payload": {"query": A, "extensions": 3}}, ("close", 4400), id="extensions-not-an-object"),
    pytest.param({"payload": A}, ("close", 4400), id="payload-not-an-object"),
    pytest.param({"id": ["a"], "payload": {"query": A}}, ("close", 4400), id="id-not-a-string"),
    pytest.param({"id": 7, "payload": {"query": A}}, ("close", 4400), id="id-a-number"),
    pytest.param({"message": ["subscribe"]}, ("close", 4400), id="message-not-an-object"),
    pytest.param({"message": "subscribe"}, ("close", 4400), id="message-a-string"),
    pytest.param({"raw": raw("9" * 5_000)}, ("close", 4400), id="a-number-of-5000-digits"),
    pytest.param({"raw": raw("NaN")}, ("close", 4400), id="nan"),
]

# Subscriptions over HTTP without a multipart stream: (method, Accept) → a 400 that says
# how subscriptions are served (a POST accepting multipart/mixed streams: tests/test_web_http.py).
OVER_HTTP = [
    pytest.param("POST", "application/json", id="post-json"),
    pytest.param("POST", "text/event-stream", id="post-sse"),
    pytest.param("GET", "application/json", id="get"),
    pytest.param("GET", "multipart/mixed;subscriptionSpec=1.0, application/json", id="get-multipart"),
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


@asynccontextmanager
async def serving_app(app: Starlette) -> AsyncIterator[Served]:
    """``app`` served on loopback; then its hub's Redis connection closed (its lifespan does not run)."""
    try:
        async with serving(app) as url:
            yield Served(app, url)
    finally:
        state = state_of(app)
        assert state.hub is not None
        await state.hub.close()
        await state.sessions.close()


@pytest.fixture
async def served(org: Org, settings: Settings, clock: FrozenClock, redis: Redis) -> AsyncIterator[Served]:
    async with serving_app(create_app(settings, clock=clock, redis=redis, manage_resources=False)) as served:
        yield served


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
    revoked, row = await accounts.create_token(actor=admin, name="old", user_id=org.users[Role.AGENT].id)
    await accounts.revoke_token(actor=admin, token_id=row.id)
    leaver = await accounts.create_user(actor=admin, name="Leaver", email="leaver@acme.example", role=Role.AGENT)
    inactive, _ = await accounts.create_token(actor=admin, name="leaver", user_id=leaver.id)
    await User.filter(id=leaver.id).update(active=False)
    return {
        "token": org.tokens[Role.AGENT],
        "other": org.tokens[Role.MANAGER],
        "revoked": revoked,
        "inactive": inactive,
    }


async def _closed_with(client: Client, seconds: float = 2.0) -> int:
    """The code of the server's close, which must come within ``seconds`` (messages
    before it, such as an earlier operation's `complete`, are passed over)."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(seconds):
            while True:
                await client.receive(seconds=seconds)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


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


@pytest.mark.parametrize(("message", "outcome"), SUBSCRIBE)
async def test_one_malformed_operation(
    served: Served, org: Org, message: dict[str, Any], outcome: tuple[str, Any]
) -> None:
    async with connect(served.ws, org.tokens[Role.AGENT]) as client:
        sent = message.get("message", {"id": "bad", "type": "subscribe", **message})
        await client.ws.send(message["raw"] if "raw" in message else json.dumps(sent))
        kind, expected = outcome
        if kind == "close":
            assert await _closed_with(client) == expected
            return
        reply = await client.receive(operation="bad")
        assert reply["type"] == "error" and expected in reply["payload"][0]["message"], reply
        follow_up = await client.subscribe(VIEWER)  # the socket is still open and serves the next operation
        assert (await client.next_data(follow_up))["viewer"]["id"] == org.user_gid(Role.AGENT)


@pytest.mark.parametrize(("method", "accept"), OVER_HTTP)
async def test_a_subscription_over_http(served: Served, org: Org, method: str, accept: str) -> None:
    headers = {"Authorization": f"Bearer {org.tokens[Role.AGENT]}", "Accept": accept}
    async with httpx.AsyncClient(base_url=served.url) as client:
        if method == "GET":
            response = await client.get("/graphql", params={"query": EVENTS}, headers=headers)
        else:
            response = await client.post("/graphql", json={"query": EVENTS}, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"data": None, "errors": [{"message": SUBSCRIPTIONS_OVER_HTTP}]}


REVOKE = "mutation($input: RevokeApiTokenInput!) { revokeApiToken(input: $input) { errors { code } } }"


async def _ready(client: Client) -> None:
    """Returns once the server has made the connection a session: it answered an
    operation, which it reads only after connection_init is done."""
    assert "viewer" in await client.next_data(await client.subscribe(VIEWER))


@pytest.fixture
async def two_processes(
    org: Org, settings: Settings, clock: FrozenClock, redis: Redis
) -> AsyncIterator[tuple[Served, Served]]:
    """Two API processes on one Redis whose periodic token check would take an hour:
    only an announcement on Redis can end a session there."""
    a, b = (
        create_app(settings, clock=clock, redis=redis, manage_resources=False, session_check_seconds=3600)
        for _ in range(2)
    )
    async with serving_app(a) as served_a, serving_app(b) as served_b:
        yield served_a, served_b


async def test_revoking_a_token_on_one_process_closes_its_sockets_on_every_process_within_2_s(
    org: Org, clock: FrozenClock, two_processes: tuple[Served, Served]
) -> None:
    served_a, served_b = two_processes
    admin = org.actor(Role.ADMIN, clock)
    laptop, row = await accounts.create_token(actor=admin, name="laptop", user_id=org.users[Role.AGENT].id)
    async with (
        connect(served_b.ws, laptop) as there,
        connect(served_a.ws, laptop) as here,
        connect(served_b.ws, org.tokens[Role.AGENT]) as other_token,
    ):
        for client in (there, here, other_token):
            await _ready(client)
        await there.subscribe(EVENTS)
        # When an ADMIN revokes the token through process A
        data = await served_a.graphql(org.tokens[Role.ADMIN], REVOKE, input={"id": ids.encode("ApiToken", row.id)})
        assert data["revokeApiToken"]["errors"] == []
        # then its sockets on B and on A close with 4403 within 2 s; the same user's other token stays.
        assert await _closed_with(there, 2.0) == 4403
        assert await _closed_with(here, 2.0) == 4403
        assert "viewer" in await other_token.next_data(await other_token.subscribe(VIEWER))
    hub = state_of(served_b.app).hub
    assert hub is not None and hub.subscriber_count() == 0  # the revoked socket's subscription is gone


DEACTIVATE = "mutation($input: UpdateUserInput!) { updateUser(input: $input) { errors { code } } }"


async def test_deactivating_a_user_through_the_api_closes_its_sockets_on_every_process_within_2_s(
    org: Org, clock: FrozenClock, two_processes: tuple[Served, Served]
) -> None:
    served_a, served_b = two_processes
    admin = org.actor(Role.ADMIN, clock)
    laptop, _ = await accounts.create_token(actor=admin, name="laptop", user_id=org.users[Role.AGENT].id)
    async with (
        connect(served_b.ws, laptop) as there,
        connect(served_b.ws, org.tokens[Role.AGENT]) as phone,
        connect(served_b.ws, org.tokens[Role.MANAGER]) as kept,
    ):
        for client in (there, phone, kept):
            await _ready(client)
        # When an ADMIN deactivates the agent through process A
        data = await served_a.graphql(
            org.tokens[Role.ADMIN], DEACTIVATE, input={"userId": org.user_gid(Role.AGENT), "active": False}
        )
        assert data["updateUser"]["errors"] == []
        # then both of its tokens' sockets on B close with 4403 within 2 s; another user's stays.
        assert await _closed_with(there, 2.0) == 4403
        assert await _closed_with(phone, 2.0) == 4403
        assert "viewer" in await kept.next_data(await kept.subscribe(VIEWER))


async def test_a_revocation_whose_announcement_was_lost_still_closes_the_socket_within_2_s(
    served: Served, org: Org, clock: FrozenClock
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    laptop, row = await accounts.create_token(actor=admin, name="laptop", user_id=org.users[Role.AGENT].id)
    async with connect(served.ws, laptop) as client:
        await _ready(client)
        await accounts.revoke_token(actor=admin, token_id=row.id)  # nothing announced
        assert await _closed_with(client, 2.0) == 4403


async def test_deactivating_a_user_closes_its_sockets_within_2_s(served: Served, org: Org) -> None:
    async with (
        connect(served.ws, org.tokens[Role.AGENT]) as agent,
        connect(served.ws, org.tokens[Role.MANAGER]) as kept,
    ):
        await _ready(agent)
        await _ready(kept)
        await User.filter(id=org.users[Role.AGENT].id).update(active=False)
        assert await _closed_with(agent, 2.0) == 4403
        assert "viewer" in await kept.next_data(await kept.subscribe(VIEWER))


async def test_a_connection_demoted_to_agent_gets_only_the_events_of_prospects_it_may_work(
    served: Served, org: Org, clock: FrozenClock
) -> None:
    manager, admin = org.users[Role.MANAGER], org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    async with connect(served.ws, org.tokens[Role.MANAGER]) as client:
        await _ready(client)
        # When the MANAGER becomes an AGENT (and its session has checked)
        await User.filter(id=manager.id).update(role=Role.AGENT)
        await state_of(served.app).sessions.check()
        # then of two prospects it sees only the one it may work (unassigned), not the ADMIN's.
        # (From the log, numbered and not published: a shared Redis carries other tests' events.)
        theirs = {"first_name": "Theirs", "owner_id": org.users[Role.ADMIN].id}
        await prospects.create_prospects(actor=admin, inputs=[theirs, {"first_name": "Open"}])
        await log.sequence()
        operation = await client.subscribe(
            "subscription($after: String) { events(after: $after) { type prospect { firstName } } }",
            after=ids.encode("Cursor", 0),
        )
        first = (await client.next_data(operation))["events"]
        assert first == {"type": "PROSPECT_CREATED", "prospect": {"firstName": "Open"}}


async def test_events_read_from_the_log_pass_the_read_rule_when_delivered_not_when_read(
    org: Org, clock: FrozenClock, redis: Redis
) -> None:
    # Given an AGENT's two prospects with events in the log (one page)
    agent, admin = org.actor(Role.AGENT, clock), org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    mine = {"owner_id": org.users[Role.AGENT].id}
    made, _ = await prospects.create_prospects(
        actor=admin, inputs=[{"first_name": "Taken", **mine}, {"first_name": "Kept", **mine}]
    )
    taken, kept = made
    await prospects.update_prospect(actor=admin, prospect_id=taken.id, changes={"title": "CTO"})
    await log.sequence()
    hub = Hub(redis, Sessions())
    try:
        follow = stream.follow(lambda: agent, hub, _everything, after=0)
        first = await anext(follow)
        assert first.prospect_id == taken.id
        # When the prospect is taken from the AGENT while the page is being delivered
        await Prospect.filter(id=taken.id).update(owner_id=org.users[Role.MANAGER].id)
        # then none of its other events follow, and the other prospect's do.
        rest = [await anext(follow) for _ in range(2)]
        assert {event.prospect_id for event in rest} == {kept.id}
        await follow.aclose()
    finally:
        await hub.close()


async def _everything(event: object) -> bool:
    return True


async def test_a_session_opened_while_the_tokens_are_checked_is_not_ended(org: Org, clock: FrozenClock) -> None:
    # Given one open session and a check of the tokens under way
    sessions, ended = Sessions(check_seconds=3600), []
    first = Session(await _actor(org, Role.AGENT, clock), lambda: _record_end(ended, "first"))
    second = Session(await _actor(org, Role.MANAGER, clock), lambda: _record_end(ended, "second"))
    with sessions.attending(first):
        checking = asyncio.create_task(sessions.check())
        await asyncio.sleep(0)  # the check has read which sessions are open and waits on the database
        # when a second session opens before the check's query returns
        with sessions.attending(second):
            await checking
            await asyncio.sleep(0)
            # then it is not ended: the check had not read its token
            assert ended == []
    await sessions.close()


async def test_a_sessions_loaders_read_as_the_viewer_is_now(org: Org, clock: FrozenClock) -> None:
    # Given a websocket context authenticated as an ADMIN whose session was since demoted to AGENT
    context = Context(request=cast(Any, None), actor_or_none=await _actor(org, Role.ADMIN, clock))
    context.session = Session(await _actor(org, Role.AGENT, clock), lambda: _record_end([], "x"))
    # then what its loaders read as the viewer (a sequence's stats among them) is read as an AGENT
    for loader in (context.loaders.sequence_stats, context.loaders.organization, context.loaders.mailbox_usage):
        [actor] = cast(Any, loader.load_fn).args
        assert actor is not None and actor.role is Role.AGENT


async def _actor(org: Org, role: Role, clock: FrozenClock) -> Actor:
    token = await ApiToken.filter(user_id=org.users[role].id).first()
    assert token is not None
    return Actor(organization_id=org.id, user_id=org.users[role].id, role=role, clock=clock, token_id=token.id)


async def _record_end(ended: list[str], name: str) -> None:
    ended.append(name)
