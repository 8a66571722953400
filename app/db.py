"""Persistence: the Tortoise configuration, start-up, shutdown and migrations."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as run_migrations

from app import datadir
from app.config import Settings

T = TypeVar("T")
logger = logging.getLogger("leadline.db")
_UNREACHABLE = (
    OSError,  # refused, reset
    asyncpg.PostgresConnectionError,  # lost mid-statement
    asyncpg.CannotConnectNowError,  # starting up, shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
RETRY_PAUSES = (0.25, 0.5, 1.0, 2.0, 5.0)
"""Seconds between tries of work the database was unreachable for; the last repeats."""

POOL_SIZE = 20
"""PostgreSQL connections each process keeps at most (Tortoise's default is 5), unless
DATABASE_URL says otherwise (`?maxsize=N`). A page of prospects runs four queries,
some at once (its DataLoaders); with 5, twenty concurrent requests queued for a
connection and a `{ viewer { id } }` waited behind the pages (p99 433/312 ms with 20
against 784/1,278 ms with 5 at 20 clients: tests/benchmarks/README.md)."""

MODEL_MODULES = [
    "app.accounts.models",
    "app.workflows.models",
    "app.prospects.models",
    "app.sequences.models",
    "app.messaging.models",
    "app.events.models",
    "app.webhooks.models",
]


def tortoise_config(database_url: str) -> dict[str, Any]:
    connection: str | dict[str, Any] = database_url
    if database_url.startswith("sqlite://"):
        if "?" not in database_url:
            # Leadline's CLI may write while `leadline dev` runs: wait for the lock.
            database_url += "?busy_timeout=10000"
        # Transactions take the write lock first (see app/sqlite_immediate.py).
        connection = expand_db_url(database_url) | {"engine": "app.sqlite_immediate"}
    elif database_url.startswith(("postgres://", "postgresql://")):
        # Transactions that always give their connection back (see app/postgres_client.py).
        connection = expand_db_url(database_url) | {"engine": "app.postgres_client"}
        connection["credentials"].setdefault("maxsize", POOL_SIZE)
        # A plan for each execution's values, never the generic plan PostgreSQL may
        # switch a prepared statement to after five runs: with statistics that know
        # one organization only, that plan reads a page of any organization through
        # the primary key, every row of the big one first (issue 24; ~15 µs of
        # planning a statement, tests/test_plans.py).
        connection["credentials"].setdefault("server_settings", {})["plan_cache_mode"] = "force_custom_plan"
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "app.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _private_sqlite_file(database_url: str) -> None:
    """Makes a SQLite database file 0600 before SQLite opens it, and tightens one
    made before: SQLite gives its -wal, -shm and -journal files the database
    file's mode (see app/datadir.py)."""
    if not database_url.startswith("sqlite://"):
        return
    path = expand_db_url(database_url)["credentials"]["file_path"]
    if path == ":memory:":
        return
    datadir.make_file(Path(path))
    for suffix in ("-wal", "-shm", "-journal"):
        datadir.tighten(Path(path + suffix))


def unreachable(error: BaseException) -> bool:
    """Whether ``error``, or an error it arose from, says the database could not be
    reached (a connection refused or lost, a server shutting down or starting up: a
    restart), so the same work may succeed after a pause."""
    seen: BaseException | None = error
    for _ in range(10):  # a chain of causes, not a cycle
        if seen is None:
            return False
        if isinstance(seen, _UNREACHABLE) or _protocol_ended(seen) or _closed_under_us(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def log_failure(log: logging.Logger, what: str, error: BaseException) -> None:
    """Logs the failure of work that runs again soon (a worker loop's pass): one
    warning line when the database was unreachable (a restart, which would
    otherwise give a traceback a pass until it is back), else the traceback."""
    if unreachable(error):
        log.warning("%s: the database is unreachable (%s: %s)", what, type(error).__name__, error)
    else:
        log.error("%s", what, exc_info=error)


def _closed_under_us(error: BaseException) -> bool:
    """asyncpg's error for a method of a transaction or a connection whose connection
    is closed. A server that ends a connection between two statements of a
    transaction closes it without an error of its own: asyncpg gives the connection
    back to the pool as it closes, so the next statement fails as if it had been
    released ("connection has been released back to the pool": alone, that could be
    a misuse, and stays a failure), and the rollback then finds it closed. Leadline
    closes no connection mid-work, so a closed one was the server's doing."""
    return type(error) is asyncpg.InterfaceError and str(error).endswith("the underlying connection is closed")


def _protocol_ended(error: BaseException) -> bool:
    """asyncpg's error for a statement on a connection whose protocol the server ended
    before the close reached it: a fast shutdown sends each idle connection a FATAL
    notice, which asyncpg, with no statement to give it to, takes as a protocol error
    ("cannot switch to state 12; another operation (2) is in progress", 2: discarding
    until the next sync), or the close came first ("failed" state)."""
    return type(error) is asyncpg.InternalClientError and str(error).startswith("cannot switch to state")


async def while_unreachable(work: Callable[[bool], Awaitable[T]], *, until: float, what: str) -> T:
    """``work(again)`` run again after a pause (RETRY_PAUSES) while the database is
    unreachable, until ``time.monotonic()`` would pass ``until``; then its error.
    ``again``: an earlier try failed, perhaps after its commit."""
    tries = 0
    while True:
        try:
            return await work(tries > 0)
        except Exception as error:
            pause = RETRY_PAUSES[min(tries, len(RETRY_PAUSES) - 1)]
            if not unreachable(error) or time.monotonic() + pause >= until:
                raise
            logger.warning(
                "%s: the database is unreachable (%s: %s); again in %s s", what, type(error).__name__, error, pause
            )
        await asyncio.sleep(pause)
        tries += 1


async def init(settings: Settings) -> None:
    """Connects the ORM for this process (one global context, shared by every task)."""
    _private_sqlite_file(settings.database_url)
    await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)


async def close() -> None:
    await Tortoise.close_connections()


_migrating: ContextVar[Settings] = ContextVar("migrating")


async def migrate(settings: Settings) -> None:
    """Applies the committed migrations (app/migrations) to the configured database."""
    _private_sqlite_file(settings.database_url)
    # Tortoise calls a data migration with the schema state and a connection only.
    token = _migrating.set(settings)
    try:
        await run_migrations(config=tortoise_config(settings.database_url))
    finally:
        _migrating.reset(token)
    await Tortoise.close_connections()


def migration_settings() -> Settings:
    """The settings of the migration run in progress, for data migrations that need
    them (0015 seals webhook secrets with SECRET_KEY): ``migrate``'s, or under
    Tortoise's own CLI the environment's, as TORTOISE_ORM reads it."""
    return _migrating.get(None) or Settings.from_env()


def __getattr__(name: str) -> Any:
    # `TORTOISE_ORM` is for Tortoise's own CLI (`tortoise makemigrations`),
    # named in pyproject.toml; Leadline itself passes its settings explicitly.
    if name == "TORTOISE_ORM":
        return tortoise_config(Settings.from_env().database_url)
    raise AttributeError(name)
