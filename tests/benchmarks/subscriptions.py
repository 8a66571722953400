"""Subscription benchmark: N websocket clients subscribed to `events` on one
`leadline serve` process; this process plays the worker's relay and publishes
events at a steady rate. Prints the delivery latency (from the relay's publish
call to a client's receipt of the event, over every client and event) and the
server's resident memory before the clients connect and after the run.

    .venv/bin/python -m tests.benchmarks.subscriptions [N [EVENTS [PER_SECOND]]]

On the PostgreSQL of DATABASE_URL (in a database of its own) and the Redis of
REDIS_URL when set, else SQLite and an embedded Redis in a temporary directory.
The clients run in this process, on the same machine as the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tortoise.transactions import in_transaction

from app import db, ids
from app.accounts import service as accounts
from app.clock import SystemClock
from app.config import Settings
from app.events import log, relay
from app.events.models import Event, EventType
from app.prospects.events import prospect_event
from app.redis import connected
from tests.conftest import fresh_database
from tests.live_processes import processes
from tests.ws_client import Client, connect

QUERY = "subscription($after: String) { events(after: $after) { cursor type } }"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def publish_one(redis: object, organization_id: int, clock: SystemClock) -> tuple[int, float]:
    """Appends one event, numbers it and publishes it as the relay does: (its cursor, when published)."""
    async with in_transaction():
        await log.record([prospect_event(EventType.PROSPECT_UPDATED, organization_id, 1, clock.now())])
    await log.sequence()
    seq = await Event.filter(seq__not_isnull=True).order_by("-seq").first().values_list("seq", flat=True)
    published = time.perf_counter()
    await relay.publish(redis, clock)  # type: ignore[arg-type]
    return int(seq), published  # type: ignore[call-overload]


async def listen(client: Client, received: dict[int, float], expected: int) -> None:
    """Receives until ``expected`` events came: a lean loop (no per-message timeout,
    no bookkeeping) so that the clients' own cost distorts the latency least."""
    async for raw in client.ws:
        now = time.perf_counter()
        message = json.loads(raw)
        if message["type"] == "next":
            decoded = ids.decode(message["payload"]["data"]["events"]["cursor"])
            assert decoded is not None
            received[decoded[1]] = now
            if len(received) == expected:
                return
        elif message["type"] == "ping":
            await client.ws.send('{"type":"pong"}')
        else:
            raise AssertionError(message)


async def main(subscribers: int, events: int, per_second: float) -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database(file=Path(tmp) / "bench.sqlite3") as database_url:
            env = {"LEADLINE_DATA_DIR": str(Path(tmp) / "data"), "DATABASE_URL": database_url}
            if os.environ.get("REDIS_URL"):
                env["REDIS_URL"] = os.environ["REDIS_URL"]
            settings = Settings.from_env(env)
            await db.migrate(settings)
            await db.init(settings)
            try:
                created = await accounts.create_organization(
                    name="Bench", admin_email="bench@acme.example", admin_name=None, clock=clock
                )
                org = created.organization.id
                async with (
                    processes(database_url, Path(tmp) / "data", apis=1, worker=False) as live,
                    connected(settings) as redis,
                ):
                    server = live.children[0].pid
                    before = rss_mib(server)
                    async with contextlib.AsyncExitStack() as stack:
                        clients = await asyncio.gather(
                            *(stack.enter_async_context(connect(live.ws(0), created.token)) for _ in range(subscribers))
                        )
                        # From a cursor, so no event after it is missed while the subscriptions register.
                        origin, _ = await publish_one(redis, org, clock)
                        after = ids.encode("Cursor", origin)
                        operations = [await client.subscribe(QUERY, after=after) for client in clients]
                        received: list[dict[int, float]] = [{} for _ in clients]
                        # A first event that every client must see: then all are live.
                        await publish_one(redis, org, clock)
                        await asyncio.gather(
                            *(c.next_data(op, seconds=60) for c, op in zip(clients, operations, strict=True))
                        )
                        listeners = [
                            asyncio.create_task(listen(client, got, events))
                            for client, operation, got in zip(clients, operations, received, strict=True)
                        ]
                        sent: dict[int, float] = {}
                        cpu_before = cpu_seconds(server)
                        start = time.perf_counter()
                        for index in range(events):
                            await asyncio.sleep(max(0.0, start + index / per_second - time.perf_counter()))
                            seq, at = await publish_one(redis, org, clock)
                            sent[seq] = at
                        await asyncio.wait_for(asyncio.gather(*listeners), 120)
                        after = rss_mib(server)
                        server_cpu = cpu_seconds(server) - cpu_before
            finally:
                await db.close()
    latencies = sorted((got[seq] - at) * 1000 for got in received for seq, at in sent.items())
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    database = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(
        f"subscriptions: {subscribers} clients on one API process, {events} events at {per_second:g}/s "
        f"({len(latencies)} deliveries), {database}, {'Redis' if 'REDIS_URL' in env else 'embedded Redis'}"
    )
    print(f"  latency p50   {p50:8.1f} ms")
    print(f"  latency p99   {p99:8.1f} ms")
    print(f"  latency max   {latencies[-1]:8.1f} ms")
    print(f"  server CPU    {server_cpu * 1e6 / len(latencies):8.0f} µs per delivery")
    print(f"  server memory {before:8.1f} MiB before the clients, {after:.1f} MiB after")


if __name__ == "__main__":
    arguments = [float(a) for a in sys.argv[1:]]
    asyncio.run(
        main(
            int(arguments[0]) if arguments else 1000,
            int(arguments[1]) if len(arguments) > 1 else 100,
            arguments[2] if len(arguments) > 2 else 10.0,
        )
    )
