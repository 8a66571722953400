"""Pauses that end by themselves (contract part 60): pauseEnrollmentsUntil through
the API, resumed by a real scheduler pass; an out-of-office email through the
inbound webhook pausing a prospect's enrollment until the morning it gives, and
the scheduler resuming it then, its next step going out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from arq import ArqRedis
from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from app import ids, presets
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import return_dates, sending
from app.messaging.models import Message
from app.sequences import pauses
from app.sequences.models import StageChange
from app.workflows.models import Status
from tasks import queue as send_queue
from tasks.engine import scheduler_pass
from tests.conftest import GraphQL, Org, mutate, remove_jobs, send_job_ids
from tests.smtp_sink import smtp_sink
from tests.test_email_webhook import TOKEN, _answering, _post, _sent
from tests.test_sequences_api import make_prospects, make_sequence

UNTIL = "enrollments { id stage resumesAt nextStepAt }"
HISTORY = "query($id: ID!) { node(id: $id) { ... on Enrollment { stage resumesAt history { edges { node { fromStage: from toStage: to cause reason } } } } } }"
STEPS = [
    {"type": "EMAIL", "delaySeconds": 3600, "subject": "one", "body": "one"},
    {"type": "EMAIL", "delaySeconds": 60, "subject": "two", "body": "two"},
]


@pytest.fixture
async def queue(redis: Redis) -> AsyncIterator[ArqRedis]:
    """arq's queue on the test's Redis; the send jobs a pass enqueued taken off after."""
    before = set(await send_job_ids(redis))
    yield ArqRedis(connection_pool=redis.connection_pool)
    await remove_jobs(redis, [job for job in await send_job_ids(redis) if job not in before])


async def _history(gql: GraphQL, token: str, enrollment_id: str) -> dict[str, Any]:
    body = await gql(token, HISTORY, id=enrollment_id)
    assert body.get("data"), body
    node: dict[str, Any] = body["data"]["node"]
    node["history"] = [edge["node"] for edge in node["history"]["edges"]]
    return node


async def _enrolled(
    gql: GraphQL, org: Org, clock: FrozenClock, *names: str, active: bool = True
) -> tuple[dict[str, Any], list[str]]:
    if not await Status.filter(organization_id=org.id).exists():
        await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    sequence = await make_sequence(gql, org, steps=STEPS, active=active)
    prospects = await make_prospects(gql, org, *names)
    assert len(prospects) == len(names)
    enrolled = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "enrollProspects",
        "enrollments { id }",
        sequenceId=sequence["id"],
        prospectIds=prospects,
    )
    assert enrolled["errors"] == []
    return sequence, [e["id"] for e in enrolled["enrollments"]]


async def test_a_pause_until_a_time_is_resumed_by_the_scheduler_with_cause_user(
    gql: GraphQL, org: Org, clock: FrozenClock, queue: ArqRedis
) -> None:
    _, (ada, bob) = await _enrolled(gql, org, clock, "Ada", "Bob")
    token = org.tokens[Role.AGENT]
    tomorrow, later = clock.now() + timedelta(days=1), clock.now() + timedelta(days=2)

    paused = await mutate(gql, token, "pauseEnrollmentsUntil", UNTIL, ids=[ada, bob], until=tomorrow.isoformat())
    assert paused["errors"] == []
    assert [(e["stage"], e["resumesAt"], e["nextStepAt"]) for e in paused["enrollments"]] == [
        ("PAUSED", tomorrow.isoformat(), None)
    ] * 2
    # A pause again until another time replaces its end, and changes no stage.
    again = await mutate(gql, token, "pauseEnrollmentsUntil", UNTIL, ids=[ada], until=later.isoformat())
    assert [(e["stage"], e["resumesAt"]) for e in again["enrollments"]] == [("PAUSED", later.isoformat())]
    # A manual resume ends the pause and forgets its end.
    resumed = await mutate(gql, token, "resumeEnrollments", UNTIL, ids=[bob])
    assert [(e["stage"], e["resumesAt"]) for e in resumed["enrollments"]] == [("STARTED", None)]

    clock.advance(86400 + 3600)  # past the first end, and Ada's first step is overdue
    await scheduler_pass(queue, clock)
    assert (await _history(gql, token, ada))["stage"] == "PAUSED"

    clock.advance(86400)
    await scheduler_pass(queue, clock)

    node = await _history(gql, token, ada)
    assert (node["stage"], node["resumesAt"]) == ("APPROACHING", None)
    assert node["history"][1:] == [
        {"fromStage": "STARTED", "toStage": "PAUSED", "cause": "USER", "reason": "paused_until"},
        {"fromStage": "PAUSED", "toStage": "STARTED", "cause": "USER", "reason": "pause_ended"},
        {"fromStage": "STARTED", "toStage": "APPROACHING", "cause": "SCHEDULER", "reason": "step_ran"},
    ]
    # Its overdue step became due and went to the queue in the same pass.
    assert await Message.filter(enrollment_id=ids.decode_as("Enrollment", ada), subject="one").count() == 1


async def test_pause_until_checks_its_time_and_reports_each_enrollment(
    gql: GraphQL, org: Org, other_org: Org, clock: FrozenClock
) -> None:
    _, (ada,) = await _enrolled(gql, org, clock, "Ada")
    _, (theirs,) = await _enrolled(gql, other_org, clock, "Zed")
    manager, agent = org.tokens[Role.MANAGER], org.tokens[Role.AGENT]
    soon = (clock.now() + timedelta(hours=1)).isoformat()

    for until, says in [
        (clock.now().isoformat(), "not in the future"),
        ((clock.now() + timedelta(days=367)).isoformat(), "at most 366 days"),
    ]:
        refused = await mutate(gql, agent, "pauseEnrollmentsUntil", UNTIL, ids=[ada], until=until)
        [error] = refused["errors"]
        assert (error["code"], error["field"], refused["enrollments"]) == ("INVALID_INPUT", ["input", "until"], [])
        assert says in error["message"]

    # The manager's own prospect: an agent sees it not.
    owned = await mutate(
        gql,
        manager,
        "createProspects",
        "prospects { id }",
        prospects=[{"firstName": "Own", "email": "own@client.example", "ownerId": org.user_gid(Role.MANAGER)}],
    )
    sequence = await make_sequence(gql, org, steps=STEPS)
    [hidden] = (
        await mutate(
            gql,
            manager,
            "enrollProspects",
            "enrollments { id }",
            sequenceId=sequence["id"],
            prospectIds=[owned["prospects"][0]["id"]],
        )
    )["enrollments"]
    finished = await mutate(
        gql, manager, "finishEnrollments", "enrollments { id }", ids=[hidden["id"]], outcome="SUCCESS"
    )
    assert finished["errors"] == []

    mixed = await mutate(gql, agent, "pauseEnrollmentsUntil", UNTIL, ids=[theirs, ada, hidden["id"]], until=soon)
    assert [(e["code"], e["field"]) for e in mixed["errors"]] == [
        ("NOT_FOUND", ["input", "ids", "0"]),
        ("NOT_FOUND", ["input", "ids", "2"]),
    ]
    assert [(e["id"], e["stage"]) for e in mixed["enrollments"]] == [(ada, "PAUSED")]
    by_manager = await mutate(gql, manager, "pauseEnrollmentsUntil", UNTIL, ids=[hidden["id"]], until=soon)
    assert [(e["code"], e["field"]) for e in by_manager["errors"]] == [("INVALID_TRANSITION", ["input", "ids", "0"])]


async def test_a_pause_that_ends_in_an_inactive_sequence_waits_for_the_sequence(
    gql: GraphQL, org: Org, clock: FrozenClock, queue: ArqRedis
) -> None:
    sequence, (ada,) = await _enrolled(gql, org, clock, "Ada")
    manager = org.tokens[Role.MANAGER]
    until = clock.now() + timedelta(hours=2)
    await mutate(gql, manager, "pauseEnrollmentsUntil", UNTIL, ids=[ada], until=until.isoformat())
    stopped = await mutate(gql, manager, "setSequenceActive", "sequence { active }", id=sequence["id"], active=False)
    assert stopped["errors"] == []

    clock.advance(3 * 3600)
    await scheduler_pass(queue, clock)

    # It may not start in an inactive sequence: it stays paused, its end forgotten, for the sequence.
    node = await _history(gql, manager, ada)
    assert (node["stage"], node["resumesAt"]) == ("PAUSED", None)
    assert await pauses.claim_ended(clock.now(), 10) == []
    started = await mutate(gql, manager, "setSequenceActive", "sequence { active }", id=sequence["id"], active=True)
    assert started["errors"] == []
    node = await _history(gql, manager, ada)
    assert node["stage"] == "STARTED"
    assert node["history"][-1] == {
        "fromStage": "PAUSED",
        "toStage": "STARTED",
        "cause": "USER",
        "reason": "sequence_activated",
    }


async def test_the_look_for_ended_pauses_reads_its_partial_index(database: str, clock: FrozenClock) -> None:
    """A pass with no pause to end reads one empty range of the partial index (migration 0027)."""
    sql = pauses.ended_query(clock.now(), pauses.BATCH).sql(params_inline=True)
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "postgres":
            await connection.execute_script("SET LOCAL enable_seqscan = off")  # tiny tables: ask what it can use
            plan = " ".join(row["QUERY PLAN"] for row in await connection.execute_query_dict(f"EXPLAIN {sql}"))
        else:
            plan = " ".join(row["detail"] for row in await connection.execute_query_dict(f"EXPLAIN QUERY PLAN {sql}"))
    assert "enrollment_resumes_at_partial" in plan, plan


# ---- out of office, through the inbound email webhook ----

NOVEMBER = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOVEMBER)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "INBOUND_EMAIL_TOKEN": TOKEN})


async def test_an_out_of_office_email_pauses_until_the_morning_it_gives_and_the_scheduler_resumes_it(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str, queue: ArqRedis
) -> None:
    await Organization.filter(id=org.id).update(time_zone="Europe/Berlin")
    enrollment, sent = await _sent(org, clock, settings)  # its second step is due in an hour
    clock.advance(1800)

    # "I will return on Monday 30 November 2026."
    async with httpx.AsyncClient(base_url=live_server) as http:
        answer = await _post(http, _answering("ooo_exchange_legacy.eml", sent))

    assert answer.json() == {"result": "recorded", "kind": "auto_reply"}
    reply = await Message.get(direction="INBOUND")
    morning = datetime(2026, 11, 30, 8, 0, tzinfo=BERLIN)
    assert reply.auto_reply and reply.returns_at == datetime(2026, 11, 30, tzinfo=BERLIN)
    await enrollment.refresh_from_db()
    assert (enrollment.stage, enrollment.resumes_at, enrollment.paused_reason) == ("PAUSED", morning, "out_of_office")
    paused = await StageChange.filter(enrollment_id=enrollment.id).order_by("-id").first()
    assert paused is not None and (paused.to_stage, paused.cause, paused.reason) == (
        "PAUSED",
        "OUT_OF_OFFICE",
        "out_of_office",
    )

    clock.advance((morning - clock.now()).total_seconds() - 1)
    await scheduler_pass(queue, clock)
    await enrollment.refresh_from_db()
    assert enrollment.stage == "PAUSED"
    assert await Message.filter(enrollment_id=enrollment.id).count() == 1

    clock.advance(1)
    await scheduler_pass(queue, clock)

    await enrollment.refresh_from_db()
    assert (enrollment.stage, enrollment.resumes_at) == ("APPROACHING", None)
    resumed = await StageChange.filter(enrollment_id=enrollment.id, from_stage="PAUSED").get()
    assert (resumed.to_stage, resumed.cause, resumed.reason, resumed.at) == (
        "APPROACHING",
        "OUT_OF_OFFICE",
        "pause_ended",
        morning,
    )
    [following] = await Message.filter(enrollment_id=enrollment.id, state="QUEUED")
    job = f"send:{following.id // send_queue.SEND_BLOCK}:{following.id}:"
    assert any(name.startswith(job) for name in await send_job_ids(queue))
    with smtp_sink() as (sink, url):
        smtp = Settings.from_env({"LEADLINE_DATA_DIR": str(settings.data_dir), "SMTP_URL": url})
        transports = sending.transports_for(smtp)
        try:
            assert await sending.send(following.id, transports=transports, settings=smtp, clock=clock) == "SENT"
        finally:
            await transports.close()
    [email] = sink.received
    assert email["To"] == "ada@client.example"


async def test_an_out_of_office_email_without_a_return_date_changes_nothing(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, sent = await _sent(org, clock, settings)
    raw = _answering("ooo_exchange_legacy.eml", sent).replace(b"I will return on =\nMonday 30 November 2026.", b"")
    assert b"30 November" not in raw

    async with httpx.AsyncClient(base_url=live_server) as http:
        answer = await _post(http, raw)

    assert answer.json() == {"result": "recorded", "kind": "auto_reply"}
    reply = await Message.get(direction="INBOUND")
    await enrollment.refresh_from_db()
    assert (reply.auto_reply, reply.returns_at) == (True, None)
    assert (enrollment.stage, enrollment.resumes_at) == ("APPROACHING", None)


async def test_an_auto_reply_recorded_through_the_api_pauses_a_second_one_moves_the_end(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    """recordInboundMessage reads an auto-reply as the webhook does; a later one with
    another date replaces the end of the pause the first made (no stage change)."""
    _, (ada,) = await _enrolled(gql, org, clock, "Ada")
    token = org.tokens[Role.MANAGER]
    for body, back in [
        ("Hello, I am on vacation, back on 27 November. Regards, Ada", datetime(2026, 11, 27, 8, tzinfo=UTC)),
        ("Hello, I am out of the office until 1 December. Regards, Ada", datetime(2026, 12, 2, 8, tzinfo=UTC)),
    ]:
        recorded = await mutate(
            gql,
            token,
            "recordInboundMessage",
            "message { autoReply returnsAt }",
            channel="EMAIL",
            **{"from": "ada@client.example"},
            body=body,
            autoReply=True,
        )
        assert recorded["message"] == {"autoReply": True, "returnsAt": (back - timedelta(hours=8)).isoformat()}
        node = await _history(gql, token, ada)
        assert (node["stage"], node["resumesAt"]) == ("PAUSED", back.isoformat())
    assert [(c["toStage"], c["cause"], c["reason"]) for c in node["history"]] == [
        ("STARTED", "USER", "enrolled"),
        ("PAUSED", "OUT_OF_OFFICE", "out_of_office"),
    ]


async def test_an_auto_reply_whose_date_the_parser_fails_on_is_kept_without_a_pause(
    gql: GraphQL, org: Org, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure inside the date parser is no failure of the message: it is recorded,
    and the enrollment goes on as for an auto-reply without a date."""
    _, (ada,) = await _enrolled(gql, org, clock, "Ada")

    def broken(*args: object, **kwargs: object) -> None:
        raise RecursionError("the parser's own bug")

    monkeypatch.setattr(return_dates, "read", broken)
    recorded = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "recordInboundMessage",
        "message { autoReply returnsAt }",
        channel="EMAIL",
        **{"from": "ada@client.example"},
        body="Hello, I am out of the office until 1 December. Regards, Ada",
        autoReply=True,
    )
    assert recorded["errors"] == [] and recorded["message"] == {"autoReply": True, "returnsAt": None}
    node = await _history(gql, org.tokens[Role.MANAGER], ada)
    assert (node["stage"], node["resumesAt"]) == ("STARTED", None)
