"""Prometheus metrics (SPEC: /metrics; issue 24 item 3) and JSON log lines: the
API's /metrics in-process and across API processes, the worker's own port, and
what LOG_FORMAT=json writes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import presets
from app.clock import FrozenClock
from app.config import Settings
from app.observability import metrics
from app.sequences import service as sequences
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from app.web import create_app
from tests.conftest import Org
from tests.live_processes import Processes, free_port, stop_all
from tests.smtp_sink import smtp_sink
from tests.test_engine_e2e import eventually, one_email_to_many
from tests.test_live import SET_STATUS, STATUS, create_prospect, organization, status_id
from tests.test_mailbox_limits import mailbox, queue, send_all
from tests.ws_client import connect

VIEWER = "query Viewer { viewer { id } }"
BAD_VARIABLE = "query Page($first: Int!) { prospects(first: $first) { totalCount } }"
UNPARSABLE = "query Broken { viewer {"
REQUESTS = "leadline_graphql_requests_total"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


async def post(client: httpx.AsyncClient, token: str, query: str, **variables: object) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {token}"}
    )


async def test_a_named_query_is_counted_and_timed_by_name_and_outcome(client: httpx.AsyncClient, org: Org) -> None:
    token = next(iter(org.tokens.values()))
    before = await scrape(client)

    assert (await post(client, token, VIEWER)).json()["data"]["viewer"]["id"]
    assert "errors" in (await post(client, token, BAD_VARIABLE, first="ten")).json()
    assert (await post(client, token, UNPARSABLE)).json()["errors"]
    assert (await client.post("/graphql", json={"query": VIEWER})).status_code == 401

    after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(REQUESTS, operation="Viewer", type="query", outcome="ok") == 1
    assert grew("leadline_graphql_request_duration_seconds_count", operation="Viewer", type="query") == 1
    assert grew(REQUESTS, operation="Page", type="query", outcome="error") == 1
    # Without a document, the name is the one the request gives, if any.
    assert grew(REQUESTS, operation="anonymous", type="unknown", outcome="refused") == 1
    assert grew("leadline_graphql_unauthenticated_total", transport="http") == 1
    # No other outcome moved: each request was counted once.
    moved = {key for key, count in after.items() if key[0] == REQUESTS and count != before.get(key, 0.0)}
    assert len(moved) == 3, moved


async def test_operation_names_are_bounded_labels(
    client: httpx.AsyncClient, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "operation_labels", metrics._Labels(2))
    token = next(iter(org.tokens.values()))
    before = await scrape(client)
    for name in ("First", "Second", "Third", "x" * 65, "Second"):
        assert (await post(client, token, f"query {name} {{ viewer {{ id }} }}")).status_code == 200
    await post(client, token, "{ viewer { id } }")
    after = await scrape(client)

    def grew(operation: str) -> float:
        labels = {"operation": operation, "type": "query", "outcome": "ok"}
        return value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels)

    assert [grew(name) for name in ("First", "Second", "other", "anonymous")] == [1, 2, 2, 1]
    assert not any(("operation", "Third") in labels for _, labels in after)


def test_operation_labels_keep_only_graphql_names_of_64_characters() -> None:
    labels = metrics._Labels(100)
    assert labels.of(None) == labels.of("") == "anonymous"
    assert labels.of("_ok_1") == "_ok_1" and labels.of("a" * 64) == "a" * 64
    assert labels.of("a" * 65) == labels.of("1st") == labels.of('x"}\n') == labels.of("é") == "other"


async def test_metrics_need_the_token_when_one_is_set_and_are_closed_in_production_without(
    db: None, tmp_path: Path, clock: FrozenClock
) -> None:
    production = {"LEADLINE_DATA_DIR": str(tmp_path), "LEADLINE_ENV": "production", "SECRET_KEY": "k" * 40}
    cases = [
        (production, {}, 403),
        ({**production, "METRICS_PUBLIC": "1"}, {}, 200),
        ({**production, "METRICS_TOKEN": "s3cret"}, {}, 401),
        ({**production, "METRICS_TOKEN": "s3cret"}, {"Authorization": "Bearer wrong"}, 401),
        ({**production, "METRICS_TOKEN": "s3cret", "METRICS_PUBLIC": "1"}, {}, 401),
        ({**production, "METRICS_TOKEN": "s3cret"}, {"Authorization": "Bearer s3cret"}, 200),
        ({"LEADLINE_DATA_DIR": str(tmp_path)}, {}, 200),  # development
    ]
    for environ, headers, status in cases:
        app = create_app(Settings.from_env(environ), clock=clock, manage_resources=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
            response = await client.get("/metrics", headers=headers)
        assert response.status_code == status, (environ, headers, response.text)
        if status == 403:
            assert "METRICS_TOKEN" in response.text and "METRICS_PUBLIC" in response.text


async def _metrics(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        return await scrape(client)


async def test_api_processes_sum_their_metrics_and_subscriptions_open_go_up_and_down(
    database: str, tmp_path: Path
) -> None:
    """Two `serve` processes and a worker sharing PROMETHEUS_MULTIPROC_DIR, with JSON logs."""
    _, token = await organization("Acme")
    shared = tmp_path / "prometheus"
    shared.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "LEADLINE_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database,
        "SCHEDULER_INTERVAL": "0.2",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "LOG_FORMAT": "json",
    }
    live = Processes(env=env, logs=logs)
    try:
        await live.serve()
        await live.serve()
        await live.start("worker")
        async with connect(live.ws(1), token) as subscriber:
            operation = await subscriber.subscribe(STATUS)
            await eventually(lambda: _gauge(live.apis[0], 1), seconds=10)  # summed: seen from the other process

            prospect = await create_prospect(live, 0, token, "Ada")  # ada@client.example
            contact_made = await status_id(live, token, "Contact Made")
            await live.graphql(0, token, SET_STATUS, input={"id": prospect, "statusId": contact_made})
            assert (await subscriber.next_data(operation))["prospectStatusChanged"]["to"] == {"name": "Contact Made"}
            await live.graphql(0, token, VIEWER)
            await live.graphql(1, token, VIEWER)

            scraped = await _metrics(live.apis[0])
            assert value(scraped, REQUESTS, operation="Viewer", type="query", outcome="ok") == 2  # one each
            assert value(scraped, "leadline_live_deliveries_total") == 1
            assert value(scraped, "leadline_subscriptions_open") == 1
            assert not any(name.startswith("leadline_messages") for name, _ in scraped)  # the worker's own

            await subscriber.complete(operation)
            await eventually(lambda: _gauge(live.apis[1], 0), seconds=10)
        scraped = await _metrics(live.apis[1])
        assert value(scraped, REQUESTS, operation="anonymous", type="subscription", outcome="ok") == 1
    finally:
        stopped = await stop_all(live.children)
        for child, stderr in zip(live.children, stopped, strict=True):
            assert child.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
    # A stopped process's live gauge files go (mark_process_dead), its counters stay.
    assert not list(shared.glob("gauge_livesum_*.db")) and list(shared.glob("counter_*.db"))

    lines = [line for log in sorted(logs.glob("serve-*.log")) for line in log.read_text().splitlines()]
    assert lines
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in parsed)
    viewer = [entry for entry in parsed if entry.get("operation") == "Viewer"]
    assert viewer and viewer[0]["logger"] == "uvicorn.access" and viewer[0]["path"] == "/graphql", parsed
    access = [entry for entry in parsed if entry["logger"] == "uvicorn.access"]
    assert not any("127.0.0.1" in json.dumps(entry) for entry in access)  # no client address
    assert "ada@client.example" not in "\n".join(lines) and "boss@acme.example" not in "\n".join(lines)


async def _gauge(base: str, expected: float) -> bool:
    return value(await _metrics(base), "leadline_subscriptions_open") == expected


async def test_the_worker_serves_its_metrics_on_its_own_port(database: str, tmp_path: Path) -> None:
    await one_email_to_many(30, active=True)
    port = free_port()
    with smtp_sink() as (sink, smtp_url):
        env = {
            **os.environ,
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": database,
            "SMTP_URL": smtp_url,
            "SCHEDULER_INTERVAL": "0.2",
            "WORKER_METRICS_PORT": str(port),
            "METRICS_TOKEN": "scrape-me",
        }
        live = Processes(env=env)
        try:
            await live.start("worker")
            await eventually(lambda: _received(sink.recipients, 30), seconds=60)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                assert (await client.get("/metrics")).status_code == 401

                async def counted() -> bool:
                    scraped = await scrape(client, Authorization="Bearer scrape-me")
                    return value(scraped, "leadline_messages_total", channel="EMAIL", state="SENT") == 30

                await eventually(counted, seconds=10)
                scraped = await scrape(client, Authorization="Bearer scrape-me")
                assert (await client.get("/other", headers={"Authorization": "Bearer scrape-me"})).status_code == 404
        finally:
            stopped = await stop_all(live.children)
    assert live.children[0].returncode == 0, stopped[0].decode()[-2000:]
    assert value(scraped, "leadline_scheduler_pass_duration_seconds_count") > 0
    assert value(scraped, "leadline_enrollments_due") == 0
    assert value(scraped, "leadline_enrollments_oldest_due_seconds") == 0
    assert value(scraped, "leadline_webhook_deliveries_pending") == 0
    assert value(scraped, "leadline_backlog_read_failed") == 0
    assert ("leadline_relay_lag_seconds", frozenset()) in scraped
    assert value(scraped, "leadline_messages_deferred_total") == 0
    assert not any(name.startswith("leadline_graphql") for name, _ in scraped)


async def _received(recipients: list[str], count: int) -> bool:
    return len(recipients) >= count


async def test_the_backlog_counts_due_enrollments_and_the_relay_lag(db: None, clock: FrozenClock, org: Org) -> None:
    from app.events.models import Event
    from app.observability import backlog
    from app.prospects import service as prospects
    from app.sequences import enrollments

    admin = org.actor(next(iter(org.users)), clock)
    await presets.apply(actor=admin, name="lead-workflow")
    sequence = await sequences.create_sequence(
        actor=admin,
        name="Later",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        active=True,
        steps=[StepSpec(StepType.EMAIL, 0, body="Hi", subject="Hi")],
    )
    made, errors = await prospects.create_prospects(
        actor=admin, inputs=[{"first_name": f"P{i}", "email": f"p{i}@client.example"} for i in range(3)]
    )
    assert not errors
    await enrollments.enroll(actor=admin, sequence_id=sequence.id, prospect_ids=[p.id for p in made], activate=None)
    clock.advance(90)

    found = await backlog.read(clock)

    assert found.due_enrollments == 3 and 89 <= found.oldest_due_seconds <= 91
    oldest = await Event.filter(seq=None).order_by("id").first()
    assert oldest is not None
    assert found.relay_lag_seconds == pytest.approx((clock.now() - oldest.at).total_seconds())
    assert (found.webhooks_pending, found.webhooks_dead) == (0, 0)


def test_a_json_log_line_names_no_address_and_quotes_no_exception() -> None:
    import logging

    from app.observability import logs

    formatter = logs.JsonFormatter()
    try:
        raise ValueError("duplicate key (email)=(ada@client.example)")
    except ValueError as error:
        failed = logging.LogRecord(
            "leadline.worker",
            logging.ERROR,
            __file__,
            1,
            "pass failed",
            None,
            (type(error), error, error.__traceback__),
        )
    said = logging.LogRecord(
        "leadline.twilio",
        logging.WARNING,
        __file__,
        1,
        "reply from %s or %s",
        ("ada@client.example", "+1 415 555 0100"),
        None,
    )
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.1.2.3:5555", "GET", "/u/secret-token?x=1", "1.1", 200),
        None,
    )
    token = logs.operation_name.set("Viewer")
    try:
        lines = [json.loads(formatter.format(record)) for record in (failed, said, access)]
    finally:
        logs.operation_name.reset(token)

    assert lines[0]["exception"] == "ValueError" and lines[0]["at"] and lines[0]["operation"] == "Viewer"
    assert lines[1]["message"] == "reply from [email] or [phone]"
    assert (lines[2]["path"], lines[2]["status"]) == ("/u/[token]", 200)
    text = json.dumps(lines)
    assert "ada@" not in text and "555" not in text and "secret-token" not in text and "10.1.2.3" not in text


async def test_sends_are_counted_by_channel_and_state_and_deferrals_once_each(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    from app.accounts.models import Organization, Role
    from app.observability.metrics import WORKER

    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")

    def now() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        from prometheus_client import generate_latest

        return samples(generate_latest(WORKER).decode())

    before = now()
    box = await mailbox(org.id, clock, daily_limit=2)
    await queue(org.actor(Role.ADMIN, clock), box, ["a@x.example", "b@x.example", "c@x.example"], clock.now())

    await send_all(clock, settings)  # two go, the third waits for tomorrow

    after = now()
    sent = {"channel": "EMAIL", "state": "SENT"}
    assert value(after, "leadline_messages_total", **sent) - value(before, "leadline_messages_total", **sent) == 2
    assert value(after, "leadline_messages_deferred_total") - value(before, "leadline_messages_deferred_total") == 1
    assert value(after, "leadline_messages_total", channel="EMAIL", state="QUEUED") == value(
        before, "leadline_messages_total", channel="EMAIL", state="QUEUED"
    )  # a deferred message is not an attempt


MARK_DNC = """mutation MarkDnc($input: MarkDoNotContactInput!) {
  markDoNotContact(input: $input) { errors { code } } }"""
CREATE_PROSPECT = """mutation CreateOne($input: CreateProspectInput!) {
  createProspect(input: $input) { prospect { id } errors { message } } }"""


async def test_a_masked_error_is_an_internal_error_logged_as_json_with_its_operation_and_no_address(
    client: httpx.AsyncClient, org: Org, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from app.accounts.models import Role
    from app.observability import logs
    from app.prospects import service as prospect_service

    token = org.tokens[Role.ADMIN]
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    created = await post(
        client, token, CREATE_PROSPECT, input={"prospect": {"firstName": "Pat", "email": "pat@client.example"}}
    )
    prospect = created.json()["data"]["createProspect"]["prospect"]["id"]

    async def broken(**kwargs: object) -> None:
        raise RuntimeError("duplicate key: SELECT * FROM prospect WHERE email = 'pat@client.example'")

    monkeypatch.setattr(prospect_service, "mark_do_not_contact", broken)
    lines: list[str] = []
    handler = logging.Handler()
    handler.setFormatter(logs.JsonFormatter())
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("leadline.graphql")
    logger.addHandler(handler)
    before = await scrape(client)
    try:
        body = (await post(client, token, MARK_DNC, input={"id": prospect, "doNotContact": True})).json()
    finally:
        logger.removeHandler(handler)
    after = await scrape(client)

    assert body["errors"][0]["message"] == "Unexpected error."
    labels = {"operation": "MarkDnc", "type": "mutation", "outcome": "internal_error"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 1
    logged = [json.loads(line) for line in lines]
    assert [(entry["level"], entry["operation"]) for entry in logged] == [("ERROR", "MarkDnc")]
    assert "RuntimeError" in logged[0]["message"] and "pat@" not in lines[0] and "SELECT" not in lines[0]
