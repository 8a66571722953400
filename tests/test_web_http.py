"""GraphQL over HTTP as GraphiQL and Apollo Client use it: subscriptions streamed as
multipart responses (auth, visibility, revocation, limits, heartbeats), the
GraphiQL page, and / in development and production."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse, validate
from redis.asyncio import Redis
from starlette.applications import Starlette

from app import graphiql, ids, presets
from app.accounts import service as accounts
from app.accounts.models import Role, User
from app.clock import FrozenClock
from app.config import Settings
from app.events import log, relay
from app.prospects import service as prospects
from app.state import state_of
from app.web import SUBSCRIPTIONS_OVER_HTTP, create_app
from schema.build import build_schema
from tests.conftest import GraphQL, Org
from tests.loopback import serving

GRAPHIQL_ACCEPT = "application/json, multipart/mixed"
"""What GraphiQL's fetcher sends for every operation."""
APOLLO_ACCEPT = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json"
"""What Apollo Client sends for a subscription."""
EVENTS = "subscription($after: String) { events(after: $after) { type prospect { firstName } } }"
START = ids.encode("Cursor", 0)
REVOKE = "mutation($input: RevokeApiTokenInput!) { revokeApiToken(input: $input) { errors { code } } }"


class Parts:
    """The parts of a GraphQL multipart subscription response, as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.aiter_text()
        self._buffer = ""

    async def next(self, seconds: float = 5.0) -> dict[str, Any] | None:
        """The next part's JSON (``{}`` a heartbeat); None once the stream has ended."""
        async with asyncio.timeout(seconds):
            return await self._next()

    async def _next(self) -> dict[str, Any] | None:
        while True:
            head, boundary, rest = self._buffer.partition("\r\n--graphql")
            if boundary:
                self._buffer = rest
                if not head:  # the closing delimiter's boundary follows the last part's
                    continue
                start = head.find("\r\n\r\n")
                assert start >= 0, head
                part: dict[str, Any] = json.loads(head[start + 4 :])
                return part
            try:
                self._buffer += await anext(self._chunks)
            except StopAsyncIteration:
                assert self._buffer == "--\r\n", self._buffer  # the closing delimiter
                return None

    async def payload(self, seconds: float = 5.0) -> dict[str, Any] | None:
        """The next result (heartbeats passed over) within ``seconds``; None once the stream has ended."""
        async with asyncio.timeout(seconds):
            while (part := await self._next()) == {}:
                pass
        if part is None:
            return None
        assert set(part) == {"payload"}, part
        payload: dict[str, Any] = part["payload"]
        return payload

    async def data(self, seconds: float = 5.0) -> dict[str, Any]:
        payload = await self.payload(seconds)
        assert payload is not None and "errors" not in payload, payload
        data: dict[str, Any] = payload["data"]
        return data


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[str]:
    """``app`` on loopback; then its hub's Redis connection closed (its lifespan does not run)."""
    try:
        async with serving(app) as url:
            yield url
    finally:
        state = state_of(app)
        if state.hub is not None:
            await state.hub.close()
        await state.sessions.close()


async def _create(org: Org, clock: FrozenClock, *inputs: dict[str, Any]) -> None:
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")  # a second time changes nothing
    made, errors = await prospects.create_prospects(actor=admin, inputs=list(inputs))
    assert errors == [] and len(made) == len(inputs)


@pytest.fixture
async def app(org: Org, settings: Settings, clock: FrozenClock, redis: Redis) -> Starlette:
    return create_app(settings, clock=clock, redis=redis, manage_resources=False, ping_seconds=0.3)


@pytest.fixture
async def url(app: Starlette) -> AsyncIterator[str]:
    async with served(app) as base:
        yield base


@asynccontextmanager
async def subscribed(
    base: str, token: str | None, query: str, *, accept: str = GRAPHIQL_ACCEPT, **variables: Any
) -> AsyncIterator[Parts]:
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as client,
        client.stream("POST", "/graphql", json={"query": query, "variables": variables}, headers=headers) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("multipart/mixed;boundary=graphql")
        yield Parts(response)


async def _attended(app: Starlette, count: int) -> None:
    """Returns once the app holds ``count`` sessions (a stream is a session once it runs)."""
    sessions = state_of(app).sessions
    async with asyncio.timeout(5):
        while len(sessions) != count:  # noqa: ASYNC110 (Sessions offers no event to wait on)
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("accept", [GRAPHIQL_ACCEPT, APOLLO_ACCEPT], ids=["graphiql", "apollo"])
async def test_a_subscription_streams_over_http_from_the_log_then_live(
    url: str, org: Org, clock: FrozenClock, redis: Redis, accept: str
) -> None:
    await _create(org, clock, {"first_name": "Ada"})
    await log.sequence()
    async with subscribed(url, org.tokens[Role.MANAGER], EVENTS, accept=accept, after=START) as parts:
        # The first part is a heartbeat, at once: the client sees the stream is open.
        assert await parts.next() == {}
        assert await parts.data() == {"events": {"type": "PROSPECT_CREATED", "prospect": {"firstName": "Ada"}}}
        # When another prospect is created and the relay publishes it
        await _create(org, clock, {"first_name": "Bob"})
        await relay.publish(redis, clock)
        # then it arrives live on the same stream.
        assert await parts.data() == {"events": {"type": "PROSPECT_CREATED", "prospect": {"firstName": "Bob"}}}


async def test_heartbeats_pass_through_the_middleware_while_nothing_happens(url: str, org: Org) -> None:
    async with subscribed(url, org.tokens[Role.AGENT], EVENTS) as parts:
        loop = asyncio.get_running_loop()
        started = loop.time()
        beats = [await parts.next(seconds=2) for _ in range(4)]
        elapsed = loop.time() - started
    assert beats == [{}] * 4
    assert 0.6 < elapsed < 2.5  # the first at once, then every 0.3 s (ping_seconds)


async def test_an_agents_http_stream_shows_only_the_events_of_prospects_it_may_work(
    url: str, org: Org, clock: FrozenClock, redis: Redis
) -> None:
    theirs, mine = {"owner_id": org.users[Role.ADMIN].id}, {"owner_id": org.users[Role.AGENT].id}
    await _create(org, clock, {"first_name": "Theirs", **theirs})
    await _create(org, clock, {"first_name": "Mine", **mine})
    await log.sequence()
    created = (
        "subscription($after: String) { events(after: $after, filter: {types: [PROSPECT_CREATED]}) "
        "{ type prospect { firstName } } }"
    )
    async with subscribed(url, org.tokens[Role.AGENT], created, after=START) as parts:
        assert await parts.data() == {"events": {"type": "PROSPECT_CREATED", "prospect": {"firstName": "Mine"}}}
        # Live too: another owner's prospect is passed over, the AGENT's own arrives.
        await _create(org, clock, {"first_name": "Theirs too", **theirs})
        await _create(org, clock, {"first_name": "Mine too", **mine})
        await relay.publish(redis, clock)
        assert await parts.data() == {"events": {"type": "PROSPECT_CREATED", "prospect": {"firstName": "Mine too"}}}


async def test_a_stream_demoted_to_agent_gets_only_the_events_of_prospects_it_may_work(
    app: Starlette, url: str, org: Org, clock: FrozenClock, redis: Redis
) -> None:
    created = "subscription { events(filter: {types: [PROSPECT_CREATED]}) { prospect { firstName } } }"
    async with subscribed(url, org.tokens[Role.MANAGER], created) as parts:
        await _attended(app, 1)
        # When the MANAGER becomes an AGENT (and its session has checked)
        await User.filter(id=org.users[Role.MANAGER].id).update(role=Role.AGENT)
        await state_of(app).sessions.check()
        # then the ADMIN's new prospect is passed over and an unassigned one arrives.
        await _create(org, clock, {"first_name": "Theirs", "owner_id": org.users[Role.ADMIN].id})
        await _create(org, clock, {"first_name": "Open"})
        await relay.publish(redis, clock)
        assert await parts.data() == {"events": {"prospect": {"firstName": "Open"}}}


@pytest.mark.parametrize("token", [None, "ll_not-a-token"], ids=["none", "unknown"])
async def test_a_stream_without_a_valid_token_is_a_401(url: str, token: str | None) -> None:
    headers = {"Accept": GRAPHIQL_ACCEPT, **({"Authorization": f"Bearer {token}"} if token else {})}
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/graphql", json={"query": EVENTS}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Authentication required: send Authorization: Bearer <token>."}]}


@pytest.fixture
async def unchecked(org: Org, settings: Settings, clock: FrozenClock, redis: Redis) -> AsyncIterator[tuple[Any, str]]:
    """An app whose periodic token check would take an hour: only the announcement on
    Redis can end a session there."""
    app = create_app(settings, clock=clock, redis=redis, manage_resources=False, session_check_seconds=3600)
    async with served(app) as base:
        yield app, base


async def test_revoking_the_token_ends_its_http_stream_within_2_s(
    unchecked: tuple[Starlette, str], org: Org, clock: FrozenClock
) -> None:
    app, url = unchecked
    admin = org.actor(Role.ADMIN, clock)
    laptop, row = await accounts.create_token(actor=admin, name="laptop", user_id=org.users[Role.AGENT].id)
    async with (
        subscribed(url, laptop, EVENTS) as revoked,
        subscribed(url, org.tokens[Role.AGENT], EVENTS) as kept,
    ):
        await _attended(app, 2)
        # When an ADMIN revokes the token through the API
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                "/graphql",
                json={"query": REVOKE, "variables": {"input": {"id": ids.encode("ApiToken", row.id)}}},
                headers={"Authorization": f"Bearer {org.tokens[Role.ADMIN]}"},
            )
        assert response.json() == {"data": {"revokeApiToken": {"errors": []}}}
        # then its stream says why and ends within 2 s; the same user's other token's goes on.
        assert await revoked.payload(seconds=2) == {
            "data": None,
            "errors": [{"message": "The token was revoked or its user deactivated: the subscription has ended."}],
        }
        assert await revoked.payload(seconds=2) is None
        assert await kept.next(seconds=2) == {}
        assert len(state_of(app).sessions) == 1
    await _attended(app, 0)
    hub = state_of(app).hub
    assert hub is not None and hub.subscriber_count() == 0


async def test_deactivating_the_user_ends_its_http_stream_at_the_next_check(app: Starlette, url: str, org: Org) -> None:
    async with subscribed(url, org.tokens[Role.AGENT], EVENTS) as parts:
        await _attended(app, 1)
        await User.filter(id=org.users[Role.AGENT].id).update(active=False)  # nothing announced
        assert (await parts.payload(seconds=2) or {}).get("errors")
        assert await parts.payload(seconds=2) is None


async def test_a_client_that_leaves_ends_its_session_and_subscription(app: Starlette, url: str, org: Org) -> None:
    async with subscribed(url, org.tokens[Role.AGENT], EVENTS) as parts:
        await _attended(app, 1)
        assert await parts.next() == {}
    await _attended(app, 0)
    hub = state_of(app).hub
    assert hub is not None
    async with asyncio.timeout(5):
        while hub.subscriber_count():  # noqa: ASYNC110 (the hub offers no event to wait on)
            await asyncio.sleep(0.01)


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), **env})


async def test_the_cost_limit_holds_for_a_stream(org: Org, tmp_path: Path, clock: FrozenClock, redis: Redis) -> None:
    app = create_app(_settings(tmp_path, GRAPHQL_MAX_COST="5"), clock=clock, redis=redis, manage_resources=False)
    costly = "subscription { events { type prospect { firstName owner { name } status { name workflow { name } } } } }"
    async with served(app) as url, subscribed(url, org.tokens[Role.AGENT], costly) as parts:
        payload = await parts.payload()
        assert payload is not None and payload["data"] is None
        assert "cost" in payload["errors"][0]["message"].lower(), payload
        assert await parts.payload() is None


async def test_an_event_over_the_response_limit_is_an_error_and_the_stream_goes_on(
    org: Org, tmp_path: Path, clock: FrozenClock, redis: Redis
) -> None:
    app = create_app(
        _settings(tmp_path, GRAPHQL_MAX_RESPONSE_BYTES="1024"), clock=clock, redis=redis, manage_resources=False
    )
    await _create(org, clock, {"first_name": "A" * 200}, {"first_name": "Short"})
    await log.sequence()
    names = " ".join(f"n{n}: firstName" for n in range(6))  # 6 x 200 characters: over 1,024 bytes
    query = f"subscription($after: String) {{ events(after: $after) {{ type prospect {{ {names} }} }} }}"
    async with served(app) as url, subscribed(url, org.tokens[Role.MANAGER], query, after=START) as parts:
        over = await parts.payload()
        assert over is not None and over["data"] is None
        assert "over the limit of 1,024 bytes" in over["errors"][0]["message"]
        short = {f"n{n}": "Short" for n in range(6)}
        assert await parts.data() == {"events": {"type": "PROSPECT_CREATED", "prospect": short}}


async def test_a_query_is_answered_as_json_whatever_the_accept_header(client: httpx.AsyncClient, org: Org) -> None:
    for accept in (GRAPHIQL_ACCEPT, APOLLO_ACCEPT):
        response = await client.post(
            "/graphql",
            json={"query": "{ viewer { role } }"},
            headers={"Authorization": f"Bearer {org.tokens[Role.AGENT]}", "Accept": accept},
        )
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.json() == {"data": {"viewer": {"role": "AGENT"}}}


@pytest.mark.parametrize(
    ("method", "accept"),
    [
        ("POST", "application/json"),
        ("POST", "text/event-stream"),
        ("GET", "application/json"),
        ("GET", GRAPHIQL_ACCEPT),
    ],
    ids=["post-json", "post-sse", "get", "get-multipart"],
)
async def test_a_subscription_over_http_without_multipart_is_a_400_naming_both_ways(
    client: httpx.AsyncClient, org: Org, method: str, accept: str
) -> None:
    headers = {"Authorization": f"Bearer {org.tokens[Role.AGENT]}", "Accept": accept}
    if method == "GET":
        response = await client.get("/graphql", params={"query": EVENTS}, headers=headers)
    else:
        response = await client.post("/graphql", json={"query": EVENTS}, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"data": None, "errors": [{"message": SUBSCRIPTIONS_OVER_HTTP}]}
    message = response.json()["errors"][0]["message"]
    assert "graphql-transport-ws" in message and "Accept: multipart/mixed" in message


def _examples(page: str) -> str:
    found = re.search(r"const LEADLINE_EXAMPLES = `(.*?)`;", page, re.S)
    assert found is not None
    return found.group(1).replace("\\`", "`")


async def test_graphiql_opens_on_leadlines_examples_and_where_the_token_goes(
    client: httpx.AsyncClient, gql: GraphQL, org: Org
) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "Welcome to GraphiQL" not in page  # not Strawberry's generic comment
    assert '{"Authorization": "Bearer <token>"}' in page and "Headers tab" in page
    assert '"Authorization": "Bearer <token>"' in page.split("const LEADLINE_HEADERS")[1].split(";")[0]
    examples = _examples(page)
    for operation in ("query Viewer", "query ProspectsPage", "subscription StatusChanges"):
        assert operation in examples
    # The examples are valid Leadline operations, and the queries run within the limits.
    assert validate(build_schema()._schema, parse(examples)) == []
    for name in ("Viewer", "ProspectsPage"):
        body = await client.post(
            "/graphql",
            json={"query": examples, "operationName": name},
            headers={"Authorization": f"Bearer {org.tokens[Role.AGENT]}", "Accept": GRAPHIQL_ACCEPT},
        )
        assert body.status_code == 200 and "errors" not in body.json(), body.text
    assert page == graphiql.page()


async def test_graphiqls_subscription_example_streams(url: str, org: Org) -> None:
    page = graphiql.page()
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        client.stream(
            "POST",
            "/graphql",
            json={"query": _examples(page), "operationName": "StatusChanges"},
            headers={"Authorization": f"Bearer {org.tokens[Role.AGENT]}", "Accept": GRAPHIQL_ACCEPT},
        ) as response,
    ):
        assert response.status_code == 200
        assert await Parts(response).next() == {}


async def test_slash_opens_graphiql_in_development(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307 and response.headers["location"] == "/graphql"


async def test_slash_and_graphiql_are_404_in_production(db: None, tmp_path: Path, clock: FrozenClock) -> None:
    settings = _settings(tmp_path, LEADLINE_ENV="production", SECRET_KEY="s" * 40)
    app = create_app(settings, clock=clock, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leadline.test") as client:
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/graphql", headers={"Accept": "text/html"})).status_code == 401
