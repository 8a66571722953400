"""A mailbox's sending limits in the engine: its day (midnight to midnight in its
zone, across DST), its warm-up, its per-domain hourly cap, deferral instead of
failure, exact counts (sentToday, remainingToday), a rep's send refused rather than
deferred, and two real workers racing one mailbox on PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from app import db, presets
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import Organization, Role
from app.clock import FrozenClock, SystemClock
from app.config import Settings
from app.errors import Code
from app.messaging import compose, limits, sending
from app.messaging.models import Mailbox, Message, MessageState, SendCount
from app.prospects import service as prospects
from app.prospects.models import Channel, Prospect
from tests.conftest import GraphQL, Org
from tests.live_processes import LEADLINE, stop_all
from tests.smtp_sink import smtp_sink
from tests.test_engine_e2e import _at_least, eventually

NEW_YORK = "America/New_York"
_numbers = itertools.count()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def mailbox(organization_id: int, clock: FrozenClock | SystemClock, **limits_: Any) -> Mailbox:
    return await Mailbox.create(
        organization_id=organization_id, address=f"rep{next(_numbers)}@acme.example", created_at=clock.now(), **limits_
    )


async def queue(actor: Actor, box: Mailbox, emails: list[str], now: datetime) -> list[int]:
    """One QUEUED email from ``box`` to each address (a prospect each), in id order."""
    made, errors = await prospects.create_prospects(
        actor=actor, inputs=[{"first_name": f"P{i}", "email": email} for i, email in enumerate(emails)]
    )
    assert not errors
    ids = []
    for prospect in made:
        message = await compose.queue_message(prospect, Channel.EMAIL, "Hi", "Hello", now=now)
        ids.append(message.id)
    await Message.filter(id__in=ids).update(mailbox_id=box.id)
    return ids


async def send_all(clock: FrozenClock, settings: Settings) -> dict[int, MessageState]:
    """What the engine would do now: every QUEUED message that is due, in id order."""
    due = (
        await Message.filter(state="QUEUED", next_attempt_at__lte=clock.now())
        .order_by("id")
        .values_list("id", flat=True)
    )
    transports = sending.transports_for(settings)
    try:
        return await sending.send_batch(list(due), transports=transports, settings=settings, clock=clock)  # type: ignore[arg-type]
    finally:
        await transports.close()


async def states(ids: list[int]) -> list[tuple[str, datetime | None, int, str | None]]:
    rows = await Message.filter(id__in=ids).order_by("id").values_list("state", "deferred_until", "attempts", "error")
    return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.fixture
async def acme(org: Org) -> Org:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example", time_zone=NEW_YORK)
    await presets.apply(actor=org.actor(Role.ADMIN, FrozenClock()), name="lead-workflow")
    return org


async def test_a_day_ends_at_midnight_in_the_mailbox_zone_and_the_rest_go_then_oldest_first(
    acme: Org, clock: FrozenClock, settings: Settings
) -> None:
    # Given a mailbox of 2 a day in the organization's zone (New York), 3 emails queued at 22:00 there.
    clock._now = at("2026-01-05T22:00:00-05:00")
    box = await mailbox(acme.id, clock, daily_limit=2)
    admin = acme.actor(Role.ADMIN, clock)
    first = await queue(admin, box, ["a@x.example", "b@x.example", "c@x.example"], clock.now())

    # When the engine sends: 2 go, the third waits for New York's midnight, uncounted as an attempt.
    await send_all(clock, settings)
    midnight = at("2026-01-06T00:00:00-05:00")
    assert await states(first) == [("SENT", None, 1, None), ("SENT", None, 1, None), ("QUEUED", midnight, 0, None)]
    held = await Message.get(id=first[2])
    assert held.next_attempt_at == midnight  # simply not due: no claim loop
    assert (await limits.usage([box.id], now=clock.now()))[box.id] == limits.Usage(2, 2)

    # A newer one at 23:59 waits too; nothing goes before midnight.
    clock._now = at("2026-01-05T23:59:00-05:00")
    later, late = await queue(admin, box, ["d@x.example", "e@x.example"], clock.now())
    assert await send_all(clock, settings) == {later: "QUEUED", late: "QUEUED"}
    assert await send_all(clock, settings) == {}

    # Then at midnight the oldest two go; the newest waits a day more, never FAILED.
    clock._now = midnight
    await send_all(clock, settings)
    assert [s for s, *_ in await states([first[2], later, late])] == ["SENT", "SENT", "QUEUED"]
    assert (await Message.get(id=late)).deferred_until == at("2026-01-07T00:00:00-05:00")
    assert (await limits.usage([box.id], now=clock.now()))[box.id] == limits.Usage(2, 2)
    assert not await Message.filter(state="FAILED").exists()


async def test_a_day_across_a_dst_change_is_the_local_day(acme: Org, clock: FrozenClock, settings: Settings) -> None:
    # 2026-03-08 in New York has 23 hours: from 05:00 UTC to 04:00 UTC the next day.
    box = await mailbox(acme.id, clock, daily_limit=2, time_zone=NEW_YORK)
    await Organization.filter(id=acme.id).update(time_zone="Asia/Tokyo")  # the mailbox's own zone rules
    admin = acme.actor(Role.ADMIN, clock)
    clock._now = at("2026-03-08T00:30:00-05:00")
    [early] = await queue(admin, box, ["a@x.example"], clock.now())
    await send_all(clock, settings)
    clock._now = at("2026-03-08T23:30:00-04:00")  # the same local day, after the change
    second, third = await queue(admin, box, ["b@x.example", "c@x.example"], clock.now())
    await send_all(clock, settings)
    assert [s for s, *_ in await states([early, second, third])] == ["SENT", "SENT", "QUEUED"]
    assert (await Message.get(id=third)).deferred_until == datetime(2026, 3, 9, 4, tzinfo=UTC)

    clock._now = datetime(2026, 3, 9, 4, tzinfo=UTC)
    await send_all(clock, settings)
    assert (await Message.get(id=third)).state == "SENT"
    assert (await limits.usage([box.id], now=clock.now()))[box.id] == limits.Usage(2, 1)


async def test_the_warm_up_ramps_over_five_days(acme: Org, clock: FrozenClock, settings: Settings) -> None:
    box = await mailbox(acme.id, clock, daily_limit=10, ramp_up_start=2, ramp_up_per_day=3)
    admin = acme.actor(Role.ADMIN, clock)
    clock._now = at("2026-01-05T09:00:00-05:00")
    ids = await queue(admin, box, [f"p{i}@x{i}.example" for i in range(40)], clock.now())
    sent_by_day = []
    for _ in range(5):
        before = await Message.filter(state="SENT").count()
        await send_all(clock, settings)
        usage = (await limits.usage([box.id], now=clock.now()))[box.id]
        sent_by_day.append((await Message.filter(state="SENT").count() - before, usage.limit_today, usage.sent_today))
        clock.advance(24 * 3600)
    assert sent_by_day == [(2, 2, 2), (5, 5, 5), (8, 8, 8), (10, 10, 10), (10, 10, 10)]
    await box.refresh_from_db()
    assert str(box.first_sending_day) == "2026-01-05"
    sent = await Message.filter(state="SENT").order_by("id").values_list("id", flat=True)
    assert sent == ids[:35]  # oldest first, day after day
    assert await Message.filter(state="QUEUED", attempts=0, error=None).count() == 5


async def test_the_per_domain_cap_counts_clock_hours_in_the_mailbox_zone(
    acme: Org, clock: FrozenClock, settings: Settings
) -> None:
    # Kolkata is UTC+05:30: its clock hours start at half past, UTC.
    box = await mailbox(acme.id, clock, daily_limit=100, per_domain_hourly_limit=2, time_zone="Asia/Kolkata")
    admin = acme.actor(Role.ADMIN, clock)
    clock._now = datetime(2026, 1, 5, 9, 10, tzinfo=UTC)  # 14:40 in Kolkata
    emails = ["a1@a.example", "a2@A.Example", "a3@a.example", "b1@b.example", "c1@c.example"]
    ids = await queue(admin, box, emails, clock.now())
    await send_all(clock, settings)
    next_hour = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    assert [(s, d) for s, d, *_ in await states(ids)] == [
        ("SENT", None),
        ("SENT", None),
        ("QUEUED", next_hour),
        ("SENT", None),
        ("SENT", None),
    ]
    assert (await limits.usage([box.id], now=clock.now()))[box.id] == limits.Usage(100, 4)
    clock._now = next_hour
    await send_all(clock, settings)
    assert (await Message.get(id=ids[2])).state == "SENT"


async def test_a_message_that_does_not_go_gives_its_slot_back(
    acme: Org, clock: FrozenClock, settings: Settings
) -> None:
    box = await mailbox(acme.id, clock, daily_limit=2)
    admin = acme.actor(Role.ADMIN, clock)
    blocked, kept, waiting = await queue(admin, box, ["a@x.example", "b@x.example", "c@x.example"], clock.now())
    prospect_id = (await Message.get(id=blocked)).prospect_id
    await Prospect.filter(id=prospect_id).update(do_not_contact=True)
    await send_all(clock, settings)
    # The cancelled one took a slot at its claim (the third waits for tomorrow) and gave
    # it back: the day has room for the next message claimed.
    assert [s for s, *_ in await states([blocked, kept, waiting])] == ["CANCELLED", "SENT", "QUEUED"]
    assert (await limits.usage([box.id], now=clock.now()))[box.id] == limits.Usage(2, 1)
    [another] = await queue(admin, box, ["d@x.example"], clock.now())
    assert await send_all(clock, settings) == {another: "SENT"}
    assert (await limits.usage([box.id], now=clock.now()))[box.id] == limits.Usage(2, 2)


async def test_a_reps_send_takes_its_slot_now_or_is_refused(acme: Org, clock: FrozenClock, settings: Settings) -> None:
    box = await mailbox(acme.id, clock, daily_limit=1, time_zone=NEW_YORK)
    admin = acme.actor(Role.ADMIN, clock)
    [message_id] = await queue(admin, box, ["a@x.example"], clock.now())
    async with in_transaction() as connection:
        slot = await limits.take_now(
            mailbox_id=box.id, to_address="a@x.example", now=clock.now(), connection=connection
        )
        await Message.filter(id=message_id).using_db(connection).update(slot_at=slot)
    with pytest.raises(limits.MailboxLimitReached) as refused:
        async with in_transaction() as connection:
            await limits.take_now(mailbox_id=box.id, to_address="b@x.example", now=clock.now(), connection=connection)
    assert refused.value.code is Code.CONFLICT
    assert refused.value.message == (
        f"The mailbox {box.address} has sent its 1 emails today; it can send again from 2026-01-06 00:00 (America/New_York)."
    )
    # The engine sends the reserved message without counting it twice.
    assert await send_all(clock, settings) == {message_id: "SENT"}
    assert (await limits.usage([box.id], now=clock.now()))[box.id] == limits.Usage(1, 1)


async def test_sent_today_and_remaining_today_are_the_engines_counts_in_one_read(
    gql: GraphQL, acme: Org, clock: FrozenClock, settings: Settings, sql_queries: Any
) -> None:
    admin = acme.actor(Role.ADMIN, clock)
    full = await mailbox(acme.id, clock, daily_limit=2)
    fresh = await mailbox(acme.id, clock, daily_limit=50, ramp_up_start=5, ramp_up_per_day=5)
    await queue(admin, full, ["a@x.example", "b@x.example", "c@x.example"], clock.now())
    await queue(admin, fresh, ["d@x.example"], clock.now())
    await send_all(clock, settings)
    query = "{ mailboxes { address limitToday sentToday remainingToday } }"
    await gql(acme.tokens[Role.ADMIN], "{ viewer { id } }")  # the token's lastUsedAt, written once
    before = sql_queries.count
    body = await gql(acme.tokens[Role.ADMIN], query)
    assert [(m["limitToday"], m["sentToday"], m["remainingToday"]) for m in body["data"]["mailboxes"]] == [
        (2, 2, 0),
        (5, 1, 4),
    ]
    with_two = sql_queries.count - before
    await mailbox(acme.id, clock, daily_limit=7)
    before = sql_queries.count
    body = await gql(acme.tokens[Role.ADMIN], query)
    assert [m["limitToday"] for m in body["data"]["mailboxes"]] == [2, 5, 7]
    assert sql_queries.count - before == with_two  # the counts of every mailbox in one read


@pytest.mark.postgres
async def test_two_workers_racing_one_mailbox_send_exactly_its_limit(database: str, tmp_path: Path) -> None:
    clock = SystemClock()
    created = await accounts.create_organization(
        name="Acme", admin_email="boss@acme.example", admin_name=None, clock=clock
    )
    await Organization.filter(id=created.organization.id).update(email_from="sales@acme.example")
    admin = await accounts.authenticate(created.token, clock)
    assert admin is not None
    await presets.apply(actor=admin, name="lead-workflow")
    box = await mailbox(created.organization.id, clock, daily_limit=137, per_domain_hourly_limit=120)
    emails = [f"p{i}@{'one' if i % 3 else 'two'}.example" for i in range(400)]
    ids: list[int] = []
    for start in range(0, 400, 100):
        ids += await queue(admin, box, emails[start : start + 100], clock.now() + timedelta(seconds=2))
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
            await eventually(lambda: _at_least(sink.received, 137), seconds=90)
            await eventually(_settled, seconds=30)
            await asyncio.sleep(1)  # one more would arrive now
        finally:
            await stop_all(workers)
    assert [w.returncode for w in workers] == [0, 0]
    assert len(sink.received) == 137 and len(set(sink.recipients)) == 137
    by_domain = {d: sum(1 for r in sink.recipients if r.endswith(d)) for d in ("one.example", "two.example")}
    assert max(by_domain.values()) <= 120
    assert await Message.filter(state="SENT").count() == 137
    held = await Message.filter(state="QUEUED").values_list("deferred_until", "attempts", "error")
    assert len(held) == 263 and all(d is not None and a == 0 and e is None for d, a, e in held)
    assert (await limits.usage([box.id], now=clock.now()))[box.id].sent_today == 137


async def _settled() -> bool:
    return (
        not await Message.filter(state__in=("SENDING",)).exists()
        and not await Message.filter(state="QUEUED", deferred_until=None).exists()
    )


async def test_a_claim_tried_again_after_the_database_went_away_counts_its_message_once(
    acme: Org, clock: FrozenClock, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim and its slots committed, then the gate's read lost the database: the
    # next try gives back the slots taken (at the claim's time: slot_at is written
    # only with the outcome) before it claims again.
    box = await mailbox(acme.id, clock, daily_limit=5, per_domain_hourly_limit=5, time_zone=NEW_YORK)
    [message_id] = await queue(acme.actor(Role.ADMIN, clock), box, ["a@x.example"], clock.now())
    read = sending._Gate.read
    calls = 0

    async def lost_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError(104, "Connection reset by peer")
        return await read(*args, **kwargs)

    monkeypatch.setattr(sending._Gate, "read", lost_once)
    monkeypatch.setattr(db, "RETRY_PAUSES", (0.0,))
    assert await send_all(clock, settings) == {message_id: "SENT"}
    assert calls == 2
    assert (await limits.usage([box.id], now=clock.now()))[box.id] == limits.Usage(5, 1)
    hour = await SendCount.get(mailbox_id=box.id, domain="x.example")
    assert hour.sent == 1
    assert (await Message.get(id=message_id)).slot_at == clock.now()
