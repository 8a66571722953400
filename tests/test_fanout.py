"""Shared fan-out (issue #24): a live event is executed once per document,
variables and audience, and the same frame is written to every subscriber of
that audience; viewers who may see different things never share."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request

from app import presets
from app.accounts import service as accounts
from app.accounts.models import Role, User
from app.clock import FrozenClock
from app.config import Settings
from app.events import fanout, relay
from app.observability import metrics
from app.prospects import service as prospects
from app.web import GraphQLEndpoint, create_app
from schema.build import LeadlineSchema
from schema.context import Context
from tests.conftest import Org
from tests.loopback import serving
from tests.ws_client import Client, connect

EVENTS = "subscription { events(filter: {types: [PROSPECT_CREATED]}) { cursor type prospect { firstName } } }"
FROM = "subscription($after: String) { events(after: $after) { cursor prospect { firstName } } }"


@pytest.fixture(autouse=True)
async def workflow(org: Org, clock: FrozenClock) -> None:
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")


def schema_of(app: Starlette) -> LeadlineSchema:
    for route in app.routes:
        endpoint = getattr(route, "endpoint", None)
        if isinstance(endpoint, GraphQLEndpoint):
            schema = endpoint.view.schema
            assert isinstance(schema, LeadlineSchema)
            return schema
    raise AssertionError("no GraphQL endpoint")


@asynccontextmanager
async def served(settings: Settings, clock: FrozenClock, redis: Redis) -> AsyncIterator[tuple[Starlette, str]]:
    app = create_app(settings, clock=clock, redis=redis, manage_resources=False, session_check_seconds=0.1)
    try:
        async with serving(app) as url:
            yield app, url.replace("http://", "ws://") + "/graphql"
    finally:  # served without its lifespan: the hub's connection is closed here
        await app.state.leadline.hub.close()
        await app.state.leadline.sessions.close()


async def create(org: Org, clock: FrozenClock, redis: Redis, *names: str, owner: User | None = None) -> None:
    """Prospects (their PROSPECT_CREATED events), numbered and published as the relay does."""
    admin = org.actor(Role.ADMIN, clock)
    owner_id = owner.id if owner is not None else None
    inputs = [{"first_name": n, "email": f"{n.lower()}@client.example", "owner_id": owner_id} for n in names]
    _, errors = await prospects.create_prospects(actor=admin, inputs=inputs)
    assert not errors
    await relay.publish(redis, clock)


async def second_agent(org: Org, clock: FrozenClock) -> tuple[User, str]:
    admin = org.actor(Role.ADMIN, clock)
    user = await accounts.create_user(actor=admin, name="Other", email="other@acme.example", role=Role.AGENT)
    token, _ = await accounts.create_token(actor=admin, name="other", user_id=user.id)
    return user, token


async def until(condition: Any, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the fan-out offers no event to wait on)
            await asyncio.sleep(0.01)


async def frames(client: Client, count: int) -> list[str]:
    """The next ``count`` raw `next` frames (pings answered)."""
    got: list[str] = []
    async with asyncio.timeout(10):
        while len(got) < count:
            raw = await client.ws.recv()
            message = json.loads(raw)
            if message["type"] == "ping":
                await client.ws.send('{"type":"pong"}')
                continue
            assert message["type"] == "next", message
            got.append(str(raw))
    return got


def names(raw: list[str]) -> list[str]:
    return [json.loads(r)["payload"]["data"]["events"]["prospect"]["firstName"] for r in raw]


async def quiet(client: Client, seconds: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await client.receive(seconds=seconds)


async def test_subscribers_of_one_audience_share_one_execution_and_the_same_frame(
    org: Org, settings: Settings, clock: FrozenClock, redis: Redis
) -> None:
    async with served(settings, clock, redis) as (app, url), contextlib.AsyncExitStack() as stack:
        schema = schema_of(app)
        clients = [await stack.enter_async_context(connect(url, org.tokens[Role.ADMIN])) for _ in range(5)]
        for client in clients:
            assert await client.subscribe(EVENTS) == "1"
        await until(lambda: len(schema.shared.fanout) == 1)
        [feed] = [schema.shared.fanout.feed(key) for key in list(schema.shared.fanout._feeds)]
        assert feed is not None
        await until(lambda: len(feed.members) == 5 and feed.progress.start is not None)
        delivered = _metric("leadline_live_deliveries_total")

        await create(org, clock, redis, "Ada", "Bob", "Cy")

        received = [await frames(client, 3) for client in clients]
        assert names(received[0]) == ["Ada", "Bob", "Cy"]
        assert all(r == received[0] for r in received)  # byte for byte
        assert feed.runs == 3  # one execution per event for five subscribers
        # The metrics count subscribers and deliveries, not the shared run.
        assert _metric("leadline_subscriptions_open") == 5
        assert _metric("leadline_live_deliveries_total") == delivered + 15
    assert _metric("leadline_subscriptions_open") == 0


def _metric(name: str) -> float:
    return metrics.API.get_sample_value(name) or 0.0


async def test_viewers_who_may_see_different_things_never_share(
    org: Org, settings: Settings, clock: FrozenClock, redis: Redis
) -> None:
    other, other_token = await second_agent(org, clock)
    async with served(settings, clock, redis) as (app, url), contextlib.AsyncExitStack() as stack:
        schema = schema_of(app)
        tokens = [org.tokens[Role.ADMIN], org.tokens[Role.MANAGER], org.tokens[Role.AGENT], other_token]
        admin, manager, agent, second = [await stack.enter_async_context(connect(url, t)) for t in tokens]
        for client in (admin, manager, agent, second):
            await client.subscribe(EVENTS)
        await until(lambda: len(schema.shared.fanout) == 4)  # one feed per audience

        await create(org, clock, redis, "Mine", owner=org.users[Role.AGENT])
        await create(org, clock, redis, "Theirs", owner=other)
        await create(org, clock, redis, "Nobody")

        assert names(await frames(admin, 3)) == ["Mine", "Theirs", "Nobody"]
        assert names(await frames(manager, 3)) == ["Mine", "Theirs", "Nobody"]
        assert names(await frames(agent, 2)) == ["Mine", "Nobody"]
        assert names(await frames(second, 2)) == ["Theirs", "Nobody"]
        for client in (admin, manager, agent, second):
            await quiet(client, 0.3)


async def test_a_viewer_whose_role_changes_leaves_the_shared_feed_without_gap_or_duplicate(
    org: Org, settings: Settings, clock: FrozenClock, redis: Redis
) -> None:
    other, _ = await second_agent(org, clock)
    boss = org.actor(Role.ADMIN, clock)
    second_admin = await accounts.create_user(actor=boss, name="Zed", email="zed@acme.example", role=Role.ADMIN)
    zed_token, _ = await accounts.create_token(actor=boss, name="zed", user_id=second_admin.id)
    async with served(settings, clock, redis) as (app, url), contextlib.AsyncExitStack() as stack:
        schema = schema_of(app)
        admin = await stack.enter_async_context(connect(url, org.tokens[Role.ADMIN]))
        demoted = await stack.enter_async_context(connect(url, zed_token))
        promoted = await stack.enter_async_context(connect(url, org.tokens[Role.AGENT]))
        for client in (admin, demoted, promoted):
            await client.subscribe(EVENTS)
        await until(lambda: len(schema.shared.fanout) == 2)  # the two ADMINs share
        await create(org, clock, redis, "Before", owner=other)
        assert names(await frames(admin, 1)) == names(await frames(demoted, 1)) == ["Before"]
        await quiet(promoted, 0.2)  # another agent's prospect

        # Zed becomes an AGENT and the AGENT an ADMIN; the sessions' checks see it within 0.1 s.
        await User.filter(id=second_admin.id).update(role=Role.AGENT)
        await User.filter(id=org.users[Role.AGENT].id).update(role=Role.ADMIN)
        await asyncio.sleep(0.5)
        await create(org, clock, redis, "Theirs", owner=other)
        await create(org, clock, redis, "Open")
        assert names(await frames(admin, 2)) == ["Theirs", "Open"]
        assert names(await frames(promoted, 2)) == ["Theirs", "Open"]  # now sees every prospect's events
        assert names(await frames(demoted, 1)) == ["Open"]  # not the ADMINs' frame of another's prospect
        for client in (admin, demoted, promoted):
            await quiet(client, 0.3)


async def test_members_leaving_end_the_feed_and_its_redis_subscription(
    org: Org, settings: Settings, clock: FrozenClock, redis: Redis
) -> None:
    async with served(settings, clock, redis) as (app, url), contextlib.AsyncExitStack() as stack:
        schema, hub = schema_of(app), app.state.leadline.hub
        first, second = [await stack.enter_async_context(connect(url, org.tokens[Role.ADMIN])) for _ in range(2)]
        operations = [await client.subscribe(EVENTS) for client in (first, second)]
        await until(lambda: hub.subscriber_count() == 1)  # one stream listens for both
        await first.complete(operations[0])
        await create(org, clock, redis, "Still")
        assert names(await frames(second, 1)) == ["Still"]
        assert len(schema.shared.fanout) == 1
        await second.complete(operations[1])
        await until(lambda: len(schema.shared.fanout) == 0 and hub.subscriber_count() == 0)


async def test_an_error_of_the_shared_execution_reaches_every_member(
    org: Org, settings: Settings, clock: FrozenClock, redis: Redis
) -> None:
    bad = 'subscription { prospectStatusChanged(prospectId: "nope") { to { name } } }'
    async with served(settings, clock, redis) as (_, url), contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(url, org.tokens[Role.ADMIN])) for _ in range(2)]
        operations = [await client.subscribe(bad) for client in clients]
        for client, operation in zip(clients, operations, strict=True):
            message = await client.receive(operation=operation)
            assert message["payload"]["errors"][0]["message"] == "`prospectId` is not a Prospect id.", message
            assert (await client.receive(operation=operation))["type"] == "complete"


async def test_a_slow_subscriber_falls_behind_without_holding_up_others_and_catches_up_from_the_log(
    org: Org, settings: Settings, clock: FrozenClock, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "BACKLOG", 3)
    app = create_app(settings, clock=clock, redis=redis, manage_resources=False)
    schema = schema_of(app)

    def subscriber() -> Context:
        request = Request({"type": "http", "app": app, "headers": []})
        return Context(request=request, actor_or_none=org.actor(Role.ADMIN, clock))

    fast = await schema.stream(EVENTS, context_value=subscriber())
    slow = await schema.stream(EVENTS, context_value=subscriber())
    try:
        first = [asyncio.create_task(anext(stream)) for stream in (fast, slow)]  # type: ignore[arg-type]
        await until(lambda: app.state.leadline.hub.subscriber_count() == 1)
        await create(org, clock, redis, "P0")
        assert [prospect_name(await task) for task in first] == ["P0", "P0"]

        later = [f"P{i}" for i in range(1, 9)]
        for name in later:  # the slow one reads none of them meanwhile
            await create(org, clock, redis, name)
            assert prospect_name(await anext(fast)) == name  # type: ignore[arg-type]
        [feed] = [schema.shared.fanout.feed(key) for key in list(schema.shared.fanout._feeds)]
        assert feed is not None and len(feed.members) == 1 and feed.runs == 9  # the slow one left it

        caught_up = [prospect_name(await anext(slow)) for _ in later]  # type: ignore[arg-type]
        assert caught_up == later  # from the log: no gap, no duplicate
        await create(org, clock, redis, "Live")
        assert prospect_name(await anext(slow)) == "Live"  # type: ignore[arg-type]
        assert prospect_name(await anext(fast)) == "Live"  # type: ignore[arg-type]
    finally:
        await fast.aclose()  # type: ignore[attr-defined]
        await slow.aclose()  # type: ignore[attr-defined]
        await app.state.leadline.hub.close()


def prospect_name(result: Any) -> str:
    assert not result.errors, result.errors
    return str(result.data["events"]["prospect"]["firstName"])
