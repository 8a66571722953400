"""Live subscriptions across processes (SPEC R10.2): two API servers and a worker,
real websocket clients."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app import presets
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import Organization
from app.clock import SystemClock
from app.events import relay
from app.redis import channel as redis_channel
from app.sequences import enrollments
from app.sequences import service as sequences
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from schema.node import pk
from tests.live_processes import Processes, processes
from tests.ws_client import Rejected, connect

EVENTS = "subscription($after: String) { events(after: $after) { cursor type prospect { firstName } } }"
STATUS = "subscription { prospectStatusChanged { to { name } prospect { firstName } } }"
STAGE = "subscription { enrollmentStageChanged { from to reason } }"
CREATE = (
    "mutation($input: CreateProspectInput!) { createProspect(input: $input) { prospect { id } errors { message } } }"
)
SET_STATUS = """mutation($input: SetProspectStatusInput!) {
  setProspectStatus(input: $input) { prospect { id } errors { message } } }"""


async def organization(name: str) -> tuple[Actor, str]:
    clock = SystemClock()
    created = await accounts.create_organization(
        name=name, admin_email=f"boss@{name.lower()}.example", admin_name=None, clock=clock
    )
    await Organization.filter(id=created.organization.id).update(
        email_from=f"sales@{name.lower()}.example", postal_address="1 Main St"
    )
    admin = await accounts.authenticate(created.token, clock)
    assert admin is not None
    await presets.apply(actor=admin, name="lead-workflow")
    return admin, created.token


async def create_prospect(live: Processes, api: int, token: str, name: str) -> str:
    data = await live.graphql(
        api, token, CREATE, input={"prospect": {"firstName": name, "email": f"{name.lower()}@client.example"}}
    )
    assert data["createProspect"]["errors"] == [], data
    return str(data["createProspect"]["prospect"]["id"])


async def status_id(live: Processes, token: str, name: str) -> str:
    data = await live.graphql(0, token, "{ workflows { statuses { id name } } }")
    return next(s["id"] for w in data["workflows"] for s in w["statuses"] if s["name"] == name)


async def test_a_change_on_one_process_or_the_worker_reaches_subscribers_on_another(
    database: str, tmp_path: Path
) -> None:
    admin, token = await organization("Acme")
    sequence = await sequences.create_sequence(
        actor=admin,
        name="One email",
        stop_on_reply=None,
        unresponsive_after_seconds=1,
        send_window=None,
        active=True,
        steps=[StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}", subject="Hi")],
    )
    async with processes(database, tmp_path / "data", apis=2) as live, connect(live.ws(1), token) as on_b:
        statuses = await on_b.subscribe(STATUS)
        stages = await on_b.subscribe(STAGE)
        events = await on_b.subscribe(EVENTS)
        await asyncio.sleep(1)  # the subscriptions are registered (they read nothing before going live)

        prospect = await create_prospect(live, 0, token, "Ada")  # through process A
        qualified = await status_id(live, token, "Contact Made")
        await live.graphql(0, token, SET_STATUS, input={"id": prospect, "statusId": qualified})
        change = await on_b.next_data(statuses)
        assert change["prospectStatusChanged"] == {"to": {"name": "Contact Made"}, "prospect": {"firstName": "Ada"}}

        # The worker sends the step, then times the prospect out (no answer within a second).
        _, errors = await enrollments.enroll(
            actor=admin,
            sequence_id=sequence.id,
            prospect_ids=[pk("Prospect", prospect)],
            activate=None,
        )
        assert not errors
        seen = [(await on_b.next_data(stages))["enrollmentStageChanged"] for _ in range(3)]
        assert seen == [
            {"from": None, "to": "STARTED", "reason": "enrolled"},
            {"from": "STARTED", "to": "APPROACHING", "reason": "step_ran"},  # the worker sent the email
            {"from": "APPROACHING", "to": "UNRESPONSIVE", "reason": "timeout"},  # and timed it out
        ]
        types: list[str] = []
        while "MESSAGE_SENT" not in types or types.count("STAGE_CHANGED") < 3:
            types.append((await on_b.next_data(events))["events"]["type"])
        assert types[:2] == ["PROSPECT_CREATED", "STATUS_CHANGED"], types
        assert types.count("STAGE_CHANGED") == 3 and types.count("MESSAGE_SENT") == 1, types


async def test_websocket_authentication_and_organization_isolation(database: str, tmp_path: Path) -> None:
    admin, token = await organization("Acme")
    other_admin, other_token = await organization("Globex")
    revoked, revoked_row = await accounts.create_token(actor=admin, name="old", user_id=None)
    await accounts.revoke_token(actor=admin, token_id=revoked_row.id)
    async with processes(database, tmp_path / "data", apis=1) as live:
        for bad in (None, "ll_not-a-token", revoked):
            with pytest.raises(Rejected) as rejected:
                async with connect(live.ws(0), bad):
                    pass
            assert rejected.value.code == 4403
        async with connect(live.ws(0), other_token) as globex:
            their_events = await globex.subscribe(EVENTS)
            await asyncio.sleep(0.5)
            await create_prospect(live, 0, token, "Ada")  # Acme's
            await create_prospect(live, 0, other_token, "Gus")  # Globex's
            first = await globex.next_data(their_events)
            assert (first["events"]["type"], first["events"]["prospect"]["firstName"]) == ("PROSPECT_CREATED", "Gus")
            with pytest.raises(TimeoutError):
                await globex.receive(seconds=1.0)  # and nothing of Acme's follows
    assert other_admin.organization_id != admin.organization_id


async def test_a_subscriber_that_reconnects_with_its_cursor_misses_nothing_and_sees_nothing_twice(
    database: str, tmp_path: Path
) -> None:
    _, token = await organization("Acme")
    async with processes(database, tmp_path / "data", apis=2) as live:
        async with connect(live.ws(1), token) as client:
            operation = await client.subscribe(EVENTS)
            await asyncio.sleep(0.5)
            await create_prospect(live, 0, token, "First")
            seen = await client.next_data(operation)
        cursor = seen["events"]["cursor"]
        names = [f"P{i:02}" for i in range(50)]
        for name in names:  # 50 events while away
            await create_prospect(live, 0, token, name)
        async with connect(live.ws(0), token) as client:
            operation = await client.subscribe(EVENTS, after=cursor)
            missed = [(await client.next_data(operation))["events"] for _ in range(50)]
            assert [e["prospect"]["firstName"] for e in missed] == names
            assert {e["type"] for e in missed} == {"PROSPECT_CREATED"}
            cursors = [e["cursor"] for e in missed]
            assert len(set(cursors)) == 50
            await create_prospect(live, 1, token, "Live")
            live_event = await client.next_data(operation)
            assert live_event["events"]["prospect"]["firstName"] == "Live"
            with pytest.raises(TimeoutError):
                await client.receive(seconds=1.0)  # no duplicate follows


async def test_subscriptions_per_connection_are_capped_and_leaving_unsubscribes_from_redis(
    database: str, tmp_path: Path
) -> None:
    admin, token = await organization("Acme")
    async with processes(database, tmp_path / "data", apis=1, worker=False) as live, live.redis() as redis:
        channel = redis_channel(redis, relay.channel(admin.organization_id))
        async with connect(live.ws(0), token) as client:
            operations = [await client.subscribe(EVENTS) for _ in range(20)]
            over = await client.subscribe(EVENTS)
            message = await client.receive(operation=over)
            assert message["type"] == "error", message
            await _until_numsub(redis, channel, 1)  # one Redis subscription for all 20
            for operation in operations:
                await client.complete(operation)
            await _until_numsub(redis, channel, 0)
            await client.subscribe(EVENTS)
            await _until_numsub(redis, channel, 1)
        await _until_numsub(redis, channel, 0)  # the client left: nothing stays subscribed


async def _until_numsub(redis: Any, channel: str, count: int) -> None:
    for _ in range(100):
        if (await redis.pubsub_numsub(channel))[0][1] == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{channel} never had {count} subscriber(s)")
