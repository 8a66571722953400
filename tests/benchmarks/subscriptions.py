"""Subscription benchmark, end to end as a dashboard sees it: N websocket
clients, spread over client processes, subscribe on APIS `leadline serve`
processes (a `leadline worker` relays the events); this process changes one
prospect's status EVENTS times at PER_SECOND with `setProspectStatus` and
measures, for every client and event, the time from the mutation's response
to the client's receipt of the `next` frame.

    .venv/bin/python -m tests.benchmarks.subscriptions [N [EVENTS [PER_SECOND]]]
        [--apis 1] [--processes 4] [--selection status|events] [--no-baseline]

The selection `status` is `prospectStatusChanged(prospectId:) { to { name } }`,
`events` is `events(filter:) { cursor type prospect { id firstName } }`.

In the same run, a bare baseline: as many minimal websocket servers (the same
uvicorn and websocket implementation, no GraphQL) that write one prebuilt
`next` frame to every client when told, measured with the same clients from the
moment they are told. It prints both, deliveries/s (the clients an event reaches
per second of its fan-out, the median over the events), p99 and the ratios, and
the servers' CPU per delivery (the worker's apart).

On the PostgreSQL of DATABASE_URL (in a database of its own) and the Redis of
REDIS_URL when set, else SQLite and an embedded Redis in a temporary directory.
The Leadline processes' stderr goes to files there (uvicorn logs each websocket
connection; a pipe read only at the end blocked them at ~2,280 connections).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets

from app import db, ids, presets
from app.accounts import service as accounts
from app.accounts.models import Role
from app.cli import uvicorn_options
from app.clock import SystemClock
from app.config import Settings
from app.prospects import service as prospects
from app.workflows.models import Status
from tests.conftest import fresh_database
from tests.live_processes import free_port, processes

SELECTIONS = {
    "status": "subscription($p: ID!) { prospectStatusChanged(prospectId: $p) { to { name } } }",
    "events": "subscription($p: ID!) { events(filter: {types: [STATUS_CHANGED], prospectId: $p}) "
    "{ cursor type prospect { id firstName } } }",
}
SET_STATUS = """mutation($input: SetProspectStatusInput!) {
  setProspectStatus(input: $input) { prospect { id } errors { message } } }"""
PREBUILT = '{"id":"1","type":"next","payload":{"data":{"prospectStatusChanged":{"to":{"name":"Contact Made"}}}}}'
STATUSES = ("Contact Made", "New Lead")
"""Alternated, starting with a change away from a new prospect's status."""


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the clients: one process holds many connections and records receipt times ----


@dataclass
class Work:
    urls: list[str]
    """One per connection."""
    token: str
    query: str
    variables: dict[str, Any]
    frames: int
    """To receive on each connection before reporting."""


def clients_main(work: Work, pipe: Connection) -> None:
    try:
        asyncio.run(_clients(work, pipe))
    except BaseException as error:
        pipe.send(f"client process failed: {error!r}")
        raise


async def _clients(work: Work, pipe: Connection) -> None:
    received: list[list[float]] = [[] for _ in work.urls]
    async with contextlib.AsyncExitStack() as stack:
        sockets = []
        for url in work.urls:
            ws = await stack.enter_async_context(
                websockets.connect(
                    url,
                    subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
                    max_size=2**22,
                    open_timeout=120,
                    ping_interval=None,  # the server pings; a client busy connecting others must not time out
                )
            )
            await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {work.token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": work.query, "variables": work.variables}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            sockets.append(ws)
        pipe.send("ready")

        async def listen(ws: Any, times: list[float]) -> None:
            # Lean: no parsing of `next` frames, so the clients' own cost distorts least.
            async for raw in ws:
                now = time.perf_counter()
                if '"type":"next"' in raw:
                    times.append(now)
                    if len(times) == work.frames:
                        return
                elif '"ping"' in raw:
                    await ws.send('{"type":"pong"}')
                else:
                    raise AssertionError(raw[:300])

        await asyncio.wait_for(asyncio.gather(*(listen(ws, t) for ws, t in zip(sockets, received, strict=True))), 600)
        pipe.send(received)


class Clients:
    """N connections over several processes (spawned: the benchmark's loop is not forked)."""

    def __init__(self, urls: list[str], count: int, spread: int, **work: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes = []
        assigned = [urls[i % len(urls)] for i in range(count)]
        for index in range(spread):
            mine = assigned[index::spread]
            if not mine:
                continue
            parent, child = context.Pipe()
            process = context.Process(target=clients_main, args=(Work(urls=mine, **work), child), daemon=True)
            process.start()
            child.close()  # the parent's copy: a dead client process is then an EOF
            self._pipes.append(parent)
            self._processes.append(process)

    async def ready(self) -> None:
        for pipe in self._pipes:
            message = await asyncio.to_thread(pipe.recv)
            assert message == "ready", message

    async def times(self) -> list[list[float]]:
        """Each connection's receipt times (after all frames came)."""
        everyone: list[list[float]] = []
        for pipe in self._pipes:
            got = await asyncio.wait_for(asyncio.to_thread(pipe.recv), 900)
            assert isinstance(got, list), got
            everyone.extend(got)
        for process in self._processes:
            process.join(10)
        return everyone

    def stop(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()


# ---- the bare baseline: a websocket server that writes one prebuilt frame to everyone ----


def baseline_main(port: int) -> None:
    subscribers: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                kind = json.loads(message["text"])["type"]
                if kind == "connection_init":
                    await send({"type": "websocket.send", "text": '{"type":"connection_ack"}'})
                elif kind == "subscribe":
                    subscribers.append(send)
                elif kind == "ping":
                    await send({"type": "websocket.send", "text": '{"type":"pong"}'})
                elif kind == "fire":
                    for subscriber in list(subscribers):
                        await subscriber({"type": "websocket.send", "text": PREBUILT})
        finally:
            with contextlib.suppress(ValueError):
                subscribers.remove(send)

    options = uvicorn_options(Settings.from_env({"LEADLINE_DATA_DIR": tempfile.gettempdir()}))
    uvicorn.run(app, **{**options, "port": port, "host": "127.0.0.1", "log_level": "warning", "lifespan": "off"})


# ---- the run ----


@dataclass
class Figures:
    deliveries: int
    p50: float
    p99: float
    worst: float
    rate: float
    cpu_us: float
    """Server CPU per delivery, µs."""


def figures(sent: list[float], received: list[list[float]], cpu: float, warm: int) -> Figures:
    latencies: list[float] = []
    spans: list[float] = []
    for index, at in enumerate(sent):
        arrivals = [times[warm + index] for times in received]
        latencies.extend((t - at) * 1000 for t in arrivals)
        spans.append(max(arrivals) - at)
    latencies.sort()
    return Figures(
        deliveries=len(latencies),
        p50=statistics.median(latencies),
        p99=latencies[max(0, int(len(latencies) * 0.99) - 1)],
        worst=latencies[-1],
        rate=statistics.median(len(received) / span for span in spans),
        cpu_us=cpu * 1e6 / len(latencies),
    )


async def paced(count: int, per_second: float, act: Any) -> list[float]:
    sent = []
    start = time.perf_counter()
    for index in range(count):
        await asyncio.sleep(max(0.0, start + index / per_second - time.perf_counter()))
        sent.append(await act(index))
    return sent


async def leadline(args: argparse.Namespace, tmp: Path) -> tuple[Figures, float, str]:
    clock = SystemClock()
    async with fresh_database(file=tmp / "bench.sqlite3") as database_url:
        env = {"LEADLINE_DATA_DIR": str(tmp / "data"), "DATABASE_URL": database_url}
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = os.environ["REDIS_URL"]
        settings = Settings.from_env(env)
        await db.migrate(settings)
        await db.init(settings)
        try:
            created = await accounts.create_organization(
                name="Bench", admin_email="bench@acme.example", admin_name=None, clock=clock
            )
            admin = await accounts.authenticate(created.token, clock)
            assert admin is not None and admin.role is Role.ADMIN
            await presets.apply(actor=admin, name="lead-workflow")
            made, errors = await prospects.create_prospects(
                actor=admin, inputs=[{"first_name": "Ada", "email": "ada@client.example"}]
            )
            assert not errors
            prospect = ids.encode("Prospect", made[0].id)
            statuses = [
                ids.encode("Status", (await Status.get(organization_id=admin.organization_id, name=name)).id)
                for name in STATUSES
            ]
            logs = tmp / "logs"  # uvicorn logs two lines a connection: a pipe read only at the end would fill
            logs.mkdir()
            async with processes(database_url, tmp / "data", apis=args.apis, logs=logs) as live:
                servers, worker = [c.pid for c in live.children[: args.apis]], live.children[args.apis].pid
                clients = Clients(
                    [live.ws(i) for i in range(args.apis)],
                    args.clients,
                    args.processes,
                    token=created.token,
                    query=SELECTIONS[args.selection],
                    variables={"p": prospect},
                    frames=1 + args.events,
                )
                try:
                    await clients.ready()
                    async with httpx.AsyncClient(base_url=live.apis[0], timeout=30) as http:

                        async def change(index: int) -> float:
                            response = await http.post(
                                "/graphql",
                                json={
                                    "query": SET_STATUS,
                                    "variables": {"input": {"id": prospect, "statusId": statuses[index % 2]}},
                                },
                                headers={"Authorization": f"Bearer {created.token}"},
                            )
                            assert response.json()["data"]["setProspectStatus"]["errors"] == [], response.text
                            return time.perf_counter()

                        await asyncio.sleep(2)  # the subscriptions are live (nothing to wait on from outside)
                        await change(0)  # a first change that every client must see: then all are live
                        cpu_before = sum(cpu_seconds(pid) for pid in servers)
                        worker_before = cpu_seconds(worker)
                        sent = await paced(args.events, args.per_second, lambda i: change(i + 1))
                        received = await clients.times()
                        cpu = sum(cpu_seconds(pid) for pid in servers) - cpu_before
                        worker_cpu = cpu_seconds(worker) - worker_before
                finally:
                    clients.stop()
        finally:
            await db.close()
    database = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    result = figures(sent, received, cpu, warm=1)
    return result, worker_cpu * 1e6 / result.deliveries, database


async def baseline(args: argparse.Namespace) -> Figures:
    context = multiprocessing.get_context("spawn")
    ports = [free_port() for _ in range(args.apis)]
    servers = [context.Process(target=baseline_main, args=(port,), daemon=True) for port in ports]
    for server in servers:
        server.start()
    try:
        for port in ports:
            for _ in range(100):
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                await asyncio.sleep(0.1)
        urls = [f"ws://127.0.0.1:{port}/" for port in ports]
        clients = Clients(
            urls, args.clients, args.processes, token="-", query="-", variables={}, frames=1 + args.events
        )
        try:
            await clients.ready()
            protocol = [websockets.Subprotocol("graphql-transport-ws")]
            controls = [await websockets.connect(url, subprotocols=protocol) for url in urls]

            async def fire(index: int) -> float:
                at = time.perf_counter()
                for control in controls:
                    await control.send('{"type":"fire"}')
                return at

            await asyncio.sleep(1)
            await fire(0)
            pids = [s.pid for s in servers if s.pid is not None]
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            sent = await paced(args.events, args.per_second, fire)
            received = await clients.times()
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
            for control in controls:
                await control.close()
        finally:
            clients.stop()
    finally:
        for server in servers:
            server.terminate()
            server.join(10)
    return figures(sent, received, cpu, warm=1)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours, worker_us, database = await leadline(args, Path(tmp))
    print(
        f"subscriptions: {args.clients} clients over {args.processes} client processes on {args.apis} API "
        f"process(es), `{args.selection}` selection, {args.events} status changes at {args.per_second:g}/s "
        f"({ours.deliveries} deliveries), {database}, {'Redis' if os.environ.get('REDIS_URL') else 'embedded Redis'}"
    )
    print("  latency: from setProspectStatus's response (Leadline) or the trigger (bare) to each client's receipt")
    rows = [("Leadline", ours)]
    if not args.no_baseline:
        rows.append(("bare", await baseline(args)))
    print(f"  {'':10} {'deliveries/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'server CPU µs/delivery':>23}")
    for name, row in rows:
        print(f"  {name:10} {row.rate:12.0f} {row.p50:8.1f} {row.p99:8.1f} {row.worst:8.1f} {row.cpu_us:23.1f}")
    print(f"  worker CPU {worker_us:.1f} µs per delivery")
    if len(rows) == 2:
        bare = rows[1][1]
        print(f"  ratio Leadline/bare: deliveries/s {ours.rate / bare.rate:.2f}, p99 {ours.p99 / bare.p99:.2f}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clients", nargs="?", type=int, default=1000)
    parser.add_argument("events", nargs="?", type=int, default=30)
    parser.add_argument("per_second", nargs="?", type=float, default=1.0)
    parser.add_argument("--apis", type=int, default=1)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--selection", choices=sorted(SELECTIONS), default="status")
    parser.add_argument("--no-baseline", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
