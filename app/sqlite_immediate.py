"""Tortoise's SQLite engine with transactions that take the write lock at once
(BEGIN IMMEDIATE).

Tortoise begins with a plain (deferred) BEGIN: a transaction that reads and then
writes must upgrade its lock, and when another process holds the write lock that
upgrade fails at once with "database is locked", without waiting (SQLite cannot
wait there without risking a deadlock). Several Leadline processes share the
embedded database (`dev`, the CLI, tests' workers), so every transaction here
asks for the write lock first, and waits for it up to busy_timeout.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise TransactionManagementError(error) from error


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> SqliteTransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient
