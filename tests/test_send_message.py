"""sendMessage (contract part 60): a rep's one message, queued by the API and handed
at once to a real arq worker, which sends it through the send gate into a real
SMTP server or the Twilio stand-in; the conversation then awaits a reply and
MESSAGE_SENT rules run, as for a step. Replies go in the answered message's thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from redis.asyncio import Redis

from app import ids, presets
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import email_routing
from app.messaging.models import Direction, Message, MessageState
from app.prospects import service as prospects
from app.prospects import suppressions
from app.prospects.models import Channel, ConversationState, Prospect
from app.redis import locate
from app.web import create_app
from app.workflows import service as workflows
from app.workflows.models import TriggerEvent
from app.workflows.operations import OperationSpec, OperationType
from tasks.worker import create_worker
from tests.conftest import GraphQL, Org, mutate, send_job_ids
from tests.smtp_sink import smtp_sink
from tests.twilio_standin import twilio_standin

PAYLOAD = "message { id state channel subject body mailbox { address } }"


def _env(tmp_path: Path, **env: str) -> dict[str, str]:
    import os

    server = {"REDIS_URL": os.environ["REDIS_URL"]} if os.environ.get("REDIS_URL") else {}
    return {"LEADLINE_DATA_DIR": str(tmp_path / "data"), **server, **env}


@pytest.fixture
async def api(db: None, redis: Redis, settings: Settings, clock: FrozenClock) -> AsyncIterator[GraphQL]:
    """The API with the test's Redis: what it queues it hands to a worker at once."""
    app = create_app(settings, clock=clock, redis=redis, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leadline.test") as client:
        yield GraphQL(client)


async def _work(tmp_path: Path, clock: FrozenClock, **env: str) -> None:
    """A real arq worker (the engine's send jobs) until the queue is empty."""
    settings = Settings.from_env(_env(tmp_path, SCHEDULER_INTERVAL="3600", **env))
    worker = create_worker(settings, locate(settings), own_database=False, handle_signals=False, clock=clock)
    worker.burst = True
    try:
        async with asyncio.timeout(30):
            await worker.main()
    finally:  # arq's close() calls a redis method deprecated since 5.0.1: its two steps here
        if worker.on_shutdown is not None:
            await worker.on_shutdown(worker.ctx)
        await worker.pool.aclose()


async def _prospect(org: Org, clock: FrozenClock, **values: Any) -> Prospect:
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    person = {"first_name": "Ada", "email": "ada@client.example", "phone": "+12025550143"}
    created, errors = await prospects.create_prospects(actor=admin, inputs=[person | values])
    assert not errors
    return created[0]


async def _send(gql: GraphQL, token: str, prospect: Prospect | int, **input_: Any) -> dict[str, Any]:
    pk = prospect if isinstance(prospect, int) else prospect.id
    return await mutate(gql, token, "sendMessage", PAYLOAD, prospectId=ids.encode("Prospect", pk), **input_)


def _parsed(raw: bytes) -> EmailMessage:
    return cast(EmailMessage, message_from_bytes(raw, policy=policy.default))


async def test_an_email_goes_now_from_the_owners_mailbox_and_the_conversation_awaits_a_reply(
    api: GraphQL, org: Org, clock: FrozenClock, redis: Redis, tmp_path: Path
) -> None:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    agent = org.actor(Role.AGENT, clock)
    prospect = await _prospect(org, clock, owner_id=agent.user_id)
    await mutate(
        api, org.tokens[Role.ADMIN], "createMailbox", "mailbox { id }",
        address="ada.rep@acme.example", displayName="Ada Rep", userId=org.user_gid(Role.AGENT),
    )  # fmt: skip
    await workflows.create_rule(
        actor=org.actor(Role.MANAGER, clock), name="count", event=TriggerEvent.MESSAGE_SENT, status_id=None,
        operations=[OperationSpec(OperationType.MARK_CONTACT_ATTEMPTED)], enabled=True, channel=None, stage=None,
    )  # fmt: skip

    answer = await _send(
        api, org.tokens[Role.AGENT], prospect, channel="EMAIL", subject="Hi {{ first_name }}", body="Are you free?"
    )

    assert answer["errors"] == []
    assert answer["message"] | {"id": None} == {
        "id": None,
        "state": "QUEUED",
        "channel": "EMAIL",
        "subject": "Hi Ada",
        "body": "Are you free?",
        "mailbox": {"address": "ada.rep@acme.example"},
    }
    assert len(await send_job_ids(redis)) == 1  # handed to a worker at once, not at the next pass
    with smtp_sink() as (sink, url):
        await _work(tmp_path, clock, SMTP_URL=url)
    [email] = [_parsed(r) for r in sink.raw]
    assert (str(email["From"]), email["To"], email["Subject"]) == (
        "Ada Rep <ada.rep@acme.example>",
        "ada@client.example",
        "Hi Ada",
    )
    [message] = await Message.filter(prospect_id=prospect.id)
    assert (message.state, message.external_id) == (MessageState.SENT, email["Message-ID"])
    after = await Prospect.get(id=prospect.id)
    assert after.conversation_state is ConversationState.AWAITING_REPLY and after.last_message_at == clock.now()
    assert after.contact_attempts == 1  # the MESSAGE_SENT rule ran


async def test_an_sms_goes_now_through_the_sms_provider(
    api: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    await Organization.filter(id=org.id).update(sms_from="+12025550100")
    prospect = await _prospect(org, clock)

    answer = await _send(api, org.tokens[Role.MANAGER], prospect, channel="SMS", body="Hi {{ first_name }}, call me?")
    async with twilio_standin() as (twilio, url):
        await _work(tmp_path, clock, TWILIO_API_URL=url, TWILIO_ACCOUNT_SID="AC1", TWILIO_AUTH_TOKEN="t")

    assert answer["errors"] == [] and answer["message"]["mailbox"] is None
    assert twilio.messages == [{"To": "+12025550143", "From": "+12025550100", "Body": "Hi Ada, call me?"}]
    assert (await Message.get(prospect_id=prospect.id)).state is MessageState.SENT
    assert (await Prospect.get(id=prospect.id)).conversation_state is ConversationState.AWAITING_REPLY


async def test_a_reply_to_a_received_email_goes_in_its_thread(
    api: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    prospect = await _prospect(org, clock)
    admin = org.tokens[Role.ADMIN]
    with smtp_sink() as (sink, url):
        await _send(api, admin, prospect, channel="EMAIL", subject="Hello", body="First")
        await _work(tmp_path, clock, SMTP_URL=url)
        first_id = _parsed(sink.raw[0])["Message-ID"]
        raw = (
            f"From: Ada <ada@client.example>\r\nTo: sales@acme.example\r\nSubject: RE: Hello\r\n"
            f"Message-ID: <answer@client.example>\r\nIn-Reply-To: {first_id}\r\nReferences: {first_id}\r\n\r\n"
            "Tell me more.\r\n"
        ).encode()
        assert (await email_routing.receive_email(raw, clock=clock, cpu_seconds=5)).outcome == "recorded"
        received = await Message.get(direction=Direction.INBOUND)
        assert (await Prospect.get(id=prospect.id)).conversation_state is ConversationState.REPLY_NEEDED

        reply = await _send(
            api, admin, prospect, channel="EMAIL", body="Gladly.", inReplyToId=ids.encode("Message", received.id)
        )
        await _work(tmp_path, clock, SMTP_URL=url)
        again = await _send(
            api, admin, prospect, channel="EMAIL", body="And more.",
            inReplyToId=reply["message"]["id"],
        )  # fmt: skip
        await _work(tmp_path, clock, SMTP_URL=url)

    assert reply["errors"] == [] and reply["message"]["subject"] == "Re: Hello"
    _, answered, followed = [_parsed(r) for r in sink.raw]
    assert answered["Subject"] == "Re: Hello"
    assert answered["In-Reply-To"] == "<answer@client.example>"
    assert answered["References"] == "<answer@client.example>"
    assert followed["Subject"] == "Re: Hello"  # never Re: Re:
    assert followed["In-Reply-To"] == answered["Message-ID"]
    assert followed["References"].split() == ["<answer@client.example>", answered["Message-ID"]]
    assert again["errors"] == []
    rows = await Message.filter(prospect_id=prospect.id, direction=Direction.OUTBOUND).order_by("id")
    assert [m.in_reply_to_id for m in rows] == [None, received.id, rows[1].id]
    assert (await Prospect.get(id=prospect.id)).conversation_state is ConversationState.AWAITING_REPLY


@pytest.mark.parametrize(
    ("input_", "code", "field"),
    [
        ({"channel": "EMAIL", "body": "Hi"}, "INVALID_INPUT", "subject"),
        ({"channel": "EMAIL", "subject": "  ", "body": "Hi"}, "INVALID_INPUT", "subject"),
        ({"channel": "SMS", "subject": "Hi", "body": "Hi"}, "INVALID_INPUT", "subject"),
        ({"channel": "SMS", "body": "  "}, "INVALID_INPUT", "body"),
        ({"channel": "SMS", "body": "x" * 20_001}, "INVALID_INPUT", "body"),
        ({"channel": "SMS", "body": "{{ nope }}"}, "INVALID_INPUT", "body"),
        ({"channel": "EMAIL", "subject": "{% for %}", "body": "Hi"}, "INVALID_INPUT", "subject"),
        ({"channel": "PHONE", "body": "Hi"}, "INVALID_INPUT", "channel"),
        ({"channel": "EMAIL", "body": "Hi", "inReplyToId": "TWVzc2FnZTo5OTk="}, "NOT_FOUND", "inReplyToId"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_queued(
    api: GraphQL, org: Org, clock: FrozenClock, input_: dict[str, Any], code: str, field: str
) -> None:
    prospect = await _prospect(org, clock)

    answer = await _send(api, org.tokens[Role.ADMIN], prospect, **input_)

    assert answer["message"] is None
    assert [(e["code"], e["field"]) for e in answer["errors"]] == [(code, ["input", field])]
    assert await Message.all().count() == 0


async def test_what_the_gate_would_refuse_is_refused_at_once(api: GraphQL, org: Org, clock: FrozenClock) -> None:
    admin = org.tokens[Role.ADMIN]
    dnc = await _prospect(org, clock)
    await Prospect.filter(id=dnc.id).update(do_not_contact=True)
    nameless = await _prospect(org, clock, email="bob@client.example", phone=None)
    other = await _prospect(org, clock, email="cy@client.example", phone="+12025550144")
    listed = await _prospect(org, clock, email="dee@client.example", phone="+12025550145")
    await suppressions.add(
        actor=org.actor(Role.ADMIN, clock), entries=[suppressions.Wanted(Channel.EMAIL, "DEE@client.example")]
    )
    received = await Message.create(
        organization_id=org.id, prospect_id=other.id, channel=Channel.EMAIL, direction=Direction.INBOUND,
        state=MessageState.RECEIVED, body="hi", created_at=clock.now(),
    )  # fmt: skip

    refusals = [
        await _send(api, admin, dnc, channel="EMAIL", subject="Hi", body="Hi"),
        await _send(api, admin, listed, channel="EMAIL", subject="Hi", body="Hi"),
        await _send(api, admin, nameless, channel="SMS", body="Hi"),
        await _send(api, admin, 999, channel="SMS", body="Hi"),
        # A message of another prospect is no thread of this one.
        await _send(api, admin, nameless, channel="EMAIL", body="Hi", inReplyToId=ids.encode("Message", received.id)),
    ]

    assert [[(e["code"], e["field"]) for e in r["errors"]] for r in refusals] == [
        [("DO_NOT_CONTACT", ["input", "channel"])],
        [("DO_NOT_CONTACT", ["input", "channel"])],
        [("NO_ADDRESS", ["input", "channel"])],
        [("NOT_FOUND", ["input", "prospectId"])],
        [("NOT_FOUND", ["input", "inReplyToId"])],
    ]
    assert await Message.filter(direction=Direction.OUTBOUND).count() == 0


async def test_an_agent_sends_only_to_prospects_it_may_work(api: GraphQL, org: Org, clock: FrozenClock) -> None:
    theirs = await _prospect(org, clock, owner_id=org.users[Role.MANAGER].id)
    own = await _prospect(org, clock, email="bob@client.example", owner_id=org.users[Role.AGENT].id)

    refused = await _send(api, org.tokens[Role.AGENT], theirs, channel="EMAIL", subject="Hi", body="Hi")
    sent = await _send(api, org.tokens[Role.AGENT], own, channel="EMAIL", subject="Hi", body="Hi")

    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("NOT_FOUND", ["input", "prospectId"])]
    assert sent["errors"] == []
    assert await Message.filter(prospect_id=theirs.id).count() == 0


async def test_over_its_mailboxs_limit_a_message_is_refused_at_once_and_nothing_is_queued(
    api: GraphQL, org: Org, clock: FrozenClock, redis: Redis, tmp_path: Path
) -> None:
    """A rep is waiting: over the limit is a clear CONFLICT, never a silent deferral;
    the message sent within the limit counts once, its claim asks for no slot again."""
    agent = org.actor(Role.AGENT, clock)
    prospect = await _prospect(org, clock, owner_id=agent.user_id)
    await mutate(
        api, org.tokens[Role.ADMIN], "createMailbox", "mailbox { id }",
        address="ada.rep@acme.example", userId=org.user_gid(Role.AGENT), dailyLimit=1, timeZone="UTC",
    )  # fmt: skip
    first = await _send(api, org.tokens[Role.AGENT], prospect, channel="EMAIL", subject="Hi", body="One")
    assert first["errors"] == []

    second = await _send(api, org.tokens[Role.AGENT], prospect, channel="EMAIL", subject="Hi", body="Two")

    assert second["message"] is None
    [error] = second["errors"]
    assert error["code"] == "CONFLICT"
    assert error["message"] == (
        "The mailbox ada.rep@acme.example has sent its 1 emails today; it can send again from 2026-01-06 00:00 (UTC)."
    )
    assert await Message.filter(prospect_id=prospect.id).count() == 1
    with smtp_sink() as (sink, url):
        await _work(tmp_path, clock, SMTP_URL=url)
    assert len(sink.raw) == 1
    body = await api(org.tokens[Role.ADMIN], "{ mailboxes { sentToday remainingToday } }")
    assert body["data"]["mailboxes"] == [{"sentToday": 1, "remainingToday": 0}]
