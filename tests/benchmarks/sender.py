"""The engine's own CPU a message, with and without a mailbox (its choice by the
scheduler, its limits and From by the sender): what the engine benchmark's rate
cannot resolve on a noisy machine.

    .venv/bin/python -m tests.benchmarks.sender [N [ROUNDS]]

Each round prepares two organizations as the engine benchmark does (N prospects
enrolled in a one-email sequence), one sending from ``emailFrom`` and one
through a shared mailbox with limits that never bind, times the scheduler's
passes in this process until every message is QUEUED, then ``send_batch`` over the
messages in send jobs of SEND_BLOCK with a transport that takes each email at
once: the claim, the limits, the gate, the recording and the events, without
SMTP. It prints the CPU this process used a message, alternating the two
setups ROUNDS times, and the difference a message. On SQLite the database's
work is this process's too; on PostgreSQL the server's is left out (the
machine's server processes serve others too, and their CPU cannot be told
apart from /proc).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app import db
from app.accounts.actor import system_actor
from app.clock import SystemClock
from app.config import Settings
from app.messaging import sending
from app.messaging.mail import Email
from app.messaging.models import Message, MessageState
from app.messaging.transports import Transports
from app.sequences import enrollments, scheduler
from app.sequences.models import Sequence
from tests.benchmarks import engine
from tests.conftest import fresh_database

PARTS = ("scheduler", "sender")
SEND_BLOCK = 250
"""Messages a send job carries, as the worker's."""


class _Takes:
    """A transport that takes every message at once."""

    async def send(self, email: Email) -> str:
        return "taken"

    async def close(self) -> None:
        return None


class _NoSms:
    async def send(self, *, to: str, sender: str, body: str, reference: int) -> str:
        raise AssertionError("the benchmark sends email only")

    async def close(self) -> None:
        return None


async def queued(settings: Settings, count: int, *, mailbox: bool) -> tuple[list[int], float]:
    """A new organization's ``count`` messages QUEUED by the scheduler: their ids, and
    the CPU seconds this process spent in the scheduler's passes."""
    organization_id = await engine.prepare(settings, count, mailbox=mailbox)
    sequence = await Sequence.get(organization_id=organization_id, name="Bench")
    clock = SystemClock()
    await enrollments.set_sequence_active(
        actor=system_actor(organization_id, clock), sequence_id=sequence.id, active=True
    )
    started = time.process_time()
    while (await scheduler.run_pass(clock)).claimed == scheduler.BATCH:
        pass
    cost = time.process_time() - started
    ids = await Message.filter(organization_id=organization_id, state=MessageState.QUEUED).values_list("id", flat=True)
    if len(ids) != count:
        raise RuntimeError(f"{len(ids)} of {count} messages queued")
    return sorted(int(i) for i in ids), cost


async def send_cost(settings: Settings, ids: list[int]) -> float:
    """CPU seconds this process spends in ``send_batch`` over ``ids``."""
    transports = Transports(email=_Takes(), sms=_NoSms())
    clock = SystemClock()
    started = time.process_time()
    for start in range(0, len(ids), SEND_BLOCK):
        states = await sending.send_batch(
            ids[start : start + SEND_BLOCK], transports=transports, settings=settings, clock=clock
        )
        if any(state is not MessageState.SENT for state in states.values()):
            raise RuntimeError("a message was not sent")
    return time.process_time() - started


async def main(count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database(file=Path(tmp) / "bench.sqlite3") as database_url:
            settings = Settings.from_env({"LEADLINE_DATA_DIR": str(Path(tmp) / "data"), "DATABASE_URL": database_url})
            await db.migrate(settings)
            await db.init(settings)
            costs: dict[tuple[str, bool], list[float]] = {(p, m): [] for p in PARTS for m in (False, True)}
            try:
                for _ in range(rounds):
                    for mailbox in (False, True):
                        ids, scheduling = await queued(settings, count, mailbox=mailbox)
                        costs[("scheduler", mailbox)].append(scheduling / count * 1e6)
                        costs[("sender", mailbox)].append(await send_cost(settings, ids) / count * 1e6)
            finally:
                await db.close()
    database = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"sender: {count} emails a setup, {rounds} rounds alternated, {database}; CPU µs a message")
    for part in PARTS:
        for mailbox, label in ((False, "from emailFrom"), (True, "through a mailbox")):
            each = ", ".join(f"{c:.0f}" for c in costs[(part, mailbox)])
            print(f"  {part:9} {label:17} median {statistics.median(costs[(part, mailbox)]):6.1f}  ({each})")
        extra = statistics.median(costs[(part, True)]) - statistics.median(costs[(part, False)])
        print(f"  {part:9} the mailbox's cost        {extra:+6.1f} µs a message")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
