"""R10.1: the event log. Every change appends its event in its own transaction,
with ids and facts only; committed events get increasing cursors, and one that
commits late still comes after every cursor already given."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from redis.asyncio import ConnectionPool, Redis

from app import ids
from app.accounts.models import Organization, Role
from app.accounts.sessions import Sessions
from app.clock import FrozenClock
from app.config import Settings
from app.errors import Conflict
from app.events import log, relay
from app.events.hub import Hub
from app.events.models import Event, EventType
from app.messaging import inbound, sending
from app.messaging.models import BounceType
from app.prospects import reminders, updates
from app.prospects import service as prospects
from app.prospects.events import prospect_event
from app.prospects.models import Channel, Prospect, Task
from app.redis import channel as redis_channel
from app.sequences import scheduler
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from app.workflows import service as workflows
from app.workflows.models import Action, Interaction, Status
from app.workflows.operations import OperationSpec, OperationType
from tests.conftest import Org, make_org
from tests.test_scheduler import setup

STEPS = [StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi"), StepSpec(StepType.EMAIL, 60, body="b", subject="s")]


async def _types(organization_id: int) -> list[str]:
    return [e.type for e in await Event.filter(organization_id=organization_id).order_by("id")]


async def test_every_change_appends_its_event_with_ids_and_facts_only(
    org: Org, clock: FrozenClock, settings: Settings, tmp_path: Path
) -> None:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    [enrollment] = await setup(org, clock, steps=STEPS)  # PROSPECT_CREATED, STAGE_CHANGED (STARTED)
    admin = org.actor(Role.ADMIN, clock)
    prospect_id = enrollment.prospect_id
    await prospects.update_prospect(actor=admin, prospect_id=prospect_id, changes={"company": "Analytical Engines"})
    contact_made = await Status.get(organization_id=org.id, name="Attempting Contact")
    await prospects.set_status(actor=admin, prospect_id=prospect_id, status_id=contact_made.id, note=None)
    queued = (await scheduler.run_pass(clock)).queued  # STAGE_CHANGED (APPROACHING)
    await sending.send_batch(queued, transports=sending.transports_for(settings), settings=settings, clock=clock)
    await inbound.record_inbound(
        actor=admin,
        channel=Channel.EMAIL,
        sender="ada@client.example",
        body="Call me",
        subject=None,
        in_reply_to=None,
        auto_reply=False,
    )  # MESSAGE_RECEIVED, STAGE_CHANGED (REPLIED)
    await inbound.record_bounce(
        actor=admin, message_id=None, email="ada@client.example", bounce_type=BounceType.SOFT, reason="4.2.2"
    )
    callback = await Action.get(organization_id=org.id, name="Left Voicemail")
    await prospects.log_activity(
        actor=admin,
        prospect_id=prospect_id,
        interaction=Interaction.CALL,
        action_id=callback.id,
        note=None,
    )  # PROSPECT_UPDATED (contact attempted), STATUS_CHANGED, TASK_CREATED
    task = await Task.get(prospect_id=enrollment.prospect_id)
    await prospects.complete_task(actor=admin, task_id=task.id, note=None)
    await prospects.mark_do_not_contact(actor=admin, prospect_id=prospect_id, do_not_contact=True)
    await prospects.delete_prospect(actor=admin, prospect_id=prospect_id)

    types = await _types(org.id)
    # ASSIGNMENT_CHANGED: created with an owner; SUPPRESSION_REMOVED: tests/test_suppressions_api.py
    assert set(types) == set(EventType) - {EventType.TASK_DUE, EventType.SUPPRESSION_REMOVED}
    assert types[0] == "PROSPECT_CREATED" and types[-1] == "PROSPECT_DELETED"
    events = await Event.filter(organization_id=org.id).order_by("id")
    assert all(e.prospect_id == enrollment.prospect_id for e in events)  # ids survive the erasure
    everything = json.dumps([e.payload for e in events])
    assert "ada" not in everything.lower() and "Analytical" not in everything  # no personal data
    updated = next(e for e in events if e.type == "PROSPECT_UPDATED")
    assert updated.payload["fields"] == ["company"] and updated.payload["prospectId"] == ids.encode(
        "Prospect", prospect_id
    )
    stages = [e.payload["stageChange"]["toStage"] for e in events if e.type == "STAGE_CHANGED"]  # type: ignore[index]
    assert stages == ["STARTED", "APPROACHING", "REPLIED"]


async def test_assignment_changes_and_a_rolled_back_change_leaves_no_event(org: Org, clock: FrozenClock) -> None:
    [enrollment] = await setup(org, clock, steps=STEPS)
    manager = org.actor(Role.MANAGER, clock)
    before = await Event.filter(organization_id=org.id).count()
    gone = await workflows.create_status(
        actor=manager,
        workflow_id=(await Status.filter(organization_id=org.id).first()).workflow_id,  # type: ignore[union-attr]
        name="Soon gone",
        system_status="NEW",
        pipeline_percent=0,
        max_assignment_seconds=None,
        position=None,  # type: ignore[arg-type]
    )
    action = await workflows.create_action(
        actor=manager,
        fields=workflows.ActionFields(
            name="Assign then fail",
            operations=[
                OperationSpec(OperationType.ASSIGN, user_id=org.users[Role.AGENT].id),
                OperationSpec(OperationType.SET_STATUS, status_id=gone.id),
            ],
        ),
    )
    await Status.filter(id=gone.id).update(deleted_at=clock.now())
    with pytest.raises(Conflict):
        await prospects.log_activity(
            actor=manager,
            prospect_id=enrollment.prospect_id,
            interaction=Interaction.CALL,
            action_id=action.id,
            note=None,
        )
    assert await Event.filter(organization_id=org.id).count() == before  # the assignment rolled back with its event

    await updates.assign(await Prospect.get(id=enrollment.prospect_id), None, actor=manager)
    created, assigned = await Event.filter(organization_id=org.id, type="ASSIGNMENT_CHANGED").order_by("id")
    assert created.payload == created.payload | {"fromUserId": None, "toUserId": org.user_gid(Role.AGENT)}
    assert assigned.payload["toUserId"] is None and assigned.payload["fromUserId"] == org.user_gid(Role.AGENT)


async def test_cursors_increase_and_a_late_commit_comes_after_every_given_cursor(org: Org, clock: FrozenClock) -> None:
    def event() -> dict[str, Any]:
        return prospect_event(EventType.PROSPECT_UPDATED, org.id, 1, clock.now(), fields=["title"])

    made = [await Event.create(**event()) for _ in range(3)]
    late_id = made[0].id
    await made[0].delete()  # as if its transaction had not committed yet
    assert await log.sequence() == 2
    numbered = {e.id: e.seq for e in await Event.filter(organization_id=org.id)}
    assert sorted(numbered.values()) == [1, 2]

    await Event.create(id=late_id, **event())  # now it commits, with its earlier id
    assert await log.sequence() == 1
    late = await Event.get(id=late_id)
    assert late.seq == 3 > max(numbered.values())  # after every cursor given before: a reader misses nothing
    assert await log.sequence() == 0


async def test_the_relay_numbers_and_publishes_each_event_once_as_stored(
    org: Org, clock: FrozenClock, redis: Redis
) -> None:
    await setup(org, clock, steps=STEPS)  # events of every kind of subject, unnumbered
    await log.record([prospect_event(EventType.PROSPECT_UPDATED, org.id, 1, clock.now(), fields=["title", "é"])])
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(redis_channel(redis, relay.channel(org.id)))
        await pubsub.get_message(timeout=1)  # the confirmation
        published, _ = await relay.publish(redis, clock, limit=3)  # a small batch: the rest waits its turn
        while (more := await relay.publish(redis, clock, limit=3))[0]:
            published += more[0]
        received = []
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)) is not None:
            received += relay.unwire(message["data"])
    stored = await Event.filter(organization_id=org.id).order_by("seq")
    assert published == len(stored) == len(received) > 3
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    for sent, kept in zip(received, stored, strict=True):
        assert {name: getattr(sent, name) for name in relay.FIELDS} == {
            name: getattr(kept, name) for name in relay.FIELDS
        }
        assert sent.at == kept.at and sent.payload == kept.payload
    assert await relay.publish(redis, clock) == (0, 0)


async def test_deployments_sharing_a_redis_server_hear_only_their_own_database(
    org: Org, clock: FrozenClock, redis: Redis
) -> None:
    # Given a second deployment on another database of the same Redis server, whose
    # organization has the same id
    pool = redis.connection_pool
    db = pool.connection_kwargs.get("db", 0) + 1
    neighbour = Redis(
        connection_pool=ConnectionPool(connection_class=pool.connection_class, **{**pool.connection_kwargs, "db": db})
    )
    ours, theirs = Hub(redis, Sessions()), Hub(neighbour, Sessions())
    try:
        async with ours.listen(org.id) as listener, theirs.listen(org.id) as overheard:
            # when our relay publishes an event
            await log.record([prospect_event(EventType.PROSPECT_UPDATED, org.id, 1, clock.now(), fields=["title"])])
            assert (await relay.publish(redis, clock))[0] == 1
            # then our listener has it and the neighbour's hears nothing (pub/sub is server-wide)
            event = await asyncio.wait_for(listener.next(), 2)
            assert event is not None and event.organization_id == org.id
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(overheard.next(), 0.5)
    finally:
        await ours.close()
        await theirs.close()
        await neighbour.aclose()


@pytest.mark.postgres
async def test_concurrent_sequencers_give_each_cursor_once(org: Org, clock: FrozenClock) -> None:
    for _ in range(300):
        await log.record([prospect_event(EventType.PROSPECT_UPDATED, org.id, 1, clock.now(), fields=[])])
    counts = await asyncio.gather(*(log.sequence(limit=50) for _ in range(8)))
    while await log.sequence(limit=50):
        pass
    seqs = sorted(e.seq for e in await Event.filter(organization_id=org.id))  # type: ignore[type-var]
    assert sum(counts) <= 300 and seqs == list(range(1, 301))


async def test_a_task_is_announced_due_once_when_its_time_passes(org: Org, clock: FrozenClock) -> None:
    [enrollment] = await setup(org, clock, steps=STEPS)
    admin = org.actor(Role.ADMIN, clock)
    voicemail = await Action.get(organization_id=org.id, name="Left Voicemail")  # a callback in one day
    for _ in range(2):
        await prospects.log_activity(
            actor=admin,
            prospect_id=enrollment.prospect_id,
            interaction=Interaction.CALL,
            action_id=voicemail.id,
            note=None,
        )
    first, second = await Task.filter(prospect_id=enrollment.prospect_id).order_by("id")
    await prospects.complete_task(actor=admin, task_id=second.id, note="done early")
    assert await reminders.announce_due(clock) == 0  # not due yet
    clock.advance(86400)
    assert await reminders.announce_due(clock) == 1  # the open one; the completed one never
    assert await reminders.announce_due(clock) == 0  # once
    [due] = await Event.filter(organization_id=org.id, type="TASK_DUE")
    assert due.task_id == first.id and due.payload["task"]["id"] == ids.encode("Task", first.id)  # type: ignore[index]


class _CommitChecker:
    """Stands in for Redis in ``relay.publish``: at each publish, reads through a
    connection of its own which of the published cursors are committed already."""

    connection_pool = SimpleNamespace(connection_kwargs={})  # database 0's channels

    def __init__(self, database: str) -> None:
        self.database = database
        self.published: list[int] = []
        self.committed: list[int] = []

    @contextlib.asynccontextmanager
    async def pipeline(self, transaction: bool) -> AsyncIterator[_CommitChecker]:
        yield self

    def publish(self, channel: str, data: str) -> None:
        self.published += [event.seq for event in relay.unwire(data) if event.seq is not None]

    async def execute(self) -> None:
        marks = ", ".join(str(int(seq)) for seq in self.published)
        sql = f'SELECT "seq" FROM "event" WHERE "seq" IN ({marks})'
        if self.database.startswith("sqlite"):
            with contextlib.closing(sqlite3.connect(self.database.removeprefix("sqlite://"))) as other:
                self.committed = [row[0] for row in other.execute(sql)]
            return
        other = await asyncpg.connect(self.database)
        try:
            self.committed = [row["seq"] for row in await other.fetch(sql)]
        finally:
            await other.close()


async def test_every_event_the_relay_publishes_is_committed_already(database: str, clock: FrozenClock) -> None:
    """A subscriber confirms its subscription, then reads the log: an event it finds in
    neither was published before it was visible (numbered and published in one transaction)."""
    organization = await make_org("Acme", clock)
    await log.record(
        prospect_event(EventType.PROSPECT_UPDATED, organization.id, n, clock.now(), fields=[]) for n in range(5)
    )
    checker = _CommitChecker(database)
    assert await relay.publish(checker, clock) == (5, 0)  # type: ignore[arg-type]
    assert sorted(checker.committed) == sorted(checker.published) == [1, 2, 3, 4, 5]
