"""Tortoise's SQLite engine with transactions that take the write lock at once
(BEGIN IMMEDIATE), and TIMESTAMP columns read as datetimes by the driver.

Tortoise begins with a plain (deferred) BEGIN: a transaction that reads and then
writes must upgrade its lock, and when another process holds the write lock that
upgrade fails at once with "database is locked", without waiting (SQLite cannot
wait there without risking a deadlock). Several Leadline processes share the
embedded database (`dev`, the CLI, tests' workers), so every transaction here
asks for the write lock first, and waits for it up to busy_timeout.

Tortoise parses each datetime text it reads from SQLite with a pure-Python ISO
8601 parser: 12 µs a value, against 0.2 µs for ``datetime.fromisoformat``. The
engine reads a few datetimes per step (enrollments, claimed messages): 10-15 % of
the worker's CPU on SQLite. So the connection hands TIMESTAMP columns (every
DatetimeField here) over as datetimes, which Tortoise takes as they are.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import aiosqlite
from tortoise.backends.base.client import NestedTransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.backends.sqlite.executor import SqliteExecutor
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

from app.rows import FastSelect


class Executor(FastSelect, SqliteExecutor):
    """Whole rows of one model built without Tortoise's detour (app/rows.py)."""


class _Wrapper(SqliteTransactionWrapper):
    executor_class = Executor

    def _in_transaction(self) -> NestedTransactionContext:
        return NestedTransactionContext(_Wrapper(self))


class ImmediateTransactionWrapper(_Wrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise TransactionManagementError(error) from error


def _timestamp(stored: bytes) -> datetime | str:
    """A TIMESTAMP column's value as a datetime (text it cannot read goes to Tortoise as text)."""
    text = stored.decode()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


sqlite3.register_converter("TIMESTAMP", _timestamp)  # replaces sqlite3's own, which drops time zones


class ReleasingTransactionContext(SqliteTransactionContext):
    """Tortoise's, but a transaction that fails to begin (cancelled while BEGIN runs,
    or the database locked past busy_timeout) gives back the connection's lock:
    Tortoise's keeps it, and every later transaction of the process waits forever.
    A BEGIN that ran although its caller was cancelled is committed, empty, by the
    next transaction's begin."""

    async def __aenter__(self) -> Any:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            self._trxlock.release()
            raise
        return self.connection


class ImmediateSqliteClient(SqliteClient):
    executor_class = Executor

    async def create_connection(self, with_db: bool) -> None:
        """Tortoise's, with the declared column types read (for TIMESTAMP)."""
        if self._connection is None:
            self._connection = await aiosqlite.connect(
                self.filename, isolation_level=None, detect_types=sqlite3.PARSE_DECLTYPES
            )
            self._connection._conn.row_factory = sqlite3.Row
            for pragma, value in self.pragmas.items():
                cursor = await self._connection.execute(f"PRAGMA {pragma}={value}")
                await cursor.close()
            await self._post_connect()

    def _in_transaction(self) -> SqliteTransactionContext:
        return ReleasingTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient
