"""Inbound webhooks and unsubscribe links: requests anyone can send (a mail
nested a thousand deep, an unsubscribe token that is no token) and bounces
anyone can forge (R6, R15)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.accounts import service as accounts
from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.messaging.models import Message
from app.prospects.models import Prospect
from tests.conftest import Org
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


def corpus(name: str, *, strip_original: bool = False) -> bytes:
    raw = (CORPUS / name).read_bytes()
    return re.sub(rb"(?im)^[\w-]*message-id: *" + re.escape(NOT_OURS) + rb"\r?\n", b"", raw) if strip_original else raw


# (method, path, body; the answer: 404 the same as any unknown page, 422 a JSON error)
REQUESTS = [
    pytest.param("POST", "/webhooks/email/inbound", nested_multiparts(1000), 422, id="email-multiparts-1000-deep"),
    pytest.param("POST", "/webhooks/email/inbound", nested_multiparts(21), 422, id="email-multiparts-21-deep"),
    pytest.param("POST", "/webhooks/email/inbound", nested_messages(1000), 422, id="email-attached-mails-1000-deep"),
    pytest.param("POST", "/webhooks/email/inbound", nested_messages(21), 422, id="email-attached-mails-21-deep"),
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
    client: httpx.AsyncClient, org: Org, clock: FrozenClock, raw: bytes
) -> None:
    changes = accounts.OrganizationChanges(email_from="sales@acme.example")
    await accounts.update_organization(actor=org.actor(Role.ADMIN, clock), changes=changes)
    [enrollment] = await setup(org, clock)  # Ada, ada@client.example
    stage = enrollment.stage
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}

    answer = await client.post("/webhooks/email/inbound", content=raw, headers=headers)

    assert answer.json() == {"result": "unrouted", "kind": "bounce"}
    prospect = await Prospect.get(id=enrollment.prospect_id)
    await enrollment.refresh_from_db()
    assert (prospect.opted_out_channels, enrollment.stage, enrollment.finished_at) == ([], stage, None)
    assert await Message.filter(direction="INBOUND").count() == 0
