"""Persistence: the Tortoise configuration, start-up, shutdown and migrations."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as run_migrations

from app.config import Settings

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
        connection["credentials"]["reset"] = _keep_session
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


async def _keep_session(connection: object) -> None:
    """What a pooled Postgres connection needs when it goes back to the pool: nothing
    beyond asyncpg's own rollback of an open transaction. Leadline keeps no session
    state (no LISTEN, no session SET, advisory locks are transaction-scoped), and
    asyncpg's default reset is one more round trip on every statement run outside a
    transaction (~30 µs of server CPU each: a fifth of the engine's statements)."""


async def init(settings: Settings) -> None:
    """Connects the ORM for this process (one global context, shared by every task)."""
    await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)


async def close() -> None:
    await Tortoise.close_connections()


async def migrate(settings: Settings) -> None:
    """Applies the committed migrations (app/migrations) to the configured database."""
    await run_migrations(config=tortoise_config(settings.database_url))
    await Tortoise.close_connections()


def __getattr__(name: str) -> Any:
    # `TORTOISE_ORM` is for Tortoise's own CLI (`tortoise makemigrations`),
    # named in pyproject.toml; Leadline itself passes its settings explicitly.
    if name == "TORTOISE_ORM":
        return tortoise_config(Settings.from_env().database_url)
    raise AttributeError(name)
