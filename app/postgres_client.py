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

A connection also goes back to the pool without the statement's task waiting
for it: asyncpg returns one through a shielded task, three turns of the event
loop, and in a busy API process each turn runs a step of every ready request
(a `{ viewer { id } }` took five turns, three of them to give back its one
connection). The client waits for the connections on their way back when it
closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import PoolConnectionWrapper, TransactionalDBClient, TransactionContextPooled
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

logger = logging.getLogger(__name__)


class _Borrowed(PoolConnectionWrapper[Any]):
    """A pooled connection for one statement outside a transaction."""

    client: Client

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.client.give_back(self.connection)


class _Transaction(TransactionContextPooled):
    async def __aenter__(self) -> TransactionalDBClient:
        try:
            return await super().__aenter__()
        except BaseException:
            self._give_back()
            raise

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            if not self.client._finalized:
                if exc_type is None:
                    await self.client.commit()
                elif exc_type is not TransactionManagementError:  # one that failed cannot roll back
                    await self.client.rollback()
        finally:
            self._give_back()

    def _give_back(self) -> None:
        """The connection back to the pool (if one was taken) and the task's mark undone (if set)."""
        try:
            parent = self.client._parent
            if self.client._connection is not None and parent._pool:
                assert isinstance(parent, Client)
                parent.give_back(self.client._connection)
        finally:
            token = getattr(self, "token", None)
            if token is not None:
                del self.token
                get_connections().reset(token)


class Client(AsyncpgDBClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._returning: set[asyncio.Task[None]] = set()
        """Connections on their way back to the pool (the loop holds tasks weakly)."""

    def acquire_connection(self) -> _Borrowed:
        return _Borrowed(self, self._pool_init_lock)

    def _in_transaction(self) -> _Transaction:
        return _Transaction(TransactionWrapper(self), self._pool_init_lock)

    def give_back(self, connection: Any) -> None:
        """Returns ``connection`` to the pool in a task of its own, not awaited."""
        pool = self._pool
        assert pool is not None, "a connection was taken from it"
        task = asyncio.get_running_loop().create_task(pool.release(connection))
        self._returning.add(task)
        task.add_done_callback(self._returned)

    def _returned(self, task: asyncio.Task[None]) -> None:
        self._returning.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("a connection did not go back to the pool", exc_info=task.exception())

    async def returned(self) -> None:
        """Waits for the connections on their way back to the pool."""
        await asyncio.gather(*self._returning, return_exceptions=True)

    async def close(self) -> None:
        await self.returned()
        await super().close()


client_class = Client
