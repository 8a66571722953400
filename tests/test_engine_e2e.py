"""The engine end to end: a real `leadline worker` process, a real SMTP server and a
real HTTP server standing in for Twilio, on loopback, with the system clock."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from redis.asyncio import Redis
from tortoise import connections

from app import presets
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import Organization
from app.clock import SystemClock
from app.config import Settings
from app.events.models import Event
from app.messaging.models import Message
from app.messaging.sending import CHUNK
from app.prospects import service as prospects
from app.prospects.models import Task
from app.redis import RedisLocation, connected, locate
from app.sequences import enrollments
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from tasks.queue import RECOVERY_EPOCH_SECONDS
from tasks.worker import SEND_JOBS
from tests.conftest import remove_jobs, send_job_ids
from tests.live_processes import LEADLINE, stop, stop_all
from tests.smtp_sink import Sink, smtp_sink
from tests.twilio_standin import twilio_standin


def daytime_zone() -> str:
    """An IANA zone where it is now around noon, so SMS quiet hours never interfere."""
    offset = 12 - datetime.now(UTC).hour
    offset = offset - 24 if offset > 12 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


WORKER_APP = "leadline-crash-test-worker"


async def _worker_sessions_ended() -> bool:
    rows = await connections.get("default").execute_query_dict(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [WORKER_APP]
    )
    return bool(rows[0]["n"] == 0)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_email_sms_and_call_steps_through_the_real_worker(database: str, tmp_path: Path) -> None:
    clock = SystemClock()
    created = await accounts.create_organization(
        name="Acme", admin_email="boss@acme.example", admin_name=None, clock=clock
    )
    await Organization.filter(id=created.organization.id).update(
        email_from="sales@acme.example", sms_from="+12025550100", postal_address="1 Main St"
    )
    admin = await accounts.authenticate(created.token, clock)
    assert admin is not None
    await presets.apply(actor=admin, name="lead-workflow")
    sequence = await sequences.create_sequence(
        actor=admin,
        name="Three steps",
        stop_on_reply=None,
        unresponsive_after_seconds=2,
        send_window=None,
        active=True,
        steps=[
            StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}", subject="Hi {{ first_name }}"),
            StepSpec(StepType.SMS, 0, body="Ping {{ first_name }}"),
            StepSpec(StepType.CALL, 0, body="Call {{ full_name }}"),
        ],
    )
    [prospect], _ = await prospects.create_prospects(
        actor=admin,
        inputs=[
            {
                "first_name": "Ada",
                "last_name": "King",
                "email": "ada@client.example",
                "phone": "+12025550143",
                "time_zone": daytime_zone(),
            }
        ],
    )
    [enrollment], errors = await enrollments.enroll(
        actor=admin,
        sequence_id=sequence.id,
        prospect_ids=[prospect.id],
        activate=None,
    )
    assert not errors

    with smtp_sink() as (sink, smtp_url):
        async with twilio_standin() as (twilio, twilio_url):
            env = {
                **os.environ,
                "LEADLINE_DATA_DIR": str(tmp_path / "data"),
                "DATABASE_URL": database,
                "SMTP_URL": smtp_url,
                "TWILIO_API_URL": twilio_url,
                "TWILIO_ACCOUNT_SID": "AC0123",
                "TWILIO_AUTH_TOKEN": "secret",
                "SCHEDULER_INTERVAL": "0.1",
            }
            worker = await asyncio.create_subprocess_exec(
                LEADLINE, "worker", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
            try:
                await eventually(lambda: Task.filter(enrollment_id=enrollment.id).exists())
                task = await Task.get(enrollment_id=enrollment.id)
                await prospects.complete_task(actor=admin, task_id=task.id, note="spoke")
                await eventually(lambda: Enrollment.filter(id=enrollment.id, stage="UNRESPONSIVE").exists())
                await eventually(_all_events_numbered)  # the worker gives committed events their cursors
            finally:
                stderr = await stop(worker)
    assert worker.returncode == 0, stderr.decode()[-2000:]

    [email] = sink.received
    assert (email["Subject"], email["To"], email["From"]) == ("Hi Ada", "ada@client.example", "sales@acme.example")
    assert (
        email["List-Unsubscribe"].startswith("<http") and email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    )
    assert email["Message-ID"] and "1 Main St" in email.get_payload(decode=True).decode()
    assert twilio.messages == [{"To": "+12025550143", "From": "+12025550100", "Body": "Ping Ada"}]
    assert twilio.credentials == ["AC0123:secret"]
    assert (task.kind, task.note) == ("CALL", "Call Ada King")
    states = sorted((m.channel, m.state) for m in await Message.filter(enrollment_id=enrollment.id))
    assert states == [("EMAIL", "SENT"), ("SMS", "SENT")]
    sms = await Message.get(enrollment_id=enrollment.id, channel="SMS")
    assert sms.external_id == "SM" + "1".zfill(32)
    stages = await StageChange.filter(enrollment_id=enrollment.id).order_by("id").values_list("to_stage", flat=True)
    assert list(stages) == ["STARTED", "APPROACHING", "UNRESPONSIVE"]
    events = await Event.filter(prospect_id=enrollment.prospect_id).order_by("seq")
    kinds = [e.type for e in events]
    assert kinds.count("MESSAGE_SENT") == 2 and kinds.count("TASK_CREATED") == 1 and "TASK_COMPLETED" in kinds
    staged = [e.payload["stageChange"]["toStage"] for e in events if e.type == "STAGE_CHANGED"]  # type: ignore[index]
    assert staged == ["STARTED", "APPROACHING", "UNRESPONSIVE"]  # cursor order follows the changes


async def _all_events_numbered() -> bool:
    return not await Event.filter(seq=None).exists()


async def one_email_to_many(count: int, *, active: bool) -> tuple[Actor, str]:
    """An organization with ``count`` prospects enrolled in a one-email sequence:
    its admin and the sequence's id."""
    clock = SystemClock()
    created = await accounts.create_organization(
        name="Acme", admin_email="boss@acme.example", admin_name=None, clock=clock
    )
    admin = await accounts.authenticate(created.token, clock)
    assert admin is not None
    await presets.apply(actor=admin, name="lead-workflow")
    sequence = await sequences.create_sequence(
        actor=admin,
        name="One email",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        active=active,
        steps=[StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}", subject="Hi")],
    )
    sequence_id = sequence.id
    for start in range(0, count, enrollments.MAX_BATCH):
        made, _ = await prospects.create_prospects(
            actor=admin,
            inputs=[
                {"first_name": f"P{i}", "email": f"p{i}@client.example"}
                for i in range(start, min(count, start + enrollments.MAX_BATCH))
            ],
        )
        await enrollments.enroll(actor=admin, sequence_id=sequence_id, prospect_ids=[p.id for p in made], activate=None)
    return admin, sequence_id


async def test_flushing_redis_mid_run_loses_no_step(database: str, tmp_path: Path) -> None:
    await one_email_to_many(300, active=True)
    async with one_worker(database, tmp_path, interval="0.1") as (sink, redis, _):
        # A slow server (at most ~320 messages/s over 16 connections), so the flush comes
        # mid-run: without it the engine can send all 300 before the flush.
        sink.delay = 0.05
        await eventually(lambda: _at_least(sink.received, 10))
        flushed_at = len(sink.received)
        await redis.flushdb()  # this test's database only: other workers may share the server
        await eventually(lambda: _at_least(sink.received, 300), seconds=60)
    assert flushed_at < 300
    assert sorted(sink.recipients) == sorted(f"p{i}@client.example" for i in range(300))  # each exactly once


async def test_a_nudge_runs_the_scheduler_at_once(database: str, tmp_path: Path) -> None:
    """An API write nudges the worker: an activated sequence's first steps go out
    within seconds, not at the next SCHEDULER_INTERVAL (a minute here)."""
    from app.events import relay
    from tasks.worker import check

    admin, sequence_id = await one_email_to_many(5, active=False)
    async with one_worker(database, tmp_path, interval="60") as (sink, redis, location):
        assert await check(location, wait_seconds=30)
        await asyncio.sleep(1)  # its first pass, at start, found nothing due
        await enrollments.set_sequence_active(actor=admin, sequence_id=sequence_id, active=True)
        await relay.nudge(redis)
        await eventually(lambda: _at_least(sink.received, 5), seconds=15)
    assert sorted(sink.recipients) == sorted(f"p{i}@client.example" for i in range(5))


@asynccontextmanager
async def one_worker(
    database: str, tmp_path: Path, *, interval: str
) -> AsyncIterator[tuple[Sink, Redis, RedisLocation]]:
    """A `leadline worker` process sending into a sink: (the sink, its Redis, where
    that is); stopped by SIGTERM after, which it must survive cleanly."""
    data = str(tmp_path / "data")
    with smtp_sink() as (sink, smtp_url):
        env = {
            **os.environ,
            "LEADLINE_DATA_DIR": data,
            "DATABASE_URL": database,
            "SMTP_URL": smtp_url,
            "SCHEDULER_INTERVAL": interval,
        }
        worker = await asyncio.create_subprocess_exec(
            LEADLINE, "worker", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        location = locate(
            Settings.from_env({"LEADLINE_DATA_DIR": data, **{k: v for k, v in os.environ.items() if k == "REDIS_URL"}})
        )
        redis = Redis.from_url(location.url)
        try:
            yield sink, redis, location
        finally:
            await redis.aclose()
            stderr = await stop(worker)
            location.close()
    assert worker.returncode == 0, stderr.decode()[-2000:]


async def _at_least(items: list[object], count: int) -> bool:
    return len(items) >= count


@pytest.mark.postgres
async def test_two_worker_processes_send_each_step_exactly_once(database: str, tmp_path: Path) -> None:
    admin, sequence_id = await one_email_to_many(500, active=False)
    with smtp_sink() as (sink, smtp_url):
        env = {
            **os.environ,
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": database,
            "SMTP_URL": smtp_url,
            "SCHEDULER_INTERVAL": "0.05",
        }
        workers = [
            await asyncio.create_subprocess_exec(
                LEADLINE, "worker", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
            for _ in range(2)
        ]
        try:
            await asyncio.sleep(1)  # both workers are up before the 500 steps fall due
            await enrollments.set_sequence_active(actor=admin, sequence_id=sequence_id, active=True)
            await eventually(lambda: _at_least(sink.received, 500), seconds=90)
            await asyncio.sleep(1)  # a duplicate would arrive now
        finally:
            await stop_all(workers)
    assert [w.returncode for w in workers] == [0, 0]
    assert sorted(sink.recipients) == sorted(f"p{i}@client.example" for i in range(500))
    assert await Message.filter(state="SENT").count() == 500


@pytest.mark.postgres
async def test_a_worker_killed_at_random_points_never_sends_a_step_twice(database: str, tmp_path: Path) -> None:
    """SIGKILL 20 times while sending (R5.2): zero duplicates at the sink, the
    messages a dead worker held SENDING end UNCERTAIN (never resent), every other
    step is SENT, and each SENT message is at the sink."""
    kills = 20
    # Each run leaves up to SEND_JOBS chunks UNCERTAIN and sends about as many (the sink
    # takes ~400 a second): twice that per kill, so the last kill too cuts a run mid-send
    # (with half of it, a fast run can leave too few for the last kills).
    count = kills * 2 * SEND_JOBS * CHUNK + 1000
    await one_email_to_many(count, active=True)
    first_epoch = int(time.time() // RECOVERY_EPOCH_SECONDS)
    rng = random.Random(20261123)
    with smtp_sink() as (sink, smtp_url):
        sink.delay = 0.02  # ~400 messages/s over 8 connections: each run is cut mid-send
        env = {
            **os.environ,
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": f"{database}{'&' if '?' in database else '?'}application_name={WORKER_APP}",
            "SMTP_URL": smtp_url,
            "SCHEDULER_INTERVAL": "0.05",
            "SEND_LEASE_SECONDS": "3",
        }

        async def worker() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                LEADLINE, "worker", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )

        interrupted: set[int] = set()
        fewest_left = count
        for kill in range(kills):
            if kill:  # the first worker's scheduler makes the messages; then each run must find a run's worth left
                fewest_left = min(fewest_left, await Message.filter(state="QUEUED").count())
                assert fewest_left >= 2 * SEND_JOBS * CHUNK, f"{fewest_left} QUEUED before kill {kill + 1}: too few"
            process = await worker()
            try:  # killed whatever happens: a failing wait must not leave a worker behind
                await eventually(partial(_at_least, sink.raw, len(sink.raw) + 1), seconds=60)  # it is sending
                await asyncio.sleep(rng.uniform(0, 0.3))
                assert not await _worker_sessions_ended()  # the wait below can see the worker's sessions
            finally:
                process.kill()
                await process.wait()
            # A statement the worker wrote just before it died still runs: read only after its sessions end.
            await eventually(_worker_sessions_ended, seconds=10)
            interrupted |= {m.id for m in await Message.filter(state="SENDING").only("id")}
        last = await worker()
        try:

            async def settled() -> bool:
                open_ = await Message.filter(state__in=["QUEUED", "SENDING"]).count()
                return open_ == 0 and await Message.all().count() == count

            await eventually(settled, seconds=120)
            await asyncio.sleep(0.5)  # a duplicate would arrive now
        finally:
            await stop(last)
            await _forget_send_jobs(env, since_epoch=first_epoch)
    sent = {m.to_address for m in await Message.filter(state="SENT")}
    uncertain = {m.id for m in await Message.filter(state="UNCERTAIN")}
    delivered = len(sink.recipients)
    print(
        f"crash test: {count} steps, {kills} kills (at least {fewest_left} QUEUED before each), "
        f"{delivered} delivered, {len(sent)} SENT, {len(uncertain)} UNCERTAIN"
    )
    assert delivered == len(set(sink.recipients))  # zero duplicates
    assert len(sent) + len(uncertain) == count  # nothing else: every step ran, once
    assert uncertain == interrupted and interrupted  # exactly the messages the kills interrupted
    assert sent <= set(sink.recipients)  # what Leadline calls SENT arrived


async def _forget_send_jobs(env: dict[str, str], *, since_epoch: int) -> None:
    """Removes the send jobs enqueued since ``since_epoch`` (this test's) from its Redis:
    those its killed workers left "in progress" would run again 130 s later, in whatever
    test (or benchmark) then has a worker on a shared REDIS_URL."""
    async with connected(Settings.from_env(env)) as client:
        ours = [job_id for job_id in await send_job_ids(client) if int(job_id.rsplit(":", 1)[1]) >= since_epoch]
        await remove_jobs(client, ours)
