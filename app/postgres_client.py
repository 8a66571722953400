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
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import TransactionalDBClient, TransactionContextPooled
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError


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
                await self.client._parent._pool.release(self.client._connection)
        finally:
            token = getattr(self, "token", None)
            if token is not None:
                del self.token
                get_connections().reset(token)


class Client(AsyncpgDBClient):
    def _in_transaction(self) -> _Transaction:
        return _Transaction(TransactionWrapper(self), self._pool_init_lock)


client_class = Client
