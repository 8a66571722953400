"""Inbound webhooks, the inbound API and unsubscribe links: requests anyone can
send (a mail nested a thousand deep, an unsubscribe token that is no token),
bounces anyone can forge, mail to two organizations, and received messages
larger than any mail (R1.1, R6, R15)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.accounts import service as accounts
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import inbound_email, sending
from app.messaging.models import Message
from app.prospects.models import Prospect
from app.sequences import scheduler
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from app.web import create_app
from tests.conftest import GraphQL, Org, mutate
from tests.test_scheduler import setup

TOKEN = "inbound-token-for-tests"
CORPUS = Path(__file__).parent.parent / "fixtures" / "inbound_email"
NOT_OURS = rb"<173200000000.4242.1111@acme.example>"  # the corpus's original: no message of this database


def nested_multiparts(depth: int) -> bytes:
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth))
    closing = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    return f"From: x@y.example\nTo: sales@acme.example\n{opening}Content-Type: text/plain\n\nhi\n{closing}".encode()


def nested_messages(depth: int) -> bytes:
    return (
        "From: x@y.example\nTo: sales@acme.example\n" + "Content-Type: message/rfc822\n\n" * depth + "hi\n"
    ).encode()


def many_parts(count: int) -> bytes:
    parts = "".join("--a\nContent-Type: text/plain\n\nx\n" for _ in range(count))
    return f'From: x@y.example\nTo: sales@acme.example\nContent-Type: multipart/mixed; boundary="a"\n\n{parts}--a--\n'.encode()


def to_acme(headers: str, body: str = "hello") -> bytes:
    """A mail from Ada to Acme's sender address with ``headers`` besides."""
    return f"From: ada@client.example\nTo: sales@acme.example\n{headers}\n\n{body}\n".encode()


async def send_from(org: Org, clock: FrozenClock, settings: Settings, address: str) -> None:
    """``org``'s ADMIN sets its sender address."""
    changes = accounts.OrganizationChanges(email_from=address)
    await accounts.update_organization(actor=org.actor(Role.ADMIN, clock), changes=changes, settings=settings)


def corpus(name: str, *, strip_original: bool = False) -> bytes:
    raw = (CORPUS / name).read_bytes()
    return re.sub(rb"(?im)^[\w-]*message-id: *" + re.escape(NOT_OURS) + rb"\r?\n", b"", raw) if strip_original else raw


# (method, path, body; the answer: 404 the same as any unknown page, 422 a JSON error)
REQUESTS = [
    pytest.param("POST", "/webhooks/email/inbound", nested_multiparts(1000), 422, id="email-multiparts-1000-deep"),
    pytest.param("POST", "/webhooks/email/inbound", nested_multiparts(21), 422, id="email-multiparts-21-deep"),
    pytest.param("POST", "/webhooks/email/inbound", nested_messages(1000), 422, id="email-attached-mails-1000-deep"),
    pytest.param("POST", "/webhooks/email/inbound", nested_messages(21), 422, id="email-attached-mails-21-deep"),
    pytest.param("POST", "/webhooks/email/inbound", many_parts(10_000), 422, id="email-10000-parts"),
    pytest.param("GET", "/u/%C3%A9.%C3%A9", None, 404, id="unsubscribe-page-non-ascii-token"),
    pytest.param("POST", "/u/%C3%A9.%C3%A9", None, 404, id="one-click-unsubscribe-non-ascii-token"),
    pytest.param("GET", "/u/bWU.%F0%9F%98%80%F0%9F%98%80", None, 404, id="unsubscribe-page-emoji-signature"),
]

# Bounces of Ada's address, sent to Acme's sender address, that name no message of ours.
FORGED_BOUNCES = [
    pytest.param(corpus("dsn_postfix_550_511.eml"), id="postfix-dsn-naming-a-message-not-ours"),
    pytest.param(corpus("dsn_postfix_550_511.eml", strip_original=True), id="postfix-dsn-naming-no-message"),
    pytest.param(corpus("dsn_exim_550.eml", strip_original=True), id="exim-dsn-naming-no-message"),
    pytest.param(corpus("dsn_exchange_550_511.eml", strip_original=True), id="exchange-dsn-naming-no-message"),
    pytest.param(corpus("dsn_gmail_550_511.eml", strip_original=True), id="gmail-dsn-naming-no-message"),
    pytest.param(corpus("bounce_nonstandard_qmail.eml"), id="qmail-bounce-naming-a-message-not-ours"),
    pytest.param(corpus("bounce_nonstandard_qmail.eml", strip_original=True), id="qmail-bounce-naming-no-message"),
]


# Mails to Acme's sender address whose headers or structure the email package (or
# flufl.bounce) fails on, and what the webhook makes of them.
MALFORMED = [
    pytest.param(b"From: Ada <\nTo: sales@acme.example\n\nhi\n", "unrouted", "reply", id="from-cut-short"),
    pytest.param(
        b"From: ada@client.example\nTo: sales@acme.example\nMessage-ID: <\n\nhi\n",
        "recorded",
        "reply",
        id="lone-angle-id",
    ),
    pytest.param(b"From: ada@client.example\nTo: Sales <\n\nhi\n", "unrouted", "reply", id="to-cut-short"),
    pytest.param(
        b"From: ada@client.example\nTo: sales@acme.example\nContent-Type: multipart/mixed; boundary=x\n\n"
        b"--x\nContent-Type: multipart/related\n\nhi\n--x--\n",
        "recorded",
        "reply",
        id="related-part-without-boundary",
    ),
    pytest.param(
        b"Return-Path: <>\nTo: sales@acme.example\nContent-Type: multipart/mixed; boundary=x\n\n--x--\n",
        "unrouted",
        "auto_reply",
        id="empty-return-path-without-from",
    ),
    pytest.param(
        b"From: ada@client.example\nTo: sales@acme.example\n\nh\x00i\n", "recorded", "reply", id="nul-in-body"
    ),
    pytest.param(
        b"From: ada@client.example\nTo: sales@acme.example\nSubject: =?utf-8?q?a=00b?=\n"
        b"Content-Transfer-Encoding: base64\n\naABp\n",
        "recorded",
        "reply",
        id="nul-encoded-in-subject-and-body",
    ),
    pytest.param(
        to_acme("Content-Type: text/plain; charset*0*=utf-8''x; charset*"), "recorded", "reply", id="param-unnumbered"
    ),
    pytest.param(
        to_acme("Content-Type: multipart/mixed; boundary*0*=x; boundary*", "--x\nhello\n--x--"),
        "recorded",
        "reply",
        id="boundary-unnumbered",
    ),
]


# Replies from Ada to Acme whose headers or body cost the email package (or a regex)
# time quadratic in their length, each seconds of CPU before: each is recorded, cheaply.
HEAVY = [
    pytest.param(to_acme("Cc: " + ", ".join(f"P {i} <p{i}@c{i % 50}.example>" for i in range(20_000))), id="cc-20000"),
    pytest.param(to_acme("".join(f"Cc: p{i}@c.example\n" for i in range(20_000)).strip()), id="cc-20000-fields"),
    pytest.param(
        to_acme("Delivered-To: " + ", ".join(f"p{i}@c.example" for i in range(20_000))), id="delivered-to-20000"
    ),
    pytest.param(to_acme("Subject: " + "word " * 200_000), id="subject-of-200000-words"),
    pytest.param(
        to_acme("Content-Type: text/plain; " + "; ".join(f"a{i}=b" for i in range(10_000))),
        id="content-type-10000-parameters",
    ),
    pytest.param(
        to_acme("Content-Type: text/plain; " + "; ".join(f"a*{i}*=b" for i in range(10_000))),
        id="content-type-10000-continuations",
    ),
    pytest.param(to_acme("Content-Type: text/html", "<p>hello</p>" + "<style>x" * 20_000), id="html-20000-open-styles"),
    pytest.param(to_acme("Content-Type: text/html", "<p>hello</p>" + "<x" * 100_000), id="html-100000-open-tags"),
    pytest.param(to_acme("In-Reply-To: <" + "@" * 50_000), id="in-reply-to-of-50000-at-signs"),
]


# Where a reply from Ada, a prospect of Acme and of Globex, is recorded: in each
# organization whose sender address it was sent to, never one guessed between them
# ({ours}: the Message-ID of Acme's email to Ada).
ROUTES = [
    pytest.param("To: sales@acme.example\nCc: sales@globex.example", ["Acme", "Globex"], id="to-acme-cc-globex"),
    pytest.param(
        "To: sales@globex.example\nCc: Sales <SALES@ACME.EXAMPLE>", ["Acme", "Globex"], id="to-globex-cc-acme"
    ),
    pytest.param(
        "Delivered-To: sales@globex.example\nTo: sales@acme.example", ["Acme", "Globex"], id="envelope-globex"
    ),
    pytest.param("Delivered-To: sales@globex.example\nTo: team@client.example", ["Globex"], id="bcc-to-globex"),
    pytest.param(
        "In-Reply-To: {ours}\nTo: team@client.example\nCc: sales@globex.example", ["Acme", "Globex"], id="thread"
    ),
    pytest.param("In-Reply-To: {ours}\nTo: team@client.example", ["Acme"], id="threaded-to-acme-alone"),
    pytest.param("To: team@client.example", [], id="to-neither"),
]


# recordInboundMessage and recordBounce with more than a received email holds (its
# text, a subject line, an SMTP reply): INVALID_INPUT naming the field, nothing recorded.
API = [
    pytest.param("recordInboundMessage", {"channel": "EMAIL", "from": "ada@client.example", "body": "x" * 100_001},
                 "body", id="email-body-of-100001-characters"),
    pytest.param("recordInboundMessage", {"channel": "SMS", "from": "+12025550143", "body": "x" * 1_000_000},
                 "body", id="sms-body-of-a-million-characters"),
    pytest.param("recordInboundMessage", {"channel": "EMAIL", "from": "ada@client.example", "body": "hi",
                                          "subject": "s" * 999}, "subject", id="subject-of-999-characters"),
    pytest.param("recordBounce", {"email": "ada@client.example", "type": "HARD", "reason": "r" * 1001},
                 "reason", id="bounce-reason-of-1001-characters"),
]  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "INBOUND_EMAIL_TOKEN": TOKEN})


@pytest.mark.parametrize(("method", "path", "body", "status"), REQUESTS)
async def test_a_request_anyone_can_send_gets_a_4xx(
    client: httpx.AsyncClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}
    answer = await client.request(method, path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    if status == 404:
        unknown = await client.request(method, "/no-such-page")
        assert (answer.text, answer.headers["content-type"]) == (unknown.text, unknown.headers["content-type"])
    else:
        assert set(answer.json()) == {"error"}
    assert await Message.all().count() == 0


@pytest.mark.parametrize("raw", FORGED_BOUNCES)
async def test_a_bounce_that_names_none_of_our_messages_is_unrouted(
    client: httpx.AsyncClient, org: Org, clock: FrozenClock, settings: Settings, raw: bytes
) -> None:
    await send_from(org, clock, settings, "sales@acme.example")
    [enrollment] = await setup(org, clock)  # Ada, ada@client.example
    stage = enrollment.stage
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}

    answer = await client.post("/webhooks/email/inbound", content=raw, headers=headers)

    assert answer.json() == {"result": "unrouted", "kind": "bounce"}
    prospect = await Prospect.get(id=enrollment.prospect_id)
    await enrollment.refresh_from_db()
    assert (prospect.opted_out_channels, enrollment.stage, enrollment.finished_at) == ([], stage, None)
    assert await Message.filter(direction="INBOUND").count() == 0


@pytest.mark.parametrize(("raw", "result", "kind"), MALFORMED)
async def test_a_malformed_mail_is_read_as_far_as_it_goes(
    client: httpx.AsyncClient, org: Org, clock: FrozenClock, settings: Settings, raw: bytes, result: str, kind: str
) -> None:
    await send_from(org, clock, settings, "sales@acme.example")
    await setup(org, clock)  # Ada, ada@client.example
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}

    answer = await client.post("/webhooks/email/inbound", content=raw, headers=headers)

    assert answer.json() == {"result": result, "kind": kind}
    received = await Message.filter(direction="INBOUND")
    assert len(received) == (result == "recorded")
    assert all("\x00" not in f"{m.subject}{m.body}{m.external_id}" for m in received)


async def test_a_reply_with_overlong_addresses_and_ids_is_recorded_cut_to_size(
    client: httpx.AsyncClient, org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    [enrollment] = await setup(org, clock, steps=[StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi")])
    settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data")})
    [message_id] = (await scheduler.run_pass(clock)).queued
    transports = sending.transports_for(settings)
    assert await sending.send(message_id, transports=transports, settings=settings, clock=clock) == "SENT"
    ours = (await Message.get(id=message_id)).external_id or ""
    raw = (
        f"From: {'a' * 400}@client.example\nTo: sales@acme.example\nMessage-ID: <{'m' * 300}@x.example>\n"
        f"In-Reply-To: {ours}\nSubject: re\n\nhello\n"
    ).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}

    answer = await client.post("/webhooks/email/inbound", content=raw, headers=headers)

    assert answer.json() == {"result": "recorded", "kind": "reply"}
    [reply] = await Message.filter(direction="INBOUND")
    assert (len(reply.from_address or ""), reply.external_id, reply.prospect_id) == (320, None, enrollment.prospect_id)


@pytest.mark.parametrize("raw", HEAVY)
async def test_a_mail_with_huge_headers_is_recorded_in_little_cpu_time(
    client: httpx.AsyncClient, org: Org, clock: FrozenClock, settings: Settings, raw: bytes
) -> None:
    await send_from(org, clock, settings, "sales@acme.example")
    [enrollment] = await setup(org, clock)  # Ada, ada@client.example
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}

    started = time.process_time()
    answer = await client.post("/webhooks/email/inbound", content=raw, headers=headers)
    cpu = time.process_time() - started

    assert answer.json() == {"result": "recorded", "kind": "reply"}
    assert cpu < 1, f"{cpu:.2f} s of CPU"
    [reply] = await Message.filter(direction="INBOUND")
    assert reply.prospect_id == enrollment.prospect_id and "hello" in reply.body


async def test_a_mail_that_takes_longer_to_read_than_its_budget_is_refused(
    tmp_path: Path, org: Org, clock: FrozenClock
) -> None:
    settings = Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path / "data"), "INBOUND_EMAIL_TOKEN": TOKEN, "INBOUND_EMAIL_READ_SECONDS": "0.1"}
    )
    # Short lines nested 19 deep: each line is checked against every boundary (~2 s unbounded).
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(19))
    closing = "".join(f"--b{i}--\n" for i in reversed(range(19)))
    raw = to_acme(opening + "Content-Type: text/plain", "a\n" * 1_000_000 + closing)
    app = create_app(settings, clock=clock, manage_resources=False)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leadline.test") as client:
        started = time.process_time()
        answer = await client.post("/webhooks/email/inbound", content=raw, headers=headers)
        cpu = time.process_time() - started

    assert (answer.status_code, answer.json()) == (
        422,
        {"error": "Reading the email took more than 0.1 s of CPU time."},
    )
    assert cpu < 0.5, f"{cpu:.2f} s of CPU"
    assert await Message.all().count() == 0


async def test_health_answers_while_an_email_is_read(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The email is read off the event loop: /healthz answers while a mail is being
    read (held in reading here until it has; read on the loop, it would wait 5 s)."""
    await send_from(org, clock, settings, "sales@acme.example")
    await setup(org, clock)
    reading, healthy = threading.Event(), threading.Event()
    classify = inbound_email.classify

    def held(raw: bytes, **options: float) -> inbound_email.Classified:
        reading.set()
        healthy.wait(timeout=5)
        return classify(raw, **options)

    monkeypatch.setattr(inbound_email, "classify", held)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}
    async with httpx.AsyncClient(base_url=live_server) as http:
        posted = asyncio.create_task(http.post("/webhooks/email/inbound", content=to_acme(""), headers=headers))
        assert await asyncio.to_thread(reading.wait, 5)
        health = await http.get("/healthz")
        answered_while_reading = not posted.done()
        healthy.set()
        answer = await posted

    assert (health.status_code, answered_while_reading) == (200, True)
    assert answer.json() == {"result": "recorded", "kind": "reply"}


async def _acme_and_globex(org: Org, other_org: Org, clock: FrozenClock, settings: Settings) -> None:
    """Both send from their sales@ address, and both have Ada (ada@client.example) enrolled."""
    for each, address in ((org, "sales@acme.example"), (other_org, "sales@globex.example")):
        await send_from(each, clock, settings, address)
        await setup(each, clock, steps=[StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi")])


async def _recorded_in() -> list[str]:
    received = await Message.filter(direction="INBOUND").order_by("organization_id")
    names = dict(await Organization.all().values_list("id", "name"))
    for message in received:
        prospect = await Prospect.get(id=message.prospect_id)
        assert (prospect.organization_id, prospect.email) == (message.organization_id, "ada@client.example")
    return [names[m.organization_id] for m in received]


@pytest.mark.parametrize(("headers", "organizations"), ROUTES)
async def test_a_mail_sent_to_two_organizations_is_recorded_in_each(
    client: httpx.AsyncClient,
    org: Org,
    other_org: Org,
    clock: FrozenClock,
    settings: Settings,
    headers: str,
    organizations: list[str],
) -> None:
    await _acme_and_globex(org, other_org, clock, settings)
    if "{ours}" in headers:
        await scheduler.run_pass(clock)
        ours = await Message.get(organization_id=org.id, direction="OUTBOUND")
        transports = sending.transports_for(settings)
        assert await sending.send(ours.id, transports=transports, settings=settings, clock=clock) == "SENT"
        headers = headers.format(ours=(await Message.get(id=ours.id)).external_id)
    raw = f"From: Ada <ada@client.example>\n{headers}\nMessage-ID: <reply.1@client.example>\n\nhello\n".encode()
    post = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}

    answer = await client.post("/webhooks/email/inbound", content=raw, headers=post)

    assert answer.json() == {"result": "recorded" if organizations else "unrouted", "kind": "reply"}
    assert await _recorded_in() == organizations


async def test_a_mail_delivered_once_per_organization_is_recorded_once_in_each(
    client: httpx.AsyncClient, org: Org, other_org: Org, clock: FrozenClock, settings: Settings
) -> None:
    """Bcc'd to both, so each delivery names one organization (its Delivered-To): one
    Message-ID, recorded by each; a delivery repeated is a duplicate."""
    await _acme_and_globex(org, other_org, clock, settings)
    post = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}
    results = []
    for envelope in ("sales@acme.example", "sales@globex.example", "sales@globex.example"):
        raw = f"Delivered-To: {envelope}\nFrom: ada@client.example\nTo: team@client.example\nMessage-ID: <r@c>\n\nhi\n"
        answer = await client.post("/webhooks/email/inbound", content=raw.encode(), headers=post)
        results.append(answer.json()["result"])

    assert results == ["recorded", "recorded", "duplicate"]
    assert await _recorded_in() == ["Acme", "Globex"]


async def test_a_mail_recorded_before_receipt_keys_named_the_organization_is_not_recorded_again(
    client: httpx.AsyncClient, org: Org, other_org: Org, clock: FrozenClock, settings: Settings
) -> None:
    await _acme_and_globex(org, other_org, clock, settings)
    post = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}
    raw = b"From: ada@client.example\nTo: sales@acme.example\nMessage-ID: <r@c>\n\nhi\n"
    assert (await client.post("/webhooks/email/inbound", content=raw, headers=post)).json()["result"] == "recorded"
    await Message.filter(direction="INBOUND").update(receipt_key="email:<r@c>")  # as recorded before the upgrade

    again = await client.post("/webhooks/email/inbound", content=raw, headers=post)
    copied = raw.replace(b"\n\n", b"\nCc: sales@globex.example\n\n")
    copied_again = await client.post("/webhooks/email/inbound", content=copied, headers=post)

    assert [again.json()["result"], copied_again.json()["result"]] == ["duplicate", "recorded"]
    assert await _recorded_in() == ["Acme", "Globex"]


@pytest.mark.parametrize(("mutation", "values", "field"), API)
async def test_a_message_recorded_through_the_api_is_no_larger_than_a_mail(
    gql: GraphQL, org: Org, clock: FrozenClock, mutation: str, values: dict[str, str], field: str
) -> None:
    [enrollment] = await setup(org, clock)  # Ada, ada@client.example, +12025550143

    payload = await mutate(gql, org.tokens[Role.MANAGER], mutation, "prospect { id }", **values)

    [refused] = payload["errors"]
    assert (refused["code"], refused["field"]) == ("INVALID_INPUT", ["input", field])
    assert await Message.filter(direction="INBOUND").count() == 0
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert (prospect.conversation_state, prospect.opted_out_channels) == ("NEW", [])
