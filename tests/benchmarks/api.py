"""API benchmark: one organization of N prospects (each with an owner, a status
and an enrollment), a real `leadline serve`, and C concurrent clients sending a
70/30 mix of reads and writes for a few seconds at each concurrency:

- 35 % ``{ viewer { id } }``;
- 35 % a ``prospects(first: 100)`` page selecting each prospect's status, owner
  and enrollments;
- 15 % ``setProspectStatus`` and 15 % ``updateProspect`` of a random prospect.

Prints requests/s, p50 and p99 per operation and overall, the errors, and the
CPU the server used per request (from /proc: the serve process and its
children, so ``--workers`` counts every worker) beside the clients' own. The
clients are spread over processes (``--client-processes``, by default one per
10 clients, at most 4) so that they are not what is measured.

    .venv/bin/python -m tests.benchmarks.api [--prospects N] [--clients 1,20,100]
        [--seconds S] [--workers W] [--leadline PATH ...] [--rounds R] [--database URL]
        [--mix viewer=50,page=50]

On the PostgreSQL of DATABASE_URL (in a database of its own, dropped after;
100,000 prospects by default) and the Redis of REDIS_URL when set, else SQLite
(10,000 by default) and an embedded Redis in a temporary directory. The data
are seeded with bulk inserts, not through the API. ``--database URL`` uses
(and keeps) that database, seeding it only when it has no benchmark
organization yet. Several ``--leadline`` executables (another worktree's
``.venv/bin/leadline``: a "before") are measured in turn on the same data,
``--rounds`` times alternated, so that before and after share a sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import httpx
from tortoise import connections

from app import db, ids
from app.accounts import service as accounts
from app.accounts.actor import Actor, system_actor
from app.accounts.models import Organization, Role, User
from app.clock import SystemClock
from app.config import Settings
from app.prospects.fields import search_text
from app.prospects.models import Prospect
from app.sequences import lifecycle
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from app.sequences.state import Stage
from app.workflows.models import Status
from tests.conftest import fresh_database
from tests.live_processes import free_port, stop, until_ready

ORGANIZATION = "Bench API"
AGENTS = 10
BATCH = 5_000

VIEWER = "query Viewer { viewer { id } }"
PAGE = (
    "query Page { prospects(first: 100) { edges { node { id firstName lastName email"
    " status { id name } owner { id name }"
    " enrollments(first: 5) { edges { node { id stage } } } } } pageInfo { hasNextPage endCursor } } }"
)
SET_STATUS = (
    "mutation SetStatus($input: SetProspectStatusInput!) { setProspectStatus(input: $input)"
    " { prospect { id status { id name } } errors { message } } }"
)
UPDATE = (
    "mutation Update($input: UpdateProspectInput!) { updateProspect(input: $input)"
    " { prospect { id title } errors { message } } }"
)
Mix = tuple[tuple[str, int], ...]
MIX: Mix = (("viewer", 35), ("page", 35), ("setProspectStatus", 15), ("updateProspect", 15))
"""Operations and their shares of the requests: 70 % reads, 30 % writes (``--mix`` changes them)."""


def mix(text: str) -> Mix:
    """``viewer=50,page=50``: operations of MIX and their weights."""
    known = {name for name, _ in MIX}
    shares = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in known or not weight.isdigit() or int(weight) == 0:
            raise argparse.ArgumentTypeError(f"{part!r}: expected NAME=WEIGHT, NAME one of {', '.join(sorted(known))}")
        shares.append((name, int(weight)))
    return tuple(shares)


@dataclass(frozen=True)
class Fixture:
    token: str
    prospect_ids: tuple[int, int]
    """The first and last prospect id (the organization's prospects are consecutive)."""
    status_ids: list[int]


# --- seeding -------------------------------------------------------------------------------------


async def seed(count: int) -> Fixture:
    """The benchmark organization with ``count`` prospects, made by bulk inserts; or the one there."""
    clock = SystemClock()
    org = await Organization.filter(name=ORGANIZATION).order_by("id").first()
    if org is None:
        created = await accounts.create_organization(
            name=ORGANIZATION, admin_email="bench@acme.example", admin_name=None, clock=clock
        )
        org = created.organization
        actor = system_actor(org.id, clock)
        from app import presets

        await presets.apply(actor=actor, name="lead-workflow")
        await org.refresh_from_db()
        now = clock.now()
        await User.bulk_create(
            [
                User(
                    organization_id=org.id,
                    name=f"Agent {n}",
                    email=f"agent{n}@acme.example",
                    role=Role.AGENT,
                    created_at=now,
                )
                for n in range(AGENTS)
            ]
        )
        owners = await User.filter(organization_id=org.id).values_list("id", flat=True)
        sequence = await sequences.create_sequence(
            actor=actor,
            name="Bench",
            stop_on_reply=None,
            unresponsive_after_seconds=None,
            send_window=None,
            active=False,
            steps=[StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}.", subject="Hi")],
        )
        statuses = await Status.filter(organization_id=org.id, deleted_at=None).values_list("id", flat=True)
        started = time.perf_counter()
        for start in range(0, count, BATCH):
            rows = []
            for n in range(start, min(count, start + BATCH)):
                values = {
                    "first_name": f"First{n}",
                    "last_name": f"Last{n}",
                    "email": f"p{n}@client{n % 997}.example",
                    "company": f"Company {n % 5000}",
                }
                rows.append(
                    Prospect(
                        organization_id=org.id,
                        **values,
                        search_text=search_text(values),
                        status_id=statuses[n % len(statuses)],
                        owner_id=owners[n % len(owners)],
                        custom_fields={},
                        opted_out_channels=[],
                        created_at=now,
                        updated_at=now,
                    )
                )
            await Prospect.bulk_create(rows)
        first = await Prospect.filter(organization_id=org.id).order_by("id").first().values_list("id", flat=True)
        last = await Prospect.filter(organization_id=org.id).order_by("-id").first().values_list("id", flat=True)
        for start in range(int(first), int(last) + 1, BATCH):  # type: ignore[call-overload]
            await Enrollment.bulk_create(
                [
                    Enrollment(
                        organization_id=org.id,
                        prospect_id=pk,
                        sequence_id=sequence.id,
                        stage=Stage.NOT_STARTED,
                        active_key=lifecycle.active_key(pk, sequence.id),
                        enrolled_at=now,
                    )
                    for pk in range(start, min(int(last) + 1, start + BATCH))  # type: ignore[call-overload]
                ]
            )
        if connections.get("default").capabilities.dialect == "postgres":
            await connections.get("default").execute_script("ANALYZE")
        print(f"seeded {count:,} prospects and enrollments in {time.perf_counter() - started:.1f} s", flush=True)
        token = created.token
    else:
        admin = await User.get(organization_id=org.id, role=Role.ADMIN)
        admin_actor = Actor(organization_id=org.id, user_id=admin.id, role=Role.ADMIN, clock=clock)
        token, _ = await accounts.create_token(actor=admin_actor, name="bench", user_id=None)
    first = await Prospect.filter(organization_id=org.id).order_by("id").first().values_list("id", flat=True)
    last = await Prospect.filter(organization_id=org.id).order_by("-id").first().values_list("id", flat=True)
    statuses = await Status.filter(organization_id=org.id, deleted_at=None).values_list("id", flat=True)
    return Fixture(
        token=token,
        prospect_ids=(int(first), int(last)),  # type: ignore[call-overload]
        status_ids=[int(pk) for pk in statuses],  # type: ignore[call-overload]
    )


# --- clients (each batch in a process of its own) ------------------------------------------------


def _drive(
    base: str, fixture: Fixture, clients: int, begin: float, warmup: float, end: float, salt: int, operations: Mix
) -> tuple[list[tuple[str, float, bool]], float]:
    """Runs ``clients`` clients from wall-clock ``begin`` to ``end``; the requests started
    after ``begin + warmup``: (operation, latency, ok) each; and this process's CPU seconds."""
    return asyncio.run(_clients(base, fixture, clients, begin, warmup, end, salt, operations))


async def _clients(
    base: str, fixture: Fixture, clients: int, begin: float, warmup: float, end: float, salt: int, operations: Mix
) -> tuple[list[tuple[str, float, bool]], float]:
    names = [name for name, _ in operations]
    weights = [weight for _, weight in operations]
    results: list[tuple[str, float, bool]] = []
    headers = {"Authorization": f"Bearer {fixture.token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as http:

        async def one(index: int) -> None:
            chance = random.Random(salt * 1_000 + index)
            low, high = fixture.prospect_ids
            while time.time() < end:
                operation = chance.choices(names, weights)[0]
                prospect = ids.encode("Prospect", chance.randint(low, high))
                if operation == "viewer":
                    body: dict[str, object] = {"query": VIEWER}
                elif operation == "page":
                    body = {"query": PAGE}
                elif operation == "setProspectStatus":
                    status = ids.encode("Status", chance.choice(fixture.status_ids))
                    body = {"query": SET_STATUS, "variables": {"input": {"id": prospect, "statusId": status}}}
                else:
                    title = f"Title {chance.randint(0, 10**6)}"
                    body = {"query": UPDATE, "variables": {"input": {"id": prospect, "title": title}}}
                started = time.time()
                try:
                    response = await http.post("/graphql", json=body)
                    answer = response.json()
                    ok = response.status_code == 200 and "errors" not in answer
                    if ok and operation in ("setProspectStatus", "updateProspect"):
                        ok = not answer["data"][operation]["errors"]
                except httpx.HTTPError:
                    ok = False
                if started >= begin + warmup:
                    results.append((operation, time.time() - started, ok))

        await asyncio.sleep(max(0.0, begin - time.time()))
        cpu = time.process_time()
        await asyncio.gather(*(one(index) for index in range(clients)))
        cpu = time.process_time() - cpu
    return results, cpu


# --- the server ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds used by ``pid`` and its descendants still running, and the seconds
    their main threads waited, runnable, for a CPU (/proc/PID/schedstat): on a shared
    machine, the time the server was ready to run but others had the cores."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, tuple[float, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            waited = int((entry / "schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = ((int(fields[11]) + int(fields[12])) / tick, waited)
    cpu = waited = 0.0
    for child, (seconds, queued) in used.items():
        seen = child
        while seen not in (0, 1, pid):
            seen = parents.get(seen, 0)
        if seen == pid:
            cpu += seconds
            waited += queued
    return cpu, waited


@contextlib.asynccontextmanager
async def serving(leadline: str, env: dict[str, str], workers: int) -> AsyncIterator[tuple[str, int]]:
    """`leadline serve` (with ``workers`` worker processes), ready: its base URL and pid."""
    port = free_port()
    extra = ["--workers", str(workers)] if workers > 1 else []
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below, after the child stops)
    child = await asyncio.create_subprocess_exec(
        leadline,
        "serve",
        *extra,
        env=env | {"HOST": "127.0.0.1", "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"

    async def exited() -> str:
        log.seek(0)
        return log.read().decode()[-3000:]

    try:
        await until_ready(base, child, exited, seconds=60)
        yield base, child.pid
    finally:
        await stop(child)
        log.close()


@dataclass
class Level:
    clients: int
    seconds: float
    results: list[tuple[str, float, bool]]
    server_cpu: float
    server_waited: float
    """Seconds the server was runnable but had no CPU (other processes had the cores)."""
    client_cpu: float
    operations: Mix

    def lines(self) -> list[str]:
        out = []
        ok = [r for r in self.results if r[2]]
        errors = len(self.results) - len(ok)
        rate = len(ok) / self.seconds
        cpu = f"server CPU {self.server_cpu * 1e3 / max(len(self.results), 1):5.1f} ms/request"
        client = f"clients {self.client_cpu * 1e3 / max(len(self.results), 1):.1f}"
        waited = (
            f"serve waited for a CPU {100 * self.server_waited / self.seconds:.0f} % of the time, its processes summed"
        )
        out.append(f"  {self.clients:3d} clients  {rate:7.1f} requests/s  {cpu} ({client})  errors {errors}")
        out.append(f"      ({waited})")
        for name in ["all", *(n for n, _ in self.operations)]:
            latencies = sorted(lat * 1000 for op, lat, good in ok if name in ("all", op))
            if not latencies:
                continue
            p50 = statistics.median(latencies)
            p99 = latencies[max(0, math.ceil(len(latencies) * 0.99) - 1)]
            out.append(f"      {name:18s} {len(latencies) / self.seconds:7.1f}/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
        return out


async def level(
    base: str,
    pid: int,
    fixture: Fixture,
    clients: int,
    seconds: float,
    warmup: float,
    processes: int,
    profile: Path | None = None,
    operations: Mix = MIX,
) -> Level:
    processes = max(1, min(processes, clients))
    shares = [clients // processes + (1 if n < clients % processes else 0) for n in range(processes)]
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        # Every client process started and imported before the clock starts: on a busy
        # machine that takes seconds, which would otherwise come out of the measured time.
        await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0.2) for _ in range(processes)))
        begin = time.time() + 0.2
        end = begin + warmup + seconds
        futures = [
            loop.run_in_executor(pool, _drive, base, fixture, share, begin, warmup, end, salt, operations)
            for salt, share in enumerate(shares)
        ]
        await asyncio.sleep(max(0.0, begin + warmup - time.time()))
        profiler = None
        if profile is not None:  # py-spy, sampling the server over the measured seconds
            profiler = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--duration",
                str(int(seconds)),
                "--format",
                "raw",
                "--output",
                str(profile / f"serve-{clients}.txt"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        before = cpu_seconds(pid)
        await asyncio.sleep(max(0.0, end - time.time()))
        after = cpu_seconds(pid)
        done = await asyncio.gather(*futures)
        if profiler is not None:
            await profiler.wait()
    results = [r for part, _ in done for r in part]
    return Level(
        clients, seconds, results, after[0] - before[0], after[1] - before[1], sum(cpu for _, cpu in done), operations
    )


# --- the run -------------------------------------------------------------------------------------


async def run(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database = contextlib.nullcontext(arguments.database) if arguments.database else None
        async with database or fresh_database(file=Path(tmp) / "bench.sqlite3") as database_url:
            env = {**os.environ, "LEADLINE_DATA_DIR": str(Path(tmp) / "data"), "DATABASE_URL": database_url}
            settings = Settings.from_env(env)
            on_postgres = database_url.startswith("postgres")
            count = arguments.prospects or (100_000 if on_postgres else 10_000)
            await db.migrate(settings)
            await db.init(settings)
            try:
                fixture = await seed(count)
            finally:
                await db.close()
            kind = "PostgreSQL" if on_postgres else "SQLite"
            redis = "Redis" if os.environ.get("REDIS_URL") else "embedded Redis"
            span = fixture.prospect_ids[1] - fixture.prospect_ids[0] + 1
            print(
                f"api: {span:,} prospects in one organization, {kind}, {redis}, "
                f"serve with {arguments.workers} worker process(es), {arguments.seconds:g} s per level",
                flush=True,
            )
            for round_ in range(arguments.rounds):
                for leadline in arguments.leadline or [str(Path(sys.executable).with_name("leadline"))]:
                    print(f"round {round_ + 1}: {leadline}", flush=True)
                    async with serving(leadline, env, arguments.workers) as (base, pid):
                        for clients in arguments.clients:
                            processes = arguments.client_processes or min(4, math.ceil(clients / 10))
                            result = await level(
                                base,
                                pid,
                                fixture,
                                clients,
                                arguments.seconds,
                                arguments.warmup,
                                processes,
                                arguments.profile,
                                arguments.mix,
                            )
                            print("\n".join(result.lines()), flush=True)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tests.benchmarks.api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prospects", type=int, help="prospects to seed (100,000 on PostgreSQL, 10,000 on SQLite)")
    parser.add_argument(
        "--clients", type=lambda s: [int(c) for c in s.split(",")], default=[1, 20, 100], help="e.g. 1,20,100"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per level before measuring")
    parser.add_argument("--workers", type=int, default=1, help="serve's worker processes (`serve --workers`)")
    parser.add_argument("--client-processes", type=int, default=0, help="default: one per 10 clients, at most 4")
    parser.add_argument("--leadline", action="append", help="the leadline executable to serve (repeatable)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every --leadline, alternated")
    parser.add_argument(
        "--profile",
        type=Path,
        help="a directory for py-spy profiles of serve (collapsed stacks, for flamegraph.pl or speedscope), one per level",
    )
    parser.add_argument("--database", help="use (and keep) this database URL instead of a fresh one")
    parser.add_argument(
        "--mix", type=mix, default=MIX, help="operations and weights, e.g. viewer=50,page=50 (default: the 70/30 mix)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(run(parse(sys.argv[1:])))
