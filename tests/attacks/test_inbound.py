"""Inbound webhooks and unsubscribe links: requests anyone can send (a mail
nested a thousand deep, an unsubscribe token that is no token) (R6, R15)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.messaging.models import Message

TOKEN = "inbound-token-for-tests"


def nested_multiparts(depth: int) -> bytes:
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth))
    closing = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    return f"From: x@y.example\nTo: sales@acme.example\n{opening}Content-Type: text/plain\n\nhi\n{closing}".encode()


def nested_messages(depth: int) -> bytes:
    return (
        "From: x@y.example\nTo: sales@acme.example\n" + "Content-Type: message/rfc822\n\n" * depth + "hi\n"
    ).encode()


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
