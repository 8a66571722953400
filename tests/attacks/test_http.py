"""HTTP bodies: what a client may send to each POST endpoint.
A body is too large (413), or not the JSON a GraphQL request is (400); either way
the answer is JSON saying what is wrong, never a 500."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from starlette.types import Message

from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.limits import KIB, MIB
from app.web import create_app
from tests.conftest import Org

VIEWER = "{ viewer { id } }"
CREATE = "mutation($input: CreateProspectInput!) { createProspect(input: $input) { errors { code field } } }"


def nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def graphql(query: str, variables: bytes = b"{}") -> bytes:
    return b'{"query": ' + json.dumps(query).encode() + b', "variables": ' + variables + b"}"


JSON = "application/json"
# path, content type, body (bytes, or a size: that many bytes of "x"), status, what the error says
BODIES = [
    pytest.param("/graphql", JSON, b'"hello"', 400, "JSON object with a `query`, not a string", id="a-string"),
    pytest.param("/graphql", JSON, b"null", 400, "JSON object with a `query`, not null", id="null"),
    pytest.param("/graphql", JSON, b"[1, 2]", 400, "JSON object with a `query`, not an array", id="an-array"),
    pytest.param("/graphql", JSON, b"42", 400, "JSON object with a `query`, not a number", id="a-number"),
    pytest.param("/graphql", JSON, b'{"query": "\xff"}', 400, "The body is not UTF-8 (byte 11)", id="invalid-utf-8"),
    pytest.param("/graphql", JSON, b'{"query": "\xed\xa0\x80"}', 400, "not UTF-8", id="utf-8-encoded-surrogate"),
    pytest.param("/graphql", JSON, b'{"query": ', 400, "The body is not JSON: Expecting value", id="truncated"),
    pytest.param("/graphql", JSON, graphql(VIEWER, b'{"v": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"), 400,
                 "nested too deeply", id="variables-10000-deep"),
    pytest.param("/graphql", JSON, graphql(CREATE, b'{"input": {"customFields": ' + nested(5_000) + b"}}"), 400,
                 "nested too deeply", id="custom-fields-5000-deep"),
    pytest.param("/graphql", JSON, graphql(CREATE, b'{"input": {"firstName": "\\ud800"}}'), 400,
                 "lone surrogate, which is not text, at variables.input.firstName", id="lone-surrogate"),
    pytest.param("/graphql", JSON, graphql(CREATE, b'{"input": {"customFields": {"\\udfff": 1}}}'), 400,
                 "lone surrogate, which is not text, at variables.input.customFields.\\udfff", id="lone-surrogate-key"),
    pytest.param("/graphql", JSON, graphql(CREATE, b'{"input": {"firstName": "Ada\\u0000"}}'), 400,
                 "NUL character (\\u0000), which text may not hold, at variables.input.firstName", id="nul"),
    pytest.param("/graphql", JSON, graphql(VIEWER, b'{"n": NaN}'), 400, "NaN is not a JSON number", id="nan"),
    pytest.param("/graphql", JSON, graphql(VIEWER, b'{"n": -Infinity}'), 400, "-Infinity is not a JSON number",
                 id="infinity"),
    pytest.param("/graphql", JSON, graphql(VIEWER, b'{"n": 1e400}'), 400, "a number too large to hold: 1e400",
                 id="number-past-a-double"),
    pytest.param("/graphql", JSON, graphql(VIEWER, b'{"n": ' + b"9" * 5_000 + b"}"), 400,
                 "a number of more than 4,300 digits", id="number-of-5000-digits"),
    pytest.param("/graphql", JSON, graphql(VIEWER, b'"x"'), 400, "`variables` must be an object", id="variables-text"),
    pytest.param("/graphql", "text/plain", graphql(VIEWER), 400, "Unsupported content type", id="not-json"),
    pytest.param("/graphql", JSON, MIB + 1, 413, "larger than 1,048,576 bytes", id="graphql-over-1-mib"),
    pytest.param("/webhooks/email/inbound", "message/rfc822", 25 * MIB + 1, 413, "larger than 26,214,400 bytes",
                 id="email-over-25-mib"),
    pytest.param("/webhooks/twilio/sms", "application/x-www-form-urlencoded", 64 * KIB + 1, 413,
                 "larger than 65,536 bytes", id="twilio-sms-over-64-kib"),
    pytest.param("/webhooks/twilio/status", "application/x-www-form-urlencoded", 64 * KIB + 1, 413,
                 "larger than 65,536 bytes", id="twilio-status-over-64-kib"),
    pytest.param("/u/any-token", "application/x-www-form-urlencoded", 4 * KIB + 1, 413, "larger than 4,096 bytes",
                 id="unsubscribe-over-4-kib"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "content_type", "body", "status", "says"), BODIES)
async def test_a_bad_body_gets_a_json_4xx(
    client: httpx.AsyncClient, org: Org, path: str, content_type: str, body: bytes | int, status: int, says: str
) -> None:
    response = await client.post(
        path,
        content=b"x" * body if isinstance(body, int) else body,
        headers={"Authorization": f"Bearer {org.tokens[Role.AGENT]}", "Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    answer = response.json()
    message = answer["errors"][0]["message"] if path == "/graphql" else answer["error"]
    assert says in message


async def test_a_body_without_content_length_is_not_read_past_the_cap(settings: Settings, clock: FrozenClock) -> None:
    app = create_app(settings, clock=clock, manage_resources=False)
    chunk, pulled, sent = b"x" * (64 * KIB), 0, list[Message]()

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}  # a body without end

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/twilio/sms",
        "raw_path": b"/webhooks/twilio/sms",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "app": app,
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert pulled == 2  # the chunk that passed 64 KiB was the last one read
    assert json.loads(sent[1]["body"]) == {"error": "The request body is larger than 65,536 bytes."}


async def test_a_declared_400_mb_body_is_refused_before_it_is_sent(live_server: str) -> None:
    host, port = live_server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 400000000\r\n\r\n" + b"x" * (64 * KIB)
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")
