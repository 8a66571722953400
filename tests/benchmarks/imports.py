"""Import benchmark: `leadline import` of a generated CSV of N prospects, as a
process of its own, timed, with its peak resident memory.

    .venv/bin/python -m tests.benchmarks.imports [N]

On the PostgreSQL of DATABASE_URL (in a database of its own) when set, else
SQLite in a temporary directory. Every row is new (the import creates them all);
one in a thousand is bad (an email that is none), as files are.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from app import db, ids, presets
from app.accounts import service as accounts
from app.accounts.actor import system_actor
from app.clock import SystemClock
from app.config import Settings
from tests.conftest import ON_POSTGRES, fresh_database
from tests.live_processes import LEADLINE

STATUSES = ("New Lead", "Attempting Contact", "Contact Made")
INDUSTRIES = ("Computing", "Retail", "Logistics", "Health", "Energy")
SAMPLE_SECONDS = 0.5
ANALYZE_SECONDS = 5.0


def write_file(path: Path, count: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("First Name", "Last Name", "Email", "Phone", "Company", "Job Title", "Status", "Industry"))
        for n in range(count):
            email = "not-an-email" if n % 1000 == 999 else f"lead{n}@client{n % 97}.example"
            writer.writerow(
                (
                    *(f"First{n}", f"Last{n}", email, f"+1202555{n % 10_000:04d}", f"Company {n % 5000}"),
                    *("Buyer", STATUSES[n % 3], INDUSTRIES[n % 5]),
                )
            )


async def organization(settings: Settings) -> str:
    await db.migrate(settings)
    await db.init(settings)
    try:
        clock = SystemClock()
        created = await accounts.create_organization(
            name="Bench", admin_email="bench@acme.example", admin_name=None, clock=clock
        )
        await presets.apply(actor=system_actor(created.organization.id, clock), name="lead-workflow")
        return ids.encode("Organization", created.organization.id)
    finally:
        await db.close()


def _high_water(pid: int) -> int:
    """The process's peak resident memory so far, in KB (0 once it has gone).
    Not getrusage's for children: a child's counts the parent's memory it was
    forked with, before it ran the command."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


@contextlib.asynccontextmanager
async def _autoanalyze(url: str) -> AsyncIterator[None]:
    """On PostgreSQL, ANALYZE the prospect table as autovacuum would (once a tenth
    of it changed since the last), which the test server runs without: a table
    never analyzed plans the import's look-up of 1,000 emails as a filter over
    every prospect of the organization, 12 s a batch at 280,000 rows."""
    if not ON_POSTGRES:
        yield
        return
    import asyncpg

    connection = await asyncpg.connect(url)

    async def watch() -> None:
        while True:
            await asyncio.sleep(ANALYZE_SECONDS)
            changed, live = await connection.fetchrow(
                "SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables WHERE relname = 'prospect'"
            )
            if changed > 50 + 0.1 * live:
                await connection.execute("ANALYZE prospect")

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connection.close()


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        write_file(path, count)
        size = path.stat().st_size
        async with fresh_database(file=Path(tmp) / "bench.sqlite3") as url:
            env = {**os.environ, "LEADLINE_DATA_DIR": str(Path(tmp) / "data"), "DATABASE_URL": url}
            org = await organization(Settings.from_env(env))
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                LEADLINE, "import", str(path), "--org", org, env=env, stdout=asyncio.subprocess.PIPE
            )
            peak = 0
            async with _autoanalyze(url):
                while process.returncode is None:
                    peak = max(peak, _high_water(process.pid))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(process.wait(), SAMPLE_SECONDS)
            out, _ = await process.communicate()
            elapsed = time.perf_counter() - started
    assert process.returncode == 0, out
    result = json.loads(out)
    database = "PostgreSQL" if ON_POSTGRES else "SQLite"
    print(f"import: {count:,} rows ({size / 1e6:,.0f} MB) into a {database} database")
    print(f"  {elapsed:,.1f} s, {count / elapsed:,.0f} rows/s (process start included)")
    print(f"  peak RSS of the import process {peak / 1024:,.0f} MB (its VmHWM, read every {SAMPLE_SECONDS:g} s)")
    print(f"  {json.dumps(result)}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
