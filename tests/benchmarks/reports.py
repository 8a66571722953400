"""Reports benchmark: the pipeline report, system-status counts and agent load
over N prospects spread over the lead workflow's statuses and three agents.

    .venv/bin/python -m tests.benchmarks.reports [N]

On the PostgreSQL of DATABASE_URL (in a database of its own) when set, else
SQLite in a temporary directory. Prints the median of five runs of each report.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from app import bulk, db, presets
from app.accounts import service as accounts
from app.accounts.actor import system_actor
from app.accounts.models import Role
from app.clock import SystemClock
from app.config import Settings
from app.prospects import reports
from app.prospects.models import Prospect
from app.workflows.models import Status
from tests.conftest import fresh_database


async def median_ms(run: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def main(count: int) -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database(file=Path(tmp) / "bench.sqlite3") as url:
            settings = Settings.from_env({"LEADLINE_DATA_DIR": str(Path(tmp) / "data"), "DATABASE_URL": url})
            await db.migrate(settings)
            await db.init(settings)
            try:
                created = await accounts.create_organization(
                    name="Bench", admin_email="bench@acme.example", admin_name=None, clock=clock
                )
                actor = system_actor(created.organization.id, clock)
                await presets.apply(actor=actor, name="lead-workflow")
                agents = [
                    await accounts.create_user(actor=actor, name=f"A{n}", email=f"a{n}@acme.example", role=Role.AGENT)
                    for n in range(3)
                ]
                statuses = await Status.filter(organization_id=actor.organization_id).order_by("id")
                now = clock.now()
                await bulk.insert_returning_ids(
                    [
                        Prospect(
                            organization_id=actor.organization_id,
                            status_id=statuses[n % len(statuses)].id,
                            owner_id=agents[n % 4].id if n % 4 < 3 else None,
                            search_text="",
                            created_at=now,
                            updated_at=now,
                        )
                        for n in range(count)
                    ]
                )
                pipeline = await median_ms(lambda: reports.pipeline(actor=actor, workflow_id=None))
                systems = await median_ms(lambda: reports.system_status_counts(actor))
                load = await median_ms(lambda: reports.agent_load(actor))
            finally:
                await db.close()
    database = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(f"reports over {count} prospects, {database} (median of 5)")
    print(f"  pipelineReport      {pipeline:8.1f} ms")
    print(f"  systemStatusCounts  {systems:8.1f} ms")
    print(f"  agentLoad           {load:8.1f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
