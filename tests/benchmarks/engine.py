"""Engine benchmark: N prospects in a one-email-step sequence, delivered by the
worker (a `leadline worker` process: its scheduler loop and send jobs) into a local
aiosmtpd sink; a bare aiosmtplib loop sends the same messages, prebuilt, over as
many connections as the engine uses, into the same sink, twice before the engine
runs and twice after (the median of the four counts: the machine's speed drifts
within minutes, and bare runs on both sides of the engine's keep the drift out of
the ratio). The sink runs in this process; the worker and the bare loop each in a
process of their own (a bare loop in the sink's process would share its
interpreter and reach about half its rate, flattering the ratio).

    .venv/bin/python -m tests.benchmarks.engine [N [WORKERS]]

On the PostgreSQL of DATABASE_URL (in a database of its own, dropped after)
and the Redis of REDIS_URL when set, else SQLite and an embedded Redis in a
temporary directory. Prints steps per second, the worker's (from the commit of
the sequence's activation, with the worker running and the setup's events
relayed, to the last message at the sink: every scheduler pass, every send and
the relay of every event they make count) and counting the activation too (an
API write of 10,000 rows, during which the worker can do nothing), the bare
loop's rate and the ratios; with each, the CPU each kind of process used and how
busy the machine's cores were.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
from redis.asyncio import Redis
from tortoise import connections as tortoise_connections

from app import db, redis
from app.accounts import service as accounts
from app.accounts.actor import system_actor
from app.accounts.models import Organization
from app.clock import SystemClock
from app.config import Settings
from app.events import relay
from app.events.models import Event
from app.messaging.mail import build_email
from app.messaging.models import Mailbox, Message
from app.messaging.transports import SmtpTransport
from app.prospects import service as prospects
from app.prospects.models import Prospect
from app.sequences import enrollments, templates
from app.sequences import service as sequences
from app.sequences.models import Sequence, SequenceStep, StepType
from app.sequences.service import StepSpec
from tasks.worker import check
from tests.conftest import fresh_database
from tests.smtp_sink import smtp_sink


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this machine's PostgreSQL server processes, the
    `leadline worker` processes and this process (the sink), read from /proc: empty
    where there is none (the breakdown is then left out)."""
    totals = {"worker": 0.0, "postgres": 0.0, "sink": 0.0}
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(entry.name) == os.getpid():
            totals["sink"] += seconds
        elif command[0].endswith(b"postgres") or command[0].startswith(b"postgres:"):
            totals["postgres"] += seconds
        elif any(a.endswith(b"/leadline") and b == b"worker" for a, b in itertools.pairwise(command)):
            totals["worker"] += seconds
    return totals


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, from /proc/stat ((0, 0)
    where there is none): the share of the cores a phase kept busy."""
    try:
        counters = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    idle = counters[3] + counters[4]  # idle, iowait
    return (sum(counters) - idle) / tick, sum(counters) / tick


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    elapsed = after[1] - before[1]
    return (after[0] - before[0]) / elapsed if elapsed > 0 else None


@dataclass(frozen=True)
class Phase:
    """A timed phase: its rate, the CPU seconds each kind of process used, the share of
    the machine's cores that were busy."""

    rate: float
    cpu: dict[str, float]
    busy: float | None


BARE_RUNS = 2
"""Bare loops on each side of the engine's run, their median taken: one run's rate
can move by up to a half within minutes on a 2-core machine, and runs only after
the engine's would let the ratio swing with the drift between the two
(tests/benchmarks/README.md)."""


MAILBOX = os.environ.get("BENCH_MAILBOX", "1") != "0"
"""Send through the organization's shared mailbox with limits that never bind (a
billion a day and a domain an hour), so the limits' counting is measured: the
default; BENCH_MAILBOX=0 sends from emailFrom, as before mailboxes."""
HIGH_LIMIT = 1_000_000_000


async def prepare(settings: Settings, count: int, *, mailbox: bool = MAILBOX) -> int:
    """An organization with ``count`` prospects enrolled in an inactive one-email
    sequence, sending through a shared mailbox (``mailbox``) or from emailFrom; its id."""
    clock = SystemClock()
    created = await accounts.create_organization(
        name="Bench", admin_email=f"bench-{uuid.uuid4().hex[:8]}@acme.example", admin_name=None, clock=clock
    )
    await Organization.filter(id=created.organization.id).update(email_from="sales@acme.example")
    if mailbox:
        await Mailbox.create(
            organization_id=created.organization.id,
            address=f"team@{created.organization.id}.acme.example",
            daily_limit=HIGH_LIMIT,
            per_domain_hourly_limit=HIGH_LIMIT,
            created_at=clock.now(),
        )
    actor = system_actor(created.organization.id, clock)
    from app import presets

    await presets.apply(actor=actor, name="lead-workflow")
    sequence = await sequences.create_sequence(
        actor=actor,
        name="Bench",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        active=False,
        steps=[
            StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}, a short note.", subject="Hi {{ first_name }}")
        ],
    )
    for start in range(0, count, 1000):
        made, _ = await prospects.create_prospects(
            actor=actor,
            inputs=[
                {"first_name": f"P{i}", "email": f"p{i}@client.example"} for i in range(start, min(count, start + 1000))
            ],
        )
        await enrollments.enroll(
            actor=actor,
            sequence_id=sequence.id,
            prospect_ids=[p.id for p in made],
            activate=None,
        )
    return created.organization.id


async def engine_rate(
    settings: Settings,
    organization_id: int,
    env: dict[str, str],
    sink_count: Callable[[], int],
    count: int,
    workers: int,
) -> tuple[Phase, float]:
    """Starts ``workers`` `leadline worker` processes, waits until they take jobs, then
    activates the sequence and times from there until the sink holds ``count`` messages:
    the engine's phase (steps a second from the activation's commit) and the seconds
    the activation itself took."""
    processes = [
        await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "leadline"),
            "worker",
            env={**os.environ, **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    location = redis.locate(settings)
    nudges = Redis.from_url(location.url)
    try:
        for _ in range(workers):
            if not await check(location, wait_seconds=60):
                raise RuntimeError("the workers did not start")
        # The setup's events (10,000 prospects created and enrolled: 30,000) were made
        # with no worker running; a running engine would have relayed them as they came.
        waited = time.perf_counter()
        while await Event.filter(seq=None).exists():
            if time.perf_counter() - waited > 120:
                raise RuntimeError("the workers did not relay the setup's events in 2 minutes")
            await asyncio.sleep(0.05)
        sequence = await Sequence.get(organization_id=organization_id, name="Bench")
        cpu_before, machine_before = cpu_seconds(), machine_busy()
        started, activation_cpu = time.perf_counter(), time.process_time()
        actor = system_actor(sequence.organization_id, SystemClock())
        await enrollments.set_sequence_active(actor=actor, sequence_id=sequence.id, active=True)
        await relay.nudge(nudges)  # as the API does after a write: the worker's scheduler runs at once
        activation = time.perf_counter() - started
        activation_cpu = time.process_time() - activation_cpu
        while sink_count() < count:
            if any(p.returncode is not None for p in processes):
                raise RuntimeError("a worker stopped")
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {sink_count()} of {count} messages arrived in 10 minutes")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        cpu = {name: seconds - cpu_before[name] for name, seconds in cpu_seconds().items()}
        if cpu:
            cpu["sink"] -= activation_cpu  # the API's write, in this process
        return Phase(count / (elapsed - activation), cpu, busy_share(machine_before, machine_busy())), activation
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await process.wait()
        await nudges.aclose()
        location.close()


async def bare_messages(settings: Settings, organization_id: int, count: int) -> list[tuple[str, str, bytes]]:
    """The engine's messages as the bare loop sends them, prebuilt before the engine
    runs: the sequence's step rendered for each prospect and built by the engine's own
    render_message and build_email, numbered as the engine's messages will be in the benchmark's new
    database (1 to ``count``), so each has the size and headers of the engine's."""
    organization = await Organization.get(id=organization_id)
    sequence = await Sequence.get(organization_id=organization_id, name="Bench")
    [step] = await SequenceStep.filter(sequence_id=sequence.id)
    prospects = await Prospect.filter(organization_id=organization_id).order_by("id").limit(count)
    now = SystemClock().now()
    built = []
    for number, prospect in enumerate(prospects, start=1):
        subject, body = templates.render_message(step.subject, step.body, prospect, organization.name)
        message = Message(
            id=number, prospect_id=prospect.id, to_address=prospect.email, subject=subject, body=body, created_at=now
        )
        email = build_email(message, organization, settings)
        built.append((email.sender, email.recipient, email.data))
    return built


async def bare_rates(path: str, smtp_url: str, connections: int, before_each: Callable[[], None]) -> list[Phase]:
    """BARE_RUNS runs of the bare loop over the messages pickled in ``path``, each by a
    process of its own (as the engine's worker is), so it does not share the sink's
    interpreter; ``before_each`` runs before every run (emptying the sink)."""
    phases = []
    for _ in range(BARE_RUNS):
        before_each()
        sink_before = cpu_seconds().get("sink", 0.0)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.benchmarks.engine",
            "--bare",
            path,
            smtp_url,
            str(connections),
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the bare loop failed (exit {child.returncode})")
        rate, client_cpu, busy = (float(value) for value in output.split())
        cpu = {"client": client_cpu, "sink": cpu_seconds().get("sink", 0.0) - sink_before}
        phases.append(Phase(rate, cpu, busy if busy >= 0 else None))
    return phases


async def bare_loop(path: str, smtp_url: str, connections: int) -> tuple[float, float, float]:
    """Sends the prebuilt messages in ``path`` over ``connections`` reused connections:
    (messages per second, the CPU seconds this process spent sending them, the share
    of the machine's cores busy meanwhile, -1 where unknown)."""
    prebuilt: list[tuple[str, str, bytes]] = pickle.loads(Path(path).read_bytes())  # noqa: ASYNC240 (before timing)
    transport = SmtpTransport(smtp_url, connections=connections)
    clients = [aiosmtplib.SMTP(**transport._options) for _ in range(connections)]  # type: ignore[arg-type]
    for client in clients:
        await client.connect()
    started, cpu, machine = time.perf_counter(), time.process_time(), machine_busy()

    async def lane(client: aiosmtplib.SMTP, index: int) -> None:
        for sender, recipient, data in prebuilt[index::connections]:
            await client.sendmail(sender, [recipient], data)

    await asyncio.gather(*(lane(c, i) for i, c in enumerate(clients)))
    elapsed, cpu, busy = time.perf_counter() - started, time.process_time() - cpu, busy_share(machine, machine_busy())
    for client in clients:
        await client.quit()
    return len(prebuilt) / elapsed, cpu, -1.0 if busy is None else busy


async def main(count: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, smtp_sink() as (sink, smtp_url):
        # A database of its own (created and dropped on the PostgreSQL of DATABASE_URL).
        async with fresh_database(file=Path(tmp) / "bench.sqlite3") as database_url:
            env = {
                "LEADLINE_DATA_DIR": str(Path(tmp) / "data"),
                "DATABASE_URL": database_url,
                "SMTP_URL": smtp_url,
            }
            for name in ("REDIS_URL", "SMTP_CONNECTIONS"):  # the worker's and the bare loop's alike
                if os.environ.get(name):
                    env[name] = os.environ[name]
            settings = Settings.from_env(env)
            connections = settings.smtp_connections * workers
            await db.migrate(settings)
            await db.init(settings)
            try:
                organization_id = await prepare(settings, count)
                prebuilt = Path(tmp) / "bare.pickle"
                prebuilt.write_bytes(pickle.dumps(await bare_messages(settings, organization_id, count)))
                bares = await bare_rates(str(prebuilt), smtp_url, connections, sink.raw.clear)
                sink.raw.clear()
                if settings.database_url.startswith("postgres"):
                    # Statistics as autovacuum leaves them within a minute of an import (the
                    # run starts seconds after it); the tables that fill during the run do not get them.
                    await tortoise_connections.get("default").execute_script("ANALYZE")
                engine, activation = await engine_rate(
                    settings, organization_id, env, lambda: len(sink.raw), count, workers
                )
                bares += await bare_rates(str(prebuilt), smtp_url, connections, sink.raw.clear)
            finally:
                await db.close()
    database = "PostgreSQL" if settings.database_url.startswith("postgres") else "SQLite"
    if database == "SQLite":
        engine.cpu.pop("postgres", None)  # the machine's server, idle: SQLite runs in the worker
    report(count, database, workers, connections, engine, activation, bares)


def report(
    count: int, database: str, workers: int, connections: int, engine: Phase, activation: float, bares: list[Phase]
) -> None:
    print(
        f"engine: {count} email steps in a {database} database, {workers} worker process(es), "
        f"{connections} SMTP connections"
    )
    through = f"a mailbox with limits of {HIGH_LIMIT:,} a day and a domain an hour" if MAILBOX else "emailFrom"
    print(f"  sending through {through}")
    overall = count / (count / engine.rate + activation)
    print(f"  engine     {engine.rate:8.0f} steps/s (the worker's: from the activation's commit to the last message)")
    print(f"             {overall:8.0f} steps/s counting the activation ({activation:.2f} s, an API write)")
    # The CPU each kind of process used a step or a message (PostgreSQL's count
    # includes the activation), and how busy the machine's cores were.
    print(f"  CPU        {cpu_line(engine, count, 'step')}")
    bare = statistics.median(phase.rate for phase in bares)
    each = ", ".join(f"{phase.rate:.0f}" for phase in bares)
    print(
        f"  bare loop  {bare:8.0f} messages/s (the median of {len(bares)} runs, two before the engine's and two after: {each})"
    )
    for phase in bares:
        print(f"  CPU        {cpu_line(phase, count, 'message')}")
    print(f"  ratio      {engine.rate / bare:8.2f} ({overall / bare:.2f} counting the activation)")


def cpu_line(phase: Phase, count: int, unit: str) -> str:
    """µs a step (or message) of each kind of process, and the machine's busy share (the sink: this process)."""
    each = ", ".join(f"{name} {seconds / count * 1e6:.0f}" for name, seconds in phase.cpu.items())
    busy = f"; cores {phase.busy:.0%} busy" if phase.busy is not None else ""
    return f"µs a {unit}: {each}{busy}" if each else busy.lstrip("; ")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:  # the bare loop's own process
        print(*asyncio.run(bare_loop(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        sys.exit()
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000, int(sys.argv[2]) if len(sys.argv) > 2 else 1))
