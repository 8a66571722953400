"""Work retried while the database is unreachable (app.db.while_unreachable); the
PostgreSQL restart test (tests/test_postgres_restart.py) runs it against a real server."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import pytest
from tortoise import connections
from tortoise.backends.sqlite.client import SqliteTransactionWrapper
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import db
from tests.conftest import ON_POSTGRES, tasks_made


def _arising_from(cause: BaseException) -> Exception:
    """asyncpg's error for the rollback after a connection was lost (its context: the loss)."""
    error = asyncpg.InterfaceError("cannot call Transaction.rollback(): the underlying connection is closed")
    error.__context__ = cause
    return error


def _closed_after_release() -> Exception:
    """What a transaction's pass raised when the server ended its connection between
    two statements (tests/test_postgres_restart.py, 2026-12-07): asyncpg released the
    closing connection, the next statement found it released, the rollback closed."""
    error = asyncpg.InterfaceError("cannot call Transaction.rollback(): the underlying connection is closed")
    error.__context__ = asyncpg.InterfaceError(
        "cannot call Connection.execute(): connection has been released back to the pool"
    )
    return error


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        pytest.param(ConnectionRefusedError(111, "Connection refused"), True, id="refused"),
        pytest.param(asyncpg.ConnectionDoesNotExistError("closed mid-operation"), True, id="lost"),
        pytest.param(asyncpg.CannotConnectNowError("the database system is starting up"), True, id="starting"),
        pytest.param(asyncpg.AdminShutdownError("terminating connection"), True, id="shutting-down"),
        pytest.param(_arising_from(asyncpg.ConnectionDoesNotExistError("closed")), True, id="rollback-after-loss"),
        pytest.param(
            asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
            True,
            id="shutdown-notice-to-an-idle-connection",
        ),
        pytest.param(_closed_after_release(), True, id="rollback-after-a-close-between-statements"),
        pytest.param(asyncpg.InterfaceError("another operation is in progress"), False, id="misuse"),
        pytest.param(
            asyncpg.InterfaceError("cannot call Connection.execute(): connection has been released back to the pool"),
            False,
            id="a-released-connection-used",
        ),
        pytest.param(asyncpg.ProtocolError("unsupported authentication method"), False, id="protocol-error"),
        pytest.param(asyncpg.QueryCanceledError("statement timeout"), False, id="statement-timeout"),
        pytest.param(IntegrityError("duplicate key"), False, id="integrity"),
    ],
)
def test_unreachable_tells_a_lost_server_from_a_failed_statement(error: Exception, unreachable: bool) -> None:
    assert db.unreachable(error) is unreachable


async def test_work_runs_again_while_the_database_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "RETRY_PAUSES", (0.0,))
    tries: list[bool] = []

    async def work(again: bool) -> str:
        tries.append(again)
        if len(tries) < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "done"

    assert await db.while_unreachable(work, until=time.monotonic() + 60, what="test") == "done"
    assert tries == [False, True, True]


@pytest.mark.parametrize(
    ("error", "until"),
    [
        pytest.param(IntegrityError("duplicate key"), 60, id="not-unreachable"),
        pytest.param(ConnectionRefusedError(111, "Connection refused"), 0, id="past-until"),
    ],
)
async def test_other_errors_and_a_passed_deadline_are_raised_at_once(
    monkeypatch: pytest.MonkeyPatch, error: Exception, until: float
) -> None:
    monkeypatch.setattr(db, "RETRY_PAUSES", (0.0,))
    tries: list[bool] = []

    async def work(again: bool) -> None:
        tries.append(again)
        raise error

    with pytest.raises(type(error)):
        await db.while_unreachable(work, until=time.monotonic() + until, what="test")
    assert tries == [False]


@pytest.mark.parametrize(
    ("error", "level", "traceback"),
    [
        pytest.param(ConnectionRefusedError(111, "Connection refused"), logging.WARNING, False, id="unreachable"),
        pytest.param(IntegrityError("duplicate key"), logging.ERROR, True, id="a-bug"),
    ],
)
def test_a_loop_logs_an_unreachable_database_in_a_line_and_a_bug_with_its_traceback(
    caplog: pytest.LogCaptureFixture, error: Exception, level: int, traceback: bool
) -> None:
    """A worker loop passes every SCHEDULER_INTERVAL: while PostgreSQL restarts, a
    traceback a pass would bury the log."""
    logger = logging.getLogger("test.loop")
    try:
        raise error
    except Exception as raised:
        db.log_failure(logger, "scheduler pass failed", raised)
    [record] = caplog.records
    assert record.levelno == level and record.getMessage().startswith("scheduler pass failed")
    assert (record.exc_info is not None) is traceback


def test_a_postgres_pool_holds_twenty_connections_unless_the_url_says() -> None:
    def maxsize(url: str) -> object:
        return db.tortoise_config(url)["connections"]["default"]["credentials"]["maxsize"]

    assert maxsize("postgres://u@localhost:5432/leadline") == db.POOL_SIZE == 20
    assert maxsize("postgres://u@localhost:5432/leadline?maxsize=7") == "7"


@pytest.mark.postgres
async def test_a_statement_gives_its_connection_back_in_its_own_task(database: str) -> None:
    """asyncpg's release runs in a task of its own (three turns of the event loop for
    every statement outside a transaction); Leadline's returns the connection within
    the statement's step, and still rolls back one left inside a transaction."""
    client = connections.get("default")
    await client.execute_query("SELECT 1")
    pool = client._pool
    free = pool._queue.qsize()
    with tasks_made() as made:
        await client.execute_query("SELECT 1")
        async with in_transaction():
            await client.execute_query("SELECT 1")
    assert made == [0] and pool._queue.qsize() == free

    async with client.acquire_connection() as connection:
        await connection.execute("BEGIN")
        await connection.execute("CREATE TEMPORARY TABLE left_open (n int)")
    assert pool._queue.qsize() == free
    assert not any(holder._con.is_in_transaction() for holder in pool._holders if holder._con is not None)
    rows = await client.execute_query_dict("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'left_open'")
    assert rows == [{"n": 0}]  # rolled back


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's transactions share one connection and its lock")
async def test_a_transaction_cancelled_while_it_begins_leaves_the_connection_to_the_next(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tortoise's SQLite context kept its lock when BEGIN failed or was cancelled: every
    # later transaction of the process waited forever (a worker's loop cancelled at
    # shutdown hung the next API write).
    # The tests' databases use Tortoise's wrapper, Leadline's processes its subclass.
    wrapper = SqliteTransactionWrapper
    begin = wrapper.begin
    beginning = asyncio.Event()

    async def slow_begin(self: SqliteTransactionWrapper) -> None:
        beginning.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(wrapper, "begin", slow_begin)

    async def transaction() -> None:
        async with in_transaction():
            pass

    task = asyncio.create_task(transaction())
    async with asyncio.timeout(5):
        await beginning.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.setattr(wrapper, "begin", begin)
    async with asyncio.timeout(5), in_transaction() as connection:
        assert await connection.execute_query_dict("SELECT 1 AS one") == [{"one": 1}]
