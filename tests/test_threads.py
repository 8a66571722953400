"""Issue 23, item 3: follow-ups in the same thread. A step with threadWithPrevious
goes out as a reply to the enrollment's previous sent email: "Re: " its subject
(never "Re: Re:"), In-Reply-To its Message-ID, References the thread's ids in
order, from the same sender; replies to any email of the thread find the
enrollment."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from email.message import Message as MimeMessage
from pathlib import Path

import httpx
import pytest

from app import ids, presets
from app.accounts import service as accounts
from app.accounts.models import Organization, Role
from app.clock import FrozenClock, SystemClock
from app.config import Settings
from app.messaging import email_routing, sending, threads
from app.messaging.models import Message, MessageState
from app.prospects import service as prospects
from app.sequences import enrollments, scheduler
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from app.web import create_app
from tests.conftest import GraphQL, Org, QueryCounter, mutate
from tests.live_processes import LEADLINE, stop
from tests.smtp_sink import Sink, smtp_sink
from tests.test_engine_e2e import eventually
from tests.test_scheduler import setup

THREE = [
    StepSpec(StepType.EMAIL, 0, body="First, {{ first_name }}", subject="Hello"),
    StepSpec(StepType.EMAIL, 0, body="Second", subject="Not used {{ first_name }}", thread_with_previous=True),
    StepSpec(StepType.EMAIL, 0, body="Third", subject="Not used either", thread_with_previous=True),
]
PEOPLE = [
    {"first_name": "Ada", "email": "ada@client.example"},
    {"first_name": "Bob", "email": "bob@client.example"},
]
MESSAGE_THREAD = """
query($id: ID!) { node(id: $id) { ... on Message { id subject inReplyTo { id subject inReplyTo { id } } } } }
"""
PROSPECT_MESSAGES = """
query { prospects(first: 50) { edges { node { messages { edges { node { id inReplyTo { id } } } } } } } }
"""


def _by_recipient(sink: Sink) -> dict[str, list[MimeMessage]]:
    received: dict[str, list[MimeMessage]] = {}
    for email in sink.received:
        received.setdefault(str(email["To"]), []).append(email)
    return received


def _reply(to: str, sender: str, *, in_reply_to: str, references: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Re: Hello\r\nMessage-ID: <answer-{abs(hash(in_reply_to))}@client.example>\r\n"
        f"In-Reply-To: {in_reply_to}\r\nReferences: {references}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nSounds good, let's talk.\r\n"
    ).encode()


async def test_a_three_email_thread_goes_out_threaded_through_the_real_worker(database: str, tmp_path: Path) -> None:
    # given two prospects in a sequence of a new thread and two threaded follow-ups
    clock = SystemClock()
    created = await accounts.create_organization(
        name="Acme", admin_email="boss@acme.example", admin_name=None, clock=clock
    )
    await Organization.filter(id=created.organization.id).update(email_from="Acme Sales <sales@acme.example>")
    admin = await accounts.authenticate(created.token, clock)
    assert admin is not None
    await presets.apply(actor=admin, name="lead-workflow")
    sequence = await sequences.create_sequence(
        actor=admin,
        name="Thread",
        stop_on_reply=None,
        unresponsive_after_seconds=3600,
        send_window=None,
        active=True,
        steps=THREE,
    )
    made, errors = await prospects.create_prospects(actor=admin, inputs=[dict(p) for p in PEOPLE])
    assert not errors
    enrolled, errors = await enrollments.enroll(
        actor=admin, sequence_id=sequence.id, prospect_ids=[p.id for p in made], activate=None
    )
    assert not errors

    # when the real worker runs them into a real SMTP server
    with smtp_sink() as (sink, smtp_url):
        env = {
            **os.environ,
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": database,
            "SMTP_URL": smtp_url,
            "SCHEDULER_INTERVAL": "0.1",
        }
        worker = await asyncio.create_subprocess_exec(
            LEADLINE, "worker", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            await eventually(lambda: _sent_count(6), seconds=60)
        finally:
            stderr = await stop(worker)
    assert worker.returncode == 0, stderr.decode()[-2000:]

    # then each prospect got one thread: Re: the first subject, In-Reply-To and References in order
    received = _by_recipient(sink)
    assert sorted(received) == ["ada@client.example", "bob@client.example"]
    for emails in received.values():
        first, second, third = emails
        assert [str(e["Subject"]) for e in emails] == ["Hello", "Re: Hello", "Re: Hello"]
        assert {str(e["From"]) for e in emails} == {"Acme Sales <sales@acme.example>"}
        assert first["In-Reply-To"] is None and first["References"] is None
        assert (second["In-Reply-To"], second["References"]) == (first["Message-ID"], first["Message-ID"])
        assert third["In-Reply-To"] == second["Message-ID"]
        assert str(third["References"]).split() == [first["Message-ID"], second["Message-ID"]]
    ada = next(e for e in enrolled if e.prospect_id == made[0].id)
    bob = next(e for e in enrolled if e.prospect_id == made[1].id)
    rows = {e.id: await Message.filter(enrollment_id=e.id).order_by("id") for e in enrolled}
    for thread in rows.values():
        assert [m.in_reply_to_id for m in thread] == [None, thread[0].id, thread[1].id]
        assert [m.subject for m in thread] == ["Hello", "Re: Hello", "Re: Hello"]

    # and Message.inReplyTo shows the chain through the API, without a query per message
    app = create_app(Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data")}), manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leadline.test") as client:
        gql = GraphQL(client)
        third_id = ids.encode("Message", rows[ada.id][2].id)
        shown = (await gql(created.token, MESSAGE_THREAD, id=third_id))["data"]["node"]
        assert shown["inReplyTo"] == {
            "id": ids.encode("Message", rows[ada.id][1].id),
            "subject": "Re: Hello",
            "inReplyTo": {"id": ids.encode("Message", rows[ada.id][0].id)},
        }
        listed = await gql(created.token, PROSPECT_MESSAGES)
        assert "errors" not in listed, listed
        answered = [
            m["node"]["inReplyTo"] for p in listed["data"]["prospects"]["edges"] for m in p["node"]["messages"]["edges"]
        ]
        assert sorted(a is None for a in answered) == [False] * 4 + [True] * 2

    # and a reply to the first email of Ada's thread, and one to the last of Bob's, both finish REPLIED
    ada_first, bob_last = rows[ada.id][0], rows[bob.id][2]
    to_first = _reply(
        "Acme Sales <sales@acme.example>",
        "ada@client.example",
        in_reply_to=str(ada_first.external_id),
        references=str(ada_first.external_id),
    )
    to_last = _reply(
        "sales@acme.example",
        "bob@client.example",
        in_reply_to=str(bob_last.external_id),
        references=f"{rows[bob.id][0].external_id} {rows[bob.id][1].external_id} {bob_last.external_id}",
    )
    for raw in (to_first, to_last):
        answer = await email_routing.receive_email(raw, clock=clock, cpu_seconds=5)
        assert answer.outcome == "recorded"
    assert [(await Enrollment.get(id=e.id)).stage for e in (ada, bob)] == ["REPLIED", "REPLIED"]


async def _sent_count(expected: int) -> bool:
    return await Message.filter(state=MessageState.SENT).count() == expected


async def _send(message_id: int, sink_url: str, tmp_path: Path, clock: FrozenClock) -> MessageState | None:
    settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "SMTP_URL": sink_url})
    transports = sending.transports_for(settings)
    try:
        return await sending.send(message_id, transports=transports, settings=settings, clock=clock)
    finally:
        await transports.close()


async def test_a_follow_up_goes_from_the_previous_emails_sender_and_mailbox(
    org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    # given a first email that went out from a rep's address (as a mailbox sets it)
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    [enrollment] = await setup(org, clock, steps=THREE[:2])
    [first_id] = (await scheduler.run_pass(clock)).queued
    await Message.filter(id=first_id).update(from_address="Rita Rep <rita@acme.example>")
    with smtp_sink() as (sink, url):
        assert await _send(first_id, url, tmp_path, clock) == MessageState.SENT

        # when the threaded step runs
        clock.advance(1)
        [second_id] = (await scheduler.run_pass(clock)).queued
        assert await _send(second_id, url, tmp_path, clock) == MessageState.SENT

    # then it goes from that address too, in the thread
    first, second = sink.received
    assert first["From"] == second["From"] == "Rita Rep <rita@acme.example>"
    assert second["In-Reply-To"] == first["Message-ID"]
    row = await Message.get(id=second_id)
    assert (row.from_address, row.in_reply_to_id, row.enrollment_id) == (
        "Rita Rep <rita@acme.example>",
        first_id,
        enrollment.id,
    )


async def test_a_threaded_step_waits_for_the_email_it_follows_to_be_sent(org: Org, clock: FrozenClock) -> None:
    # given a first email still QUEUED (held back, or its worker not there yet)
    [enrollment] = await setup(org, clock, steps=THREE[:2])
    [first_id] = (await scheduler.run_pass(clock)).queued
    await Message.filter(id=first_id).update(next_attempt_at=clock.now() + timedelta(hours=3))

    # when the threaded step is due
    clock.advance(1)
    assert (await scheduler.run_pass(clock)).queued == []

    # then it waits until that email may go, and a little more
    waiting = await Enrollment.get(id=enrollment.id)
    assert waiting.due_at == clock.now() - timedelta(seconds=1) + timedelta(hours=3) + scheduler.THREAD_WAIT
    assert waiting.current_step_id != enrollment.current_step_id

    # and once the email is sent it follows it
    await Message.filter(id=first_id).update(state=MessageState.SENT, external_id="<first@acme.example>")
    clock.advance(3 * 3600 + 2)
    [second_id] = (await scheduler.run_pass(clock)).queued
    second = await Message.get(id=second_id)
    assert (second.in_reply_to_id, second.references_header, second.subject) == (
        first_id,
        "<first@acme.example>",
        "Re: Hello",
    )


async def test_a_step_follows_the_last_email_sent_not_one_that_failed(org: Org, clock: FrozenClock) -> None:
    # given a first email sent and a second one that failed
    steps = [THREE[0], StepSpec(StepType.EMAIL, 0, body="Two", subject="Other"), THREE[2]]
    [enrollment] = await setup(org, clock, steps=steps)
    [first_id] = (await scheduler.run_pass(clock)).queued
    await Message.filter(id=first_id).update(state=MessageState.SENT, external_id="<one@acme.example>")
    clock.advance(1)
    [second_id] = (await scheduler.run_pass(clock)).queued
    await Message.filter(id=second_id).update(state=MessageState.BOUNCED, external_id="<two@acme.example>")
    await Enrollment.filter(id=enrollment.id).update(due_at=clock.now())

    # when the threaded third step runs
    clock.advance(1)
    [third_id] = (await scheduler.run_pass(clock)).queued

    # then it answers the first, which was received
    third = await Message.get(id=third_id)
    assert (third.in_reply_to_id, third.references_header, third.subject) == (
        first_id,
        "<one@acme.example>",
        "Re: Hello",
    )


async def test_a_threaded_step_with_no_email_sent_before_starts_a_thread_with_its_subject(
    org: Org, clock: FrozenClock
) -> None:
    # given a sequence whose first email is threaded, and one whose earlier email failed
    steps = [StepSpec(StepType.EMAIL, 0, body="Hi", subject="Opening {{ first_name }}", thread_with_previous=True)]
    await setup(org, clock, steps=steps)

    # when it runs
    [message_id] = (await scheduler.run_pass(clock)).queued

    # then it is a new thread with the step's own subject
    message = await Message.get(id=message_id)
    assert (message.subject, message.in_reply_to_id, message.references_header) == ("Opening Ada", None, None)


async def test_a_pass_reads_earlier_emails_once_and_not_at_all_without_threaded_steps(
    org: Org, clock: FrozenClock, sql_queries: QueryCounter
) -> None:
    # given rounds of enrollments whose first email was sent, and whose second step is due
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    plain = [THREE[0], StepSpec(StepType.EMAIL, 0, body="Again", subject="Again")]
    costs = {}
    for name, steps, count in (("threaded", THREE[:2], 12), ("plain", plain, 12), ("threaded_few", THREE[:2], 2)):
        sequence = await sequences.create_sequence(
            actor=admin,
            name=name,
            stop_on_reply=None,
            unresponsive_after_seconds=None,
            send_window=None,
            active=True,
            steps=steps,
        )
        people = [{"first_name": f"P{i}", "email": f"{name}{i}@client.example"} for i in range(count)]
        made, errors = await prospects.create_prospects(actor=admin, inputs=people)
        assert not errors
        await enrollments.enroll(actor=admin, sequence_id=sequence.id, prospect_ids=[p.id for p in made], activate=None)
        queued = (await scheduler.run_pass(clock)).queued
        await Message.filter(id__in=queued).update(state=MessageState.SENT, external_id="<x@acme.example>")
        clock.advance(1)

        # when a pass runs the second steps
        sql_queries.count = 0
        assert len((await scheduler.run_pass(clock)).queued) == count
        costs[name] = sql_queries.count

    # then threading costs one read for the pass, whatever its size; a plain pass reads
    # the emails' mailboxes instead (a reply goes from its thread's), one read too
    assert costs["threaded"] == costs["threaded_few"] == costs["plain"]


def test_reply_subjects_never_stack_prefixes() -> None:
    assert threads.reply_subject("Hello") == "Re: Hello"
    assert threads.reply_subject("Re: Hello") == "Re: Hello"
    assert threads.reply_subject("RE: re:Re :  Hello") == "Re: Hello"
    assert threads.reply_subject("  Aw: SV: Antw: Re[2]: Hello") == "Re: Hello"
    assert threads.reply_subject("Fwd: Hello") == "Re: Fwd: Hello"
    assert threads.reply_subject("Regarding: Hello") == "Re: Regarding: Hello"
    assert threads.reply_subject(None) == "Re:"


def test_references_carry_the_thread_and_fold_when_long() -> None:
    parent = Message(id=3, subject="Re: Hi", external_id="<c@x>", references_header="<a@x> <b@x>")
    assert threads.references(parent) == "<a@x> <b@x> <c@x>"
    assert threads.reply_headers("<a@x> <b@x> <c@x>") == (("In-Reply-To", "<c@x>"), ("References", "<a@x> <b@x> <c@x>"))
    assert threads.reply_headers(None) == ()
    assert threads.references(Message(id=4, subject="x", external_id="SM123", references_header=None)) is None
    assert threads.references(Message(id=5, subject="x", external_id="<a@x>\r\nBcc: y", references_header=None)) is None
    many = " ".join(f"<{'m' * 60}{i}@acme.example>" for i in range(30))
    _, (_, folded) = threads.reply_headers(many)
    assert all(len(line) < 998 for line in folded.split("\r\n")) and folded.replace("\r\n ", " ") == many


CREATE = "sequence { steps { type threadWithPrevious } }"


async def test_thread_with_previous_is_saved_and_refused_on_other_steps(gql: GraphQL, org: Org) -> None:
    token = org.tokens[Role.ADMIN]
    made = await mutate(
        gql,
        token,
        "createSequence",
        "sequence { id steps { id type threadWithPrevious } }",
        name="S",
        steps=[
            {"type": "EMAIL", "delaySeconds": 0, "subject": "Hi", "body": "One"},
            {"type": "EMAIL", "delaySeconds": 0, "subject": "Hi", "body": "Two", "threadWithPrevious": True},
        ],
    )
    assert made["errors"] == []
    steps = made["sequence"]["steps"]
    assert [s["threadWithPrevious"] for s in steps] == [False, True]

    refused = await mutate(
        gql,
        token,
        "createSequence",
        CREATE,
        name="T",
        steps=[{"type": "SMS", "delaySeconds": 0, "body": "One", "threadWithPrevious": True}],
    )
    assert refused["sequence"] is None
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [
        ("INVALID_INPUT", ["input", "steps", "0", "threadWithPrevious"])
    ]
    added = await mutate(
        gql,
        token,
        "addSequenceStep",
        CREATE,
        sequenceId=made["sequence"]["id"],
        step={"type": "TASK", "delaySeconds": 0, "body": "Call", "threadWithPrevious": True},
    )
    assert [(e["code"], e["field"]) for e in added["errors"]] == [
        ("INVALID_INPUT", ["input", "step", "threadWithPrevious"])
    ]

    off = await mutate(gql, token, "updateSequenceStep", CREATE, id=steps[1]["id"], threadWithPrevious=False)
    assert off["errors"] == [] and [s["threadWithPrevious"] for s in off["sequence"]["steps"]] == [False, False]
    sms = await mutate(
        gql,
        token,
        "addSequenceStep",
        "sequence { steps { id type } }",
        sequenceId=made["sequence"]["id"],
        step={"type": "SMS", "delaySeconds": 0, "body": "Ping"},
    )
    sms_id = next(s["id"] for s in sms["sequence"]["steps"] if s["type"] == "SMS")
    on_sms = await mutate(gql, token, "updateSequenceStep", CREATE, id=sms_id, threadWithPrevious=True)
    assert [(e["code"], e["field"]) for e in on_sms["errors"]] == [("INVALID_INPUT", ["input", "threadWithPrevious"])]


@pytest.mark.parametrize("subject", ["Hello", "Re: Hello", "RE: Re: Hello"])
async def test_a_thread_never_says_re_re(org: Org, clock: FrozenClock, subject: str) -> None:
    steps = [StepSpec(StepType.EMAIL, 0, body="One", subject=subject), THREE[1], THREE[2]]
    [enrollment] = await setup(org, clock, steps=steps)
    for step in range(3):
        [message_id] = (await scheduler.run_pass(clock)).queued
        await Message.filter(id=message_id).update(state=MessageState.SENT, external_id=f"<{step}@acme.example>")
        clock.advance(1)
    subjects = await Message.filter(enrollment_id=enrollment.id).order_by("id").values_list("subject", flat=True)
    assert list(subjects)[1:] == ["Re: Hello", "Re: Hello"]
