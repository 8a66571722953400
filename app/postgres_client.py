"""Tortoise's asyncpg engine with transactions that always give back what they took.

Tortoise's pooled transaction takes a connection from the pool, marks the task
as inside the transaction (a context variable), and then sends BEGIN. When BEGIN
fails (the server restarted since the connection was pooled), it leaves both as
they were: the connection is not returned, and the task stays "inside" a
transaction that never began, so every later ``in_transaction`` in that task
becomes a savepoint on a connection that is gone, and fails. A worker's
scheduler and relay loops are such tasks: one PostgreSQL restart could stop
them for good while the process lived on. Here the connection goes back and the
task's mark is undone whatever fails, at BEGIN, at COMMIT or ROLLBACK, or in the
release.

A connection also goes back without asyncpg's detour through a task of its own
(``give_back``), which cost every statement outside a transaction three turns of
the event loop, in a busy process three times the wait for the rest of the loop.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.asyncpg.executor import AsyncpgExecutor
from tortoise.backends.base.client import (
    NestedTransactionContext,
    PoolConnectionWrapper,
    TransactionalDBClient,
    TransactionContextPooled,
)
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

from app.rows import FastSelect


class _Transaction(TransactionContextPooled):
    async def __aenter__(self) -> TransactionalDBClient:
        try:
            return await super().__aenter__()
        except BaseException:
            await self._give_back()
            raise

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            if not self.client._finalized:
                if exc_type is None:
                    await self.client.commit()
                elif exc_type is not TransactionManagementError:  # one that failed cannot roll back
                    await self.client.rollback()
        finally:
            await self._give_back()

    async def _give_back(self) -> None:
        """The connection back to the pool (if one was taken) and the task's mark undone (if set)."""
        try:
            if self.client._connection is not None and self.client._parent._pool:
                await give_back(self.client._parent._pool, self.client._connection)
        finally:
            token = getattr(self, "token", None)
            if token is not None:
                del self.token
                get_connections().reset(token)


async def give_back(pool: asyncpg.Pool, connection: Any) -> None:
    """Returns a pooled connection in this task. asyncpg's ``Pool.release`` shields
    its holder's release in a new task, so that a cancelled caller still returns the
    connection; that release waits on nothing (no reset query: ``keep_session``)
    unless a transaction is left open. Awaited here, it finishes within this step;
    when it must wait (a rollback, a close) and this task is cancelled meanwhile,
    asyncpg terminates the connection, which frees its holder all the same. A
    connection inside a transaction takes asyncpg's shielded way: its rollback is
    worth finishing."""
    if connection._con is None:  # released already
        return
    if connection.is_in_transaction() or connection._con._top_xact is not None:
        await pool.release(connection)
        return
    pool._check_init()
    connection._con._on_release()
    holder = connection._holder
    await holder.release(holder._timeout)


async def keep_session(connection: object) -> None:
    """What a pooled connection needs when it goes back to the pool: nothing beyond
    asyncpg's own rollback of an open transaction. Leadline keeps no session state
    (no LISTEN, no session SET, advisory locks are transaction-scoped), and
    asyncpg's default reset is one more round trip on every statement run outside a
    transaction (~30 µs of server CPU each: a fifth of the engine's statements)."""


class _Connection(PoolConnectionWrapper[Any]):
    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await give_back(self.client._pool, self.connection)


class Executor(FastSelect, AsyncpgExecutor):
    """Whole rows of one model built without Tortoise's detour (app/rows.py)."""


class _Wrapper(TransactionWrapper):
    executor_class = Executor

    def _in_transaction(self) -> NestedTransactionContext:
        return NestedTransactionContext(_Wrapper(self))


class Client(AsyncpgDBClient):
    executor_class = Executor

    def _in_transaction(self) -> _Transaction:
        return _Transaction(_Wrapper(self), self._pool_init_lock)

    def acquire_connection(self) -> _Connection:
        return _Connection(self, self._pool_init_lock)

    async def create_pool(self, **kwargs: Any) -> asyncpg.Pool:
        return await super().create_pool(**kwargs, reset=keep_session)


client_class = Client
