"""Activation is visible (R14, seeds 000 and 001): an enrollment of an inactive
sequence is never running. Activating one is refused until the sequence is
active; deactivating a sequence pauses its running enrollments (reason
``sequence_inactive``) and reactivating it resumes exactly those."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from app import ids
from app.accounts.models import Role
from app.clock import FrozenClock
from app.events.models import Event as LoggedEvent
from app.events.models import EventType
from app.messaging.models import Message
from app.prospects.models import ChangeCause, Prospect
from app.sequences import enrollments, lifecycle, scheduler, store
from app.sequences.models import Enrollment, Sequence, StageChange
from app.sequences.state import Event
from tests.conftest import GraphQL, Org, QueryCounter, mutate
from tests.factories import populate
from tests.test_sequences_api import make_prospects

STEPS = [
    {"type": "EMAIL", "delaySeconds": 0, "subject": "Hi {{ first_name }}", "body": "Hello"},
    {"type": "SMS", "delaySeconds": 3600, "body": "Ping {{ first_name }}"},
]
INACTIVE = "Cannot {} an enrollment of an inactive sequence: activate the sequence first."


async def make_sequence(gql: GraphQL, org: Org, *, active: bool, name: str = "Outreach") -> str:
    payload = await mutate(
        gql, org.tokens[Role.MANAGER], "createSequence", "sequence { id }", name=name, steps=STEPS, active=active
    )
    assert payload["errors"] == []
    sequence_id: str = payload["sequence"]["id"]
    return sequence_id


async def enroll(gql: GraphQL, org: Org, sequence_id: str, prospect_ids: list[str], **input_: Any) -> list[str]:
    payload = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "enrollProspects",
        "enrollments { id }",
        sequenceId=sequence_id,
        prospectIds=prospect_ids,
        **input_,
    )
    assert payload["errors"] == []
    return [e["id"] for e in payload["enrollments"]]


async def set_active(gql: GraphQL, org: Org, sequence_id: str, active: bool) -> None:
    payload = await mutate(
        gql, org.tokens[Role.MANAGER], "setSequenceActive", "sequence { active }", id=sequence_id, active=active
    )
    assert payload == {"errors": [], "sequence": {"active": active}}


async def row(enrollment_id: str) -> Enrollment:
    return await Enrollment.get(id=ids.decode_as("Enrollment", enrollment_id))


async def history(enrollment_id: str) -> list[tuple[str | None, str, str | None]]:
    changes = StageChange.filter(enrollment_id=ids.decode_as("Enrollment", enrollment_id)).order_by("id")
    return [(c.from_stage, c.to_stage, c.reason) for c in await changes]


async def test_activating_an_enrollment_of_an_inactive_sequence_is_refused(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    await populate(org, clock)
    inactive = await make_sequence(gql, org, active=False)
    active = await make_sequence(gql, org, active=True, name="Running")
    ada, bob = await make_prospects(gql, org, "Ada", "Bob")
    [held] = await enroll(gql, org, inactive, [ada])
    [waiting] = await enroll(gql, org, active, [bob], activate=False)

    payload = await mutate(
        gql, org.tokens[Role.MANAGER], "activateEnrollments", "enrollments { id stage }", ids=[held, waiting]
    )
    assert payload["enrollments"] == [{"id": waiting, "stage": "STARTED"}]
    assert payload["errors"] == [
        {"code": "INVALID_TRANSITION", "message": INACTIVE.format("activate"), "field": ["input", "ids", "0"]}
    ]
    refused = await row(held)
    assert (refused.stage, refused.due_at) == ("NOT_STARTED", None)
    assert await history(held) == [(None, "NOT_STARTED", "enrolled")]  # nothing written for it

    await set_active(gql, org, inactive, True)  # the way to start it
    assert (await row(held)).stage == "STARTED"


async def test_deactivating_pauses_running_enrollments_and_reactivating_resumes_them(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    rule = await mutate(
        gql,
        token,
        "createAutomationRule",
        "automationRule { id }",
        name="count pauses",
        event="ENROLLMENT_STAGE_CHANGED",
        stage="PAUSED",
        operations=[{"type": "MARK_CONTACT_ATTEMPTED"}],
    )
    assert rule["errors"] == []
    sequence = await make_sequence(gql, org, active=True)
    prospects = await make_prospects(gql, org, "Ada", "Bob", "Cy")
    ada, bob, cy = await enroll(gql, org, sequence, prospects)
    ours = Message.filter(enrollment__sequence_id=ids.decode_as("Sequence", sequence))  # populate has its own
    await scheduler.run_pass(clock)
    assert await ours.count() == 3  # step 1 for each: APPROACHING, step 2 in an hour
    due = clock.now() + timedelta(hours=1)
    own = await mutate(gql, token, "pauseEnrollments", "enrollments { stage }", ids=[bob])
    assert own["enrollments"] == [{"stage": "PAUSED"}]

    clock.advance(60)
    await set_active(gql, org, sequence, False)
    for paused in (ada, cy):
        enrollment = await row(paused)
        assert (enrollment.stage, enrollment.paused_reason, enrollment.due_at) == ("PAUSED", "sequence_inactive", None)
        assert (enrollment.paused_stage, enrollment.paused_due_at) == ("APPROACHING", due)
        assert (await history(paused))[-1] == ("APPROACHING", "PAUSED", "sequence_inactive")
    assert ((await row(bob)).stage, (await row(bob)).paused_reason) == ("PAUSED", "paused")
    assert (await history(bob))[-1] == ("APPROACHING", "PAUSED", "paused")  # its own pause, not paused again
    events = await LoggedEvent.filter(type=EventType.STAGE_CHANGED).order_by("id")
    reasons = [str(e.payload["stageChange"]["reason"]) for e in events]  # type: ignore[index]
    assert reasons.count("sequence_inactive") == 2
    attempts = await Prospect.filter(id__in=[ids.decode_as("Prospect", p) for p in prospects]).order_by("id")
    assert [p.contact_attempts for p in attempts] == [1, 1, 1]  # the PAUSED rule ran for each pause

    clock.advance(7200)  # step 2 falls due while the sequence is inactive
    await scheduler.run_pass(clock)
    assert await ours.count() == 3

    await set_active(gql, org, sequence, True)
    for resumed in (ada, cy):
        enrollment = await row(resumed)
        assert (enrollment.stage, enrollment.due_at, enrollment.paused_reason) == ("APPROACHING", clock.now(), None)
        assert (await history(resumed))[-1] == ("PAUSED", "APPROACHING", "sequence_activated")
    assert (await row(bob)).stage == "PAUSED"  # a person's pause survives the reactivation
    await scheduler.run_pass(clock)
    step_two = await ours.filter(created_at=clock.now()).order_by("id")
    assert [(m.enrollment_id, m.body) for m in step_two] == [
        ((await row(ada)).id, "Ping Ada"),
        ((await row(cy)).id, "Ping Cy"),
    ]


async def test_nothing_sets_an_enrollment_of_an_inactive_sequence_running(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    """Resume and jump by hand are refused; a resume by an operation or a status
    (``lifecycle.for_prospect``) passes it by and still resumes its other enrollments."""
    await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    stopped = await make_sequence(gql, org, active=True)
    running = await make_sequence(gql, org, active=True, name="Running")
    [ada] = await make_prospects(gql, org, "Ada")
    [in_stopped] = await enroll(gql, org, stopped, [ada])
    [in_running] = await enroll(gql, org, running, [ada])
    paused = await mutate(gql, token, "pauseEnrollments", "enrollments { id }", ids=[in_stopped, in_running])
    assert paused["errors"] == []
    await set_active(gql, org, stopped, False)

    for verb, extra in (("resume", {}), ("jump", {"position": 2})):
        refused = await mutate(gql, token, f"{verb}Enrollments", "enrollments { id }", ids=[in_stopped], **extra)
        assert refused["errors"] == [
            {"code": "INVALID_TRANSITION", "message": INACTIVE.format(verb), "field": ["input", "ids", "0"]}
        ]
    async with in_transaction():
        moves = await lifecycle.for_prospect(
            ids.decode_as("Prospect", ada),
            Event.RESUME,
            actor=org.actor(Role.MANAGER, clock),
            cause=ChangeCause.AUTOMATION,
            reason="operation",
        )
    assert [m.enrollment_id for m in moves] == [(await row(in_running)).id]
    assert ((await row(in_stopped)).stage, (await row(in_running)).stage) == ("PAUSED", "STARTED")
    # Enrolling at once in an inactive sequence waits NOT_STARTED, as it always did.
    [bob] = await make_prospects(gql, org, "Bob")
    [waiting] = await enroll(gql, org, stopped, [bob], activate=True)
    assert (await row(waiting)).stage == "NOT_STARTED"


async def test_deactivating_many_costs_the_statements_of_deactivating_one(
    gql: GraphQL, org: Org, clock: FrozenClock, sql_queries: QueryCounter
) -> None:
    await populate(org, clock)
    costs = []
    for count in (1, 40):
        sequence = await make_sequence(gql, org, active=True, name=f"S{count}")
        people = await make_prospects(gql, org, *[f"P{count}x{i}" for i in range(count)])
        await enroll(gql, org, sequence, people)
        sql_queries.count = 0
        await set_active(gql, org, sequence, False)
        costs.append(sql_queries.count)
        pk = ids.decode_as("Sequence", sequence)
        assert await Enrollment.filter(sequence_id=pk, stage="PAUSED").count() == count
    assert costs[0] == costs[1]


@pytest.mark.postgres
async def test_a_claim_in_flight_finishes_before_the_deactivation_pauses(
    gql: GraphQL, org: Org, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler claimed a due step (its rows locked) when the sequence is
    deactivated: the deactivation waits for the pass, whose step goes out, then
    pauses the enrollment at its next step, as a pause in flight does."""
    await populate(org, clock)
    sequence = await make_sequence(gql, org, active=True)
    [ada] = await make_prospects(gql, org, "Ada")
    [enrollment_id] = await enroll(gql, org, sequence, [ada])
    claimed, go = asyncio.Event(), asyncio.Event()
    insert = store.insert_messages

    async def held(rows: Any) -> list[int]:
        claimed.set()
        await go.wait()
        return await insert(rows)

    monkeypatch.setattr(store, "insert_messages", held)
    passing = asyncio.create_task(scheduler.run_pass(clock))
    await claimed.wait()
    deactivating = asyncio.create_task(
        enrollments.set_sequence_active(
            actor=org.actor(Role.MANAGER, clock), sequence_id=ids.decode_as("Sequence", sequence), active=False
        )
    )
    await asyncio.sleep(0.3)
    waited = not deactivating.done()  # waiting for the claimed row
    go.set()
    await passing
    await deactivating
    assert waited
    enrollment = await row(enrollment_id)
    assert await Message.filter(enrollment_id=enrollment.id).count() == 1  # the claimed step went out
    assert (enrollment.stage, enrollment.paused_stage, enrollment.paused_reason) == (
        "PAUSED",
        "APPROACHING",
        "sequence_inactive",
    )
    assert enrollment.paused_due_at == clock.now() + timedelta(hours=1)


@pytest.mark.postgres
async def test_enrolling_in_flight_finishes_before_the_deactivation_pauses(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    """An enrollment started at once in a transaction still open when the sequence
    is deactivated is paused by the deactivation, not left STARTED."""
    await populate(org, clock)
    actor = org.actor(Role.MANAGER, clock)
    sequence = await Sequence.get(id=ids.decode_as("Sequence", await make_sequence(gql, org, active=True)))
    [ada] = await make_prospects(gql, org, "Ada")
    prospect = await Prospect.get(id=ids.decode_as("Prospect", ada))
    enrolled, go = asyncio.Event(), asyncio.Event()

    async def enrolling() -> None:
        async with in_transaction():
            steps = await lifecycle.steps_of(sequence.id)
            await lifecycle.enroll_one(prospect, sequence, steps, actor=actor, cause=ChangeCause.USER, activate=None)
            enrolled.set()
            await go.wait()

    task = asyncio.create_task(enrolling())
    await enrolled.wait()
    deactivating = asyncio.create_task(
        enrollments.set_sequence_active(actor=actor, sequence_id=sequence.id, active=False)
    )
    await asyncio.sleep(0.3)
    waited = not deactivating.done()  # waiting for the enrolling transaction
    go.set()
    await task
    await deactivating
    assert waited
    enrollment = await Enrollment.get(prospect_id=prospect.id)
    assert (enrollment.stage, enrollment.paused_reason) == ("PAUSED", "sequence_inactive")


@pytest.mark.postgres
async def test_a_resume_in_flight_finishes_before_the_deactivation_pauses(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    """A paused enrollment resumed in a transaction still open when the sequence is
    deactivated: the deactivation waits for it (its lock on every unfinished
    enrollment), then pauses it again, so nothing of the inactive sequence runs."""
    await populate(org, clock)
    actor = org.actor(Role.MANAGER, clock)
    sequence = await make_sequence(gql, org, active=True)
    [ada] = await make_prospects(gql, org, "Ada")
    [enrollment_id] = await enroll(gql, org, sequence, [ada])
    await enrollments.pause(actor=actor, enrollment_ids=[ids.decode_as("Enrollment", enrollment_id)])
    resumed, go = asyncio.Event(), asyncio.Event()

    async def resuming() -> None:
        async with in_transaction():
            locked = await Enrollment.filter(id=ids.decode_as("Enrollment", enrollment_id)).select_for_update()
            await lifecycle.resume(locked, actor=actor, cause=ChangeCause.USER, reason="resumed")
            resumed.set()
            await go.wait()

    task = asyncio.create_task(resuming())
    await resumed.wait()
    deactivating = asyncio.create_task(
        enrollments.set_sequence_active(actor=actor, sequence_id=ids.decode_as("Sequence", sequence), active=False)
    )
    await asyncio.sleep(0.3)
    waited = not deactivating.done()  # waiting for the resuming transaction
    go.set()
    await task
    await deactivating
    assert waited
    enrollment = await row(enrollment_id)
    assert (enrollment.stage, enrollment.paused_reason) == ("PAUSED", "sequence_inactive")
