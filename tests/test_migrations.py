"""The committed migrations build the schema the models describe, on both databases."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tortoise import Tortoise, connections
from tortoise.exceptions import IntegrityError
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


async def _tables() -> set[str]:
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
    else:
        rows = await conn.execute_query_dict("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row["name"] for row in rows}


async def _insert(conn: Any, table: str, **values: Any) -> int:
    marks = [f"${n}" if conn.capabilities.dialect == "postgres" else "?" for n in range(1, len(values) + 1)]
    columns = ", ".join(f'"{name}"' for name in values)
    [row] = await conn.execute_query_dict(
        f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join(marks)}) RETURNING "id"', list(values.values())
    )
    return int(row["id"])


def _prospect(org: int, status: int, email: str, **values: Any) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "organization_id": org,
        "status_id": status,
        "email": email,
        "custom_fields": "{}",
        "search_text": email.lower(),
        "do_not_contact": False,
        "opted_out_channels": "[]",
        "contact_attempts": 0,
        "conversation_state": "NEW",
        "created_at": now,
        "updated_at": now,
        **values,
    }


async def test_prospects_sharing_an_email_merge_into_the_oldest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """0018: emails lower-cased; prospects of one organization with one email (in
    any case) become the oldest, which takes the others' rows, fills its empty
    fields and unites their consent; an unfinished enrollment in a sequence the
    kept one is in finishes REMOVED. Other organizations' prospects stay apart."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with fresh_database(file=tmp_path / "migrated.sqlite3") as url:
        config = db.tortoise_config(url)
        await migrate(config=config, target="models.0017_suppressions")
        await Tortoise.init(config=config)
        try:
            conn = connections.get("default")
            org = {"time_zone": "UTC", "phone_region": "US", "pull_from_other_agents": False, "created_at": now}
            acme = await _insert(conn, "organization", name="Acme", **org)
            globex = await _insert(conn, "organization", name="Globex", **org)
            status: dict[int, int] = {}
            for pk in (acme, globex):
                workflow = await _insert(conn, "workflow", organization_id=pk, name="Leads", position=0)
                status[pk] = await _insert(
                    conn,
                    "status",
                    organization_id=pk,
                    workflow_id=workflow,
                    name="New",
                    position=0,
                    system_status="NEW",
                    pipeline_percent=0,
                )
            kept = await _insert(
                conn,
                "prospect",
                **_prospect(acme, status[acme], "Ada@Example.com", company="Engines", custom_fields='{"a": 1}'),
            )
            second = await _insert(
                conn,
                "prospect",
                **_prospect(
                    acme,
                    status[acme],
                    "ada@example.com",
                    first_name="Ada",
                    company="Other",
                    custom_fields='{"a": 2, "b": 3}',
                    opted_out_channels='["SMS"]',
                    contact_attempts=2,
                ),
            )
            third = await _insert(
                conn, "prospect", **_prospect(acme, status[acme], "ADA@EXAMPLE.COM", do_not_contact=True)
            )
            bob = await _insert(conn, "prospect", **_prospect(acme, status[acme], "Bob@Example.com"))
            elsewhere = await _insert(conn, "prospect", **_prospect(globex, status[globex], "ada@example.com"))
            sequences, steps = [], []
            for name in ("One", "Two"):
                sequence = await _insert(
                    conn,
                    "sequence",
                    organization_id=acme,
                    name=name,
                    active=True,
                    stop_on_reply=True,
                    unresponsive_after_seconds=600,
                    created_at=now,
                )
                sequences.append(sequence)
                steps.append(
                    await _insert(
                        conn,
                        "sequence_step",
                        organization_id=acme,
                        sequence_id=sequence,
                        position=0,
                        type="EMAIL",
                        delay_seconds=0,
                        body="Hi",
                    )
                )

            async def enroll(prospect: int, at: int, *, finished: bool = False) -> int:
                return await _insert(
                    conn,
                    "enrollment",
                    organization_id=acme,
                    prospect_id=prospect,
                    sequence_id=sequences[at],
                    stage="SUCCESS" if finished else "STARTED",
                    current_step_id=steps[at],
                    enrolled_at=now,
                    finished_at=now if finished else None,
                    active_key=None if finished else f"{prospect}:{sequences[at]}",
                )

            await enroll(kept, 0)
            clashing = await enroll(second, 0)
            moving = await enroll(second, 1)
            finished = await enroll(third, 0, finished=True)
            message = {
                "organization_id": acme,
                "channel": "EMAIL",
                "direction": "OUTBOUND",
                "state": "QUEUED",
                "body": "Hi",
                "attempts": 0,
                "auto_reply": False,
                "created_at": now,
            }
            queued = await _insert(conn, "message", prospect_id=second, enrollment_id=clashing, **message)
            await _insert(conn, "activity", organization_id=acme, prospect_id=second, interaction="CALL", at=now)
            await _insert(
                conn,
                "status_change",
                organization_id=acme,
                prospect_id=third,
                to_status_id=status[acme],
                cause="USER",
                at=now,
            )
            await _insert(
                conn, "task", organization_id=acme, prospect_id=second, kind="TODO", due_at=now, created_at=now
            )
            await _insert(
                conn,
                "suppression",
                organization_id=acme,
                prospect_id=third,
                channel="EMAIL",
                address="ada@example.com",
                reason="DO_NOT_CONTACT",
                created_at=now,
            )
        finally:
            await Tortoise.close_connections()
        with caplog.at_level(logging.INFO, logger="leadline.migrations"):
            await migrate(config=config)
        await Tortoise.init(config=config)
        try:
            conn = connections.get("default")
            prospects = await conn.execute_query_dict(
                'SELECT "id", "organization_id", "email", "first_name", "company", "custom_fields", '
                '"opted_out_channels", "do_not_contact", "contact_attempts", "search_text" FROM "prospect" ORDER BY "id"'
            )
            enrollments = await conn.execute_query_dict(
                'SELECT "id", "prospect_id", "stage", "active_key", "finished_at" FROM "enrollment" ORDER BY "id"'
            )
            owners = {
                table: [
                    row["prospect_id"] for row in await conn.execute_query_dict(f'SELECT "prospect_id" FROM "{table}"')
                ]
                for table in ("activity", "status_change", "task", "message", "suppression")
            }
            [cancelled] = await conn.execute_query_dict(f'SELECT "state" FROM "message" WHERE "id" = {queued}')
            [change] = await conn.execute_query_dict(
                'SELECT "enrollment_id", "from_stage", "to_stage", "reason" FROM "stage_change"'
            )
            events = await conn.execute_query_dict('SELECT "type", "prospect_id", "payload" FROM "event" ORDER BY "id"')
            with pytest.raises(IntegrityError):
                await _insert(conn, "prospect", **_prospect(acme, status[acme], "ada@example.com"))
        finally:
            await Tortoise.close_connections()
    assert [(p["id"], p["organization_id"], p["email"]) for p in prospects] == [
        (kept, acme, "ada@example.com"),
        (bob, acme, "bob@example.com"),
        (elsewhere, globex, "ada@example.com"),
    ]
    merged = prospects[0]
    assert (merged["first_name"], merged["company"], merged["contact_attempts"]) == ("Ada", "Engines", 2)
    assert _json(merged["custom_fields"]) == {"a": 1, "b": 3}
    assert _json(merged["opted_out_channels"]) == ["SMS"]
    assert bool(merged["do_not_contact"]) is True
    assert merged["search_text"] == "ada ada@example.com engines"
    by_id = {e["id"]: e for e in enrollments}
    assert {e["prospect_id"] for e in enrollments} == {kept}
    assert (by_id[clashing]["stage"], by_id[clashing]["active_key"]) == ("REMOVED", None)
    assert by_id[clashing]["finished_at"] is not None
    assert (by_id[moving]["stage"], by_id[moving]["active_key"]) == ("STARTED", f"{kept}:{sequences[1]}")
    assert (by_id[finished]["stage"], by_id[finished]["active_key"]) == ("SUCCESS", None)
    assert cancelled["state"] == "CANCELLED"
    assert tuple(change.values()) == (clashing, "STARTED", "REMOVED", "merged")
    assert owners == {table: [kept] for table in owners}
    assert [(e["type"], e["prospect_id"]) for e in events] == [
        ("STAGE_CHANGED", second),
        ("PROSPECT_DELETED", second),
        ("PROSPECT_DELETED", third),
        ("PROSPECT_UPDATED", kept),
    ]
    assert _json(events[-1]["payload"])["fields"] == [
        "contactAttempts",
        "customFields",
        "doNotContact",
        "firstName",
        "optedOutChannels",
    ]
    assert "merged 2 duplicate prospects (same organization and email) into 1 kept records" in caplog.text


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
