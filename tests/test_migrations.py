"""The committed migrations build the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

from tortoise import Tortoise, connections
from tortoise.migrations.autodetector import MigrationAutodetector

from app import db
from app.config import Settings
from tests.conftest import fresh_database


async def test_migrations_apply_and_match_the_models(tmp_path: Path) -> None:
    async with fresh_database(file=tmp_path / "migrated.sqlite3") as url:
        settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), "DATABASE_URL": url})
        await db.migrate(settings)
        await db.migrate(settings)  # a second run has nothing to do

        config = db.tortoise_config(url)
        await Tortoise.init(config=config)
        try:
            tables = await _tables()
            writers = await MigrationAutodetector(Tortoise.apps, config["apps"]).changes()
        finally:
            await Tortoise.close_connections()
    assert {"organization", "user", "api_token", "workflow", "status", "action", "prospect", "task"} <= tables
    assert writers == [], "models changed without a migration: run `tortoise makemigrations`"


async def _tables() -> set[str]:
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
    else:
        rows = await conn.execute_query_dict("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row["name"] for row in rows}
