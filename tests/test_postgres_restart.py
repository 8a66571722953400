"""Restarting PostgreSQL while the worker sends (SPEC's reliability bar): a real
`leadline worker` and `leadline serve` on a PostgreSQL cluster of the test's own,
restarted mid-send, fast and crash-style (immediate)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from app import db as app_db
from app import presets
from app.accounts import service as accounts
from app.accounts.models import Organization
from app.clock import SystemClock
from app.config import Settings
from app.messaging.models import Message, MessageState
from app.messaging.sending import CHUNK
from app.prospects import service as prospects
from app.redis import connected, locate
from app.sequences import enrollments
from app.sequences import service as sequences
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from tasks.worker import SEND_JOBS
from tests.conftest import remove_jobs, send_job_ids
from tests.live_processes import Processes, stop_all
from tests.postgres_cluster import Cluster, own_cluster
from tests.smtp_sink import smtp_sink
from tests.test_engine_e2e import eventually

PROSPECTS = 1500
STEPS = 2
RESTARTS = ("fast", "immediate", "fast", "immediate")
"""fast: sessions are told and ended, open transactions roll back; immediate: the
server dies and recovers from its WAL at start (what a crash does)."""
RECOVERY_SECONDS = 5.0
"""How soon after PostgreSQL accepts connections again the API must answer."""
REDIS_DATABASE = 13
"""This test's database on a shared REDIS_URL: its send jobs (ids of its own cluster's
messages) never reach another test's worker, nor another test's jobs its worker."""
VIEWER = "{ viewer { id } organization { name } }"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Cluster, str]]:
    """The cluster, and the URL of a database in it made by the migrations (connected)."""
    async with own_cluster() as cluster:
        server = await asyncpg.connect(cluster.url("postgres"))
        try:
            await server.execute('CREATE DATABASE "leadline"')
        finally:
            await server.close()
        url = cluster.url("leadline")
        await app_db.migrate(Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url}))
        async with TortoiseContext() as context:
            await context.init(config=app_db.tortoise_config(url))
            yield cluster, url


async def two_emails_to_many(count: int) -> tuple[str, list[int]]:
    """An organization with ``count`` prospects enrolled in an active sequence of two
    emails (subjects "Step 1", "Step 2"): its admin's token and the enrollments' ids."""
    clock = SystemClock()
    created = await accounts.create_organization(
        name="Acme", admin_email="boss@acme.example", admin_name=None, clock=clock
    )
    await Organization.filter(id=created.organization.id).update(email_from="sales@acme.example")
    admin = await accounts.authenticate(created.token, clock)
    assert admin is not None
    await presets.apply(actor=admin, name="lead-workflow")  # a default status for the prospects
    sequence = await sequences.create_sequence(
        actor=admin,
        name="Two emails",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        active=True,
        steps=[StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}", subject=f"Step {n}") for n in (1, 2)],
    )
    enrolled: list[int] = []
    for start in range(0, count, enrollments.MAX_BATCH):
        made, invalid = await prospects.create_prospects(
            actor=admin,
            inputs=[
                {"first_name": f"P{i}", "email": f"p{i}@client.example"}
                for i in range(start, min(count, start + enrollments.MAX_BATCH))
            ],
        )
        assert not invalid
        done, errors = await enrollments.enroll(
            actor=admin,
            sequence_id=sequence.id,
            prospect_ids=[p.id for p in made],
            activate=None,
        )
        assert not errors
        enrolled += [e.id for e in done]
    return created.token, enrolled


def redis_of_its_own(env: dict[str, str]) -> dict[str, str]:
    """``env`` with REDIS_URL (if any) naming REDIS_DATABASE."""
    if not env.get("REDIS_URL"):
        return env  # the embedded server of the data directory: the test's alone
    url = urlsplit(env["REDIS_URL"])
    return env | {"REDIS_URL": urlunsplit(url._replace(path=f"/{REDIS_DATABASE}"))}


async def answers(api: str, token: str) -> bool:
    """/readyz and a GraphQL query reading the database both answer 200 (without errors)."""
    try:
        async with httpx.AsyncClient(base_url=api, timeout=5) as client:
            ready = await client.get("/readyz")
            query = await client.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
    except httpx.TransportError:
        return False
    return ready.status_code == 200 and query.status_code == 200 and "errors" not in query.json()


@pytest.mark.postgres
async def test_restarting_postgres_mid_send_loses_no_step_and_sends_none_twice(
    cluster: tuple[Cluster, str], tmp_path: Path
) -> None:
    """Four restarts while sending 3,000 steps: zero duplicates at the sink, every
    step has one message, SENT and delivered (a chunk's outcomes are recorded once
    PostgreSQL is back; a claim whose reply was lost goes back to QUEUED, its
    attempt uncounted), none UNCERTAIN; the API answers again within seconds of
    each restart, the worker goes on sending, and its log has a warning line, not
    an error with a traceback, for each pass the database was away."""
    server, url = cluster
    began = time.monotonic()
    token, enrolled = await two_emails_to_many(PROSPECTS)
    total = PROSPECTS * STEPS
    logs = tmp_path / "logs"
    logs.mkdir()
    with smtp_sink() as (sink, smtp_url):
        sink.delay = 0.02  # a slow server (a few hundred messages a second), so each restart comes mid-send
        env = redis_of_its_own(
            {
                **os.environ,
                "LEADLINE_DATA_DIR": str(tmp_path / "data"),
                "DATABASE_URL": url,
                "SMTP_URL": smtp_url,
                "SCHEDULER_INTERVAL": "0.05",
                "SEND_LEASE_SECONDS": "3",
            }
        )
        running = Processes(env=env, logs=logs)
        recovered: list[float] = []  # seconds from PostgreSQL back to the API answering
        resumed: list[float] = []  # seconds from PostgreSQL back to the worker sending new claims
        delivered_at_restart: list[int] = []
        try:
            api = await running.serve()
            worker = await running.start("worker")

            async def delivered(count: int) -> bool:
                assert worker.returncode is None, f"the worker exited ({worker.returncode}); see {logs}"
                return len(sink.raw) >= count

            for index, mode in enumerate(RESTARTS):
                await eventually(partial(delivered, total * (index + 1) // (len(RESTARTS) + 2)), seconds=60)
                delivered_at_restart.append(len(sink.raw))
                await server.restart(mode)
                back, at_back = time.monotonic(), len(sink.raw)
                await eventually(partial(answers, api, token), seconds=30)
                recovered.append(time.monotonic() - back)
                # Past what was in flight before the restart (a chunk per job at most): new claims.
                await eventually(partial(delivered, at_back + SEND_JOBS * CHUNK + 1), seconds=30)
                resumed.append(time.monotonic() - back)

            async def settled() -> bool:
                open_ = await Message.filter(state__in=[MessageState.QUEUED, MessageState.SENDING]).count()
                return open_ == 0 and await Message.all().count() == total

            await eventually(settled, seconds=60)
            await asyncio.sleep(0.5)  # a duplicate would arrive now
        finally:
            stopped = await stop_all(running.children)
            await forget_send_jobs(env)
            if "REDIS_URL" not in env:
                locate(Settings.from_env(env)).close()
    for child, _ in zip(running.children, stopped, strict=True):
        # uvicorn re-raises SIGTERM once it has shut down cleanly
        assert child.returncode in (0, -signal.SIGTERM), f"exit {child.returncode}; see {logs}"

    arrived = [(m["To"], m["Subject"]) for m in sink.received]
    rows = await Message.all().values_list("enrollment_id", "step_id", "state", "to_address", "subject")
    sent = {(to, subject) for _, _, state, to, subject in rows if state == MessageState.SENT}
    uncertain = {(to, subject) for _, _, state, to, subject in rows if state == MessageState.UNCERTAIN}
    print(
        f"PostgreSQL restarts: {total} steps, {len(RESTARTS)} restarts ({', '.join(RESTARTS)}) "
        f"at {delivered_at_restart} delivered; {len(arrived)} delivered, {len(sent)} SENT, "
        f"{len(uncertain)} UNCERTAIN ({len(uncertain & set(arrived))} of them delivered); "
        f"API answering {', '.join(f'{s:.2f}' for s in recovered)} s and new sends "
        f"{', '.join(f'{s:.2f}' for s in resumed)} s after PostgreSQL was back; "
        f"{time.monotonic() - began:.1f} s in all"
    )
    assert len(arrived) == len(set(arrived))  # zero duplicates
    assert len({m["Message-ID"] for m in sink.received}) == len(arrived)
    assert all(n < total for n in delivered_at_restart)  # each restart came mid-send
    assert len(rows) == total and len({(e, s) for e, s, *_ in rows}) == total  # one message a step
    assert {e for e, *_ in rows} == set(enrolled)
    assert not uncertain and len(sent) == total  # zero lost steps: every one SENT
    assert sent == set(arrived)  # and delivered, once
    assert max(recovered) < RECOVERY_SECONDS
    errors = [line for log in logs.iterdir() for line in log.read_text().splitlines() if " ERROR " in line]
    assert not errors, f"see {logs}"


@pytest.mark.postgres
async def test_a_transaction_that_cannot_begin_leaves_its_task_free(cluster: tuple[Cluster, str]) -> None:
    """A pooled connection that a restart closed unnoticed (the event loop did not
    run meanwhile) fails at BEGIN; the task's next transaction runs. Tortoise left
    the task "inside" the failed transaction for good, every later one a savepoint
    on a connection gone: a worker loop that met it stopped working (app/postgres_client.py)."""
    server, _ = cluster
    for mode in ("fast", "immediate"):
        async with in_transaction() as connection:
            await connection.execute_query("SELECT 1")  # a connection in the pool
        server.restart_unnoticed(mode)
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            async with in_transaction() as connection:
                await connection.execute_query("SELECT 1")
        async with in_transaction() as connection:
            assert await connection.execute_query_dict("SELECT 1 AS one") == [{"one": 1}]


async def forget_send_jobs(env: dict[str, str]) -> None:
    """Removes the send jobs left in the test's Redis (a job waiting behind one that
    found its messages claimed): a later worker on that Redis must not run them."""
    async with connected(Settings.from_env(env)) as client:
        await remove_jobs(client, await send_job_ids(client))
