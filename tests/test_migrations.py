"""The committed migrations build the schema the models describe, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate
from tortoise.migrations.autodetector import MigrationAutodetector

from app import db, validation
from app.config import Settings
from app.errors import InvalidInput
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


async def test_an_identity_two_organizations_shared_stays_with_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0014: rows that shared an emailFrom (in any case) or an smsFrom before the
    unique index: the organization created first keeps it, the later one's is cleared;
    as when it was written, whatever app.validation has become (here it refuses all)."""

    def changed(*args: object) -> str:
        raise InvalidInput("Validation has changed since.", [])

    monkeypatch.setattr(validation, "email", changed)
    monkeypatch.setattr(validation, "phone", changed)
    async with fresh_database(file=tmp_path / "migrated.sqlite3") as url:
        config = db.tortoise_config(url)
        await migrate(config=config, target="models.0013_worker_indexes")
        await Tortoise.init(config=config)
        try:
            conn = connections.get("default")
            values = ", ".join(["$1", "$2", "$3", "$4"] if conn.capabilities.dialect == "postgres" else ["?"] * 4)
            for name, email_from, sms_from in [
                ("First", "Sales@Shared.example", "+12025550143"),
                ("Second", "sales@shared.example", "+12025550143"),
                ("Third", "own@third.example", "+12025550144"),
            ]:
                await conn.execute_query(
                    'INSERT INTO "organization" ("name", "time_zone", "email_from", "sms_from", "phone_region", '
                    f'"pull_from_other_agents", "created_at") VALUES ({values}, \'US\', false, CURRENT_TIMESTAMP)',
                    [name, "UTC", email_from, sms_from],
                )
        finally:
            await Tortoise.close_connections()
        await migrate(config=config)
        await Tortoise.init(config=config)
        try:
            conn = connections.get("default")
            organizations = await conn.execute_query_dict(
                'SELECT "name", "email_from", "sms_from" FROM "organization" ORDER BY "id"'
            )
            claims = await conn.execute_query_dict(
                'SELECT o."name", s."kind", s."address" FROM "sending_identity" s '
                'JOIN "organization" o ON o."id" = s."organization_id" ORDER BY s."address"'
            )
        finally:
            await Tortoise.close_connections()
    assert [tuple(row.values()) for row in organizations] == [
        ("First", "Sales@Shared.example", "+12025550143"),
        ("Second", None, None),
        ("Third", "own@third.example", "+12025550144"),
    ]
    assert [tuple(row.values()) for row in claims] == [
        ("First", "SMS_FROM", "+12025550143"),
        ("Third", "SMS_FROM", "+12025550144"),
        ("Third", "EMAIL_FROM", "own@third.example"),
        ("First", "EMAIL_FROM", "sales@shared.example"),
    ]


async def test_prospects_blocked_before_the_list_are_suppressed(tmp_path: Path) -> None:
    """0017: each channel a prospect had blocked (do-not-contact: all three) becomes
    an entry for its address, OPTED_OUT when the cause was not kept, emails lower-cased."""
    async with fresh_database(file=tmp_path / "migrated.sqlite3") as url:
        config = db.tortoise_config(url)
        await migrate(config=config, target="models.0016_claim_token")
        await Tortoise.init(config=config)
        try:
            conn = connections.get("default")
            postgres = conn.capabilities.dialect == "postgres"

            async def insert(table: str, row: dict[str, object]) -> int:
                marks = ", ".join(f"${n}" if postgres else "?" for n in range(1, len(row) + 1))
                columns = ", ".join(f'"{c}"' for c in row)
                rows = await conn.execute_query_dict(
                    f'INSERT INTO "{table}" ({columns}) VALUES ({marks}) RETURNING "id"', list(row.values())
                )
                return int(rows[0]["id"])

            now = datetime(2026, 1, 2, tzinfo=UTC)
            org = await insert(
                "organization",
                {
                    "name": "Acme",
                    "time_zone": "UTC",
                    "phone_region": "US",
                    "pull_from_other_agents": False,
                    "created_at": now,
                },
            )
            workflow = await insert("workflow", {"organization_id": org, "name": "Sales", "position": 0})
            status = await insert(
                "status",
                {
                    "organization_id": org,
                    "workflow_id": workflow,
                    "name": "New",
                    "position": 0,
                    "system_status": "NEW",
                    "pipeline_percent": 0,
                },
            )
            for email, phone, dnc, channels in [
                ("Ann@Example.com", "+12025550143", False, '["EMAIL"]'),
                ("bob@example.com", "+12025550144", True, "[]"),
                (None, "+12025550145", False, '["SMS"]'),
                ("cy@example.com", None, False, "[]"),
            ]:
                await insert(
                    "prospect",
                    {
                        "organization_id": org,
                        "status_id": status,
                        "email": email,
                        "phone": phone,
                        "do_not_contact": dnc,
                        "opted_out_channels": channels,
                        "custom_fields": "{}",
                        "search_text": "",
                        "contact_attempts": 0,
                        "conversation_state": "NEW",
                        "created_at": now,
                        "updated_at": now,
                    },
                )
        finally:
            await Tortoise.close_connections()
        await migrate(config=config)
        await Tortoise.init(config=config)
        try:
            rows = await connections.get("default").execute_query_dict(
                'SELECT "channel", "address", "reason" FROM "suppression" ORDER BY "address", "channel"'
            )
        finally:
            await Tortoise.close_connections()
    assert [tuple(row.values()) for row in rows] == [
        ("PHONE", "+12025550144", "DO_NOT_CONTACT"),
        ("SMS", "+12025550144", "DO_NOT_CONTACT"),
        ("SMS", "+12025550145", "OPTED_OUT"),
        ("EMAIL", "ann@example.com", "OPTED_OUT"),
        ("EMAIL", "bob@example.com", "DO_NOT_CONTACT"),
    ]


async def _tables() -> set[str]:
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
    else:
        rows = await conn.execute_query_dict("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row["name"] for row in rows}
