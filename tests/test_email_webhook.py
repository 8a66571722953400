"""R6.1: raw inbound email. A corpus of messages written for these tests (DSNs as
Postfix, Exim, Exchange and Gmail format them, a qmail bounce with no standard
report, out-of-office messages, human replies) is classified; then real sent
emails are answered over real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.accounts.models import Organization
from app.clock import FrozenClock
from app.config import INBOUND_EMAIL_READ_SECONDS, Settings
from app.messaging import inbound_email, mime, mime_headers, sending
from app.messaging.inbound_email import EmailKind
from app.messaging.models import Message
from app.prospects.models import Prospect
from app.sequences import scheduler
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from tests.attacks.test_inbound import nested_messages, nested_multiparts
from tests.conftest import Org
from tests.smtp_sink import smtp_sink
from tests.test_scheduler import setup

CORPUS = Path(__file__).parent / "fixtures" / "inbound_email"
MANIFEST: dict[str, dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text())
ORIGINAL = "<173200000000.4242.1111@acme.example>"
TOKEN = "inbound-token-for-tests"
STEPS = [
    StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi Ada"),
    StepSpec(StepType.EMAIL, 3600, body="b", subject="s"),
]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_the_corpus_is_classified(name: str) -> None:
    expected = MANIFEST[name]
    found = inbound_email.classify((CORPUS / name).read_bytes(), cpu_seconds=INBOUND_EMAIL_READ_SECONDS)
    assert found.kind == EmailKind(expected["kind"])
    if found.kind is EmailKind.BOUNCE:
        assert found.bounce_type == expected["bounce_type"]
        assert found.status == expected["status"]
        assert found.bounced[:1] == [expected["recipient"]]
        assert (found.answers[:1] or [None]) == [expected["original_message_id"]]
    else:
        assert found.sender == expected["from"]
        assert (found.answers[:1] or [None]) == [expected["in_reply_to"]]
        assert found.body.strip()


@pytest.mark.parametrize("nested", [nested_multiparts, nested_messages])
def test_parts_nested_to_the_limit_are_read_and_one_level_more_is_not(nested: Callable[[int], bytes]) -> None:
    read = inbound_email.classify(nested(mime.MAX_DEPTH - 1), cpu_seconds=INBOUND_EMAIL_READ_SECONDS)
    assert read.kind is EmailKind.REPLY  # the top and 19 levels
    with pytest.raises(mime.Unreadable):
        inbound_email.classify(nested(mime.MAX_DEPTH), cpu_seconds=INBOUND_EMAIL_READ_SECONDS)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "INBOUND_EMAIL_TOKEN": TOKEN})


async def _sent(org: Org, clock: FrozenClock, settings: Settings) -> tuple[Enrollment, Message]:
    """The first step, really sent into an SMTP sink: its Message-ID is what answers refer to."""
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    [enrollment] = await setup(org, clock, steps=STEPS)
    [message_id] = (await scheduler.run_pass(clock)).queued
    with smtp_sink() as (sink, url):
        smtp = Settings.from_env({"LEADLINE_DATA_DIR": str(settings.data_dir), "SMTP_URL": url})
        transports = sending.transports_for(smtp)
        try:
            assert await sending.send(message_id, transports=transports, settings=smtp, clock=clock) == "SENT"
        finally:
            await transports.close()
    [email] = sink.received
    message = await Message.get(id=message_id)
    assert email["Message-ID"] == message.external_id
    return enrollment, message


def _answering(name: str, sent: Message) -> bytes:
    return (CORPUS / name).read_bytes().replace(ORIGINAL.encode(), (sent.external_id or "").encode())


async def _post(http: httpx.AsyncClient, raw: bytes, token: str = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "message/rfc822"}
    return await http.post("/webhooks/email/inbound", content=raw, headers=headers)


async def test_auto_replies_change_nothing_and_a_threaded_reply_finishes_replied(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, sent = await _sent(org, clock, settings)
    async with httpx.AsyncClient(base_url=live_server) as http:
        for name in ("ooo_gmail.eml", "ooo_outlook.eml", "ooo_exchange_legacy.eml"):
            answer = await _post(http, _answering(name, sent))
            assert answer.json() == {"result": "recorded", "kind": "auto_reply"}, name
            await enrollment.refresh_from_db()
            assert enrollment.stage == "APPROACHING", name
        reply = await _post(http, _answering("reply_threaded_quoted.eml", sent))
        again = await _post(http, _answering("reply_threaded_quoted.eml", sent))
    assert reply.json() == {"result": "recorded", "kind": "reply"}
    assert again.json() == {"result": "duplicate", "kind": "reply"}
    await enrollment.refresh_from_db()
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert enrollment.stage == "REPLIED" and prospect.conversation_state == "REPLY_NEEDED"
    received = await Message.filter(direction="INBOUND").order_by("id")
    assert [m.auto_reply for m in received] == [True, True, True, False]


async def test_a_hard_dsn_bounces_and_a_soft_one_does_not(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, sent = await _sent(org, clock, settings)
    async with httpx.AsyncClient(base_url=live_server) as http:
        soft = await _post(http, _answering("dsn_postfix_452_422.eml", sent))
        await enrollment.refresh_from_db()
        prospect = await Prospect.get(id=enrollment.prospect_id)
        assert soft.json() == {"result": "recorded", "kind": "bounce"}
        assert enrollment.stage == "APPROACHING" and prospect.opted_out_channels == []
        assert (await Message.get(id=sent.id)).bounce_type == "SOFT"

        hard = await _post(http, _answering("dsn_postfix_550_511.eml", sent))
    assert hard.json() == {"result": "recorded", "kind": "bounce"}
    await enrollment.refresh_from_db()
    prospect = await Prospect.get(id=enrollment.prospect_id)
    message = await Message.get(id=sent.id)
    assert enrollment.stage == "BOUNCED" and prospect.opted_out_channels == ["EMAIL"]
    assert (message.state, message.bounce_type) == ("BOUNCED", "HARD")


async def test_a_dsn_naming_our_message_only_in_its_own_headers_bounces(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, sent = await _sent(org, clock, settings)
    dsn = (CORPUS / "dsn_postfix_550_511.eml").read_bytes()
    headers_naming_none = re.sub(rb"(?im)^message-id: *" + re.escape(ORIGINAL.encode()) + rb"\r?\n", b"", dsn)
    assert ORIGINAL.encode() not in headers_naming_none
    raw = b"References: " + (sent.external_id or "").encode() + b"\n" + headers_naming_none
    async with httpx.AsyncClient(base_url=live_server) as http:
        answer = await _post(http, raw)
    assert answer.json() == {"result": "recorded", "kind": "bounce"}
    await enrollment.refresh_from_db()
    assert (enrollment.stage, (await Message.get(id=sent.id)).bounce_type) == ("BOUNCED", "HARD")


async def test_three_soft_bounces_within_a_week_count_as_hard(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, sent = await _sent(org, clock, settings)
    # The fixture bounced bob's address: here it is Ada's, three times, each its own DSN.
    template = _answering("dsn_postfix_452_422.eml", sent).replace(b"bob@client.example", b"ada@client.example")
    async with httpx.AsyncClient(base_url=live_server) as http:
        for day in range(3):
            clock.advance(86400 * 3 if day else 0)
            raw = re.sub(rb"(?im)^(message-id: *<)", rb"\g<1>soft%d." % day, template, count=1)
            assert (await _post(http, raw)).json()["result"] == "recorded"
            await enrollment.refresh_from_db()
            assert enrollment.stage == ("BOUNCED" if day == 2 else "APPROACHING")
    assert (await Prospect.get(id=enrollment.prospect_id)).opted_out_channels == ["EMAIL"]


async def test_the_webhook_wants_its_token(org: Org, clock: FrozenClock, settings: Settings, live_server: str) -> None:
    _, sent = await _sent(org, clock, settings)
    raw = _answering("reply_threaded_quoted.eml", sent)
    async with httpx.AsyncClient(base_url=live_server) as http:
        wrong = await _post(http, raw, token="guess")
        missing = await http.post("/webhooks/email/inbound", content=raw)
        empty = await _post(http, b"")
    assert (wrong.status_code, missing.status_code, empty.status_code) == (401, 401, 400)
    assert await Message.filter(direction="INBOUND").count() == 0


def test_a_reply_copied_to_many_reads_the_first_hundred_of_each_address_field() -> None:
    # Names with commas, quoted or in comments, are one address each.
    copied = ", ".join(f'"King, A{i}" <a{i}@client.example> (of {i}, {i})' for i in range(150))
    raw = f"From: ada@client.example\nTo: sales@acme.example\nCc: {copied}\nCc: late@client.example\n\nhi\n"

    found = inbound_email.classify(raw.encode(), cpu_seconds=INBOUND_EMAIL_READ_SECONDS)

    assert found.recipients == [
        "sales@acme.example",
        *(f"a{i}@client.example" for i in range(mime_headers.MAX_ADDRESSES)),
    ]
