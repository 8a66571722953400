"""The committed migrations build the schema the models describe, on both databases."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
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
    """0019: emails lower-cased; prospects of one organization with one email (in
    any case) become the oldest, which takes the others' rows, fills its empty
    fields and unites their consent; an unfinished enrollment in a sequence the
    kept one is in finishes REMOVED. Other organizations' prospects stay apart."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with fresh_database(file=tmp_path / "migrated.sqlite3") as url:
        config = db.tortoise_config(url)
        await migrate(config=config, target="models.0018_suppression_removed_event")
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


async def test_each_prospect_entered_its_status_when_its_history_says(tmp_path: Path) -> None:
    """0022: statusEnteredAt is the latest change into the prospect's present
    status (not a later change into another, nor an earlier entry into this one);
    a prospect without such a change counts from its assignment, else its creation."""
    day = timedelta(days=1)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with fresh_database(file=tmp_path / "migrated.sqlite3") as url:
        config = db.tortoise_config(url)
        await migrate(config=config, target="models.0019_one_person")
        await Tortoise.init(config=config)
        try:
            conn = connections.get("default")
            org = {"time_zone": "UTC", "phone_region": "US", "pull_from_other_agents": False, "created_at": start}
            acme = await _insert(conn, "organization", name="Acme", **org)
            workflow = await _insert(conn, "workflow", organization_id=acme, name="Leads", position=0)
            new, called = [
                await _insert(
                    conn,
                    "status",
                    organization_id=acme,
                    workflow_id=workflow,
                    name=name,
                    position=n,
                    system_status="NEW",
                    pipeline_percent=0,
                )
                for n, name in enumerate(("New", "Called"))
            ]
            back = await _insert(conn, "prospect", **_prospect(acme, new, "back@example.com"))
            for n, (frm, to) in enumerate([(None, new), (new, called), (called, new)]):
                await _insert(
                    conn,
                    "status_change",
                    organization_id=acme,
                    prospect_id=back,
                    from_status_id=frm,
                    to_status_id=to,
                    cause="USER",
                    at=start + n * day,
                )
            assigned = await _insert(
                conn, "prospect", **_prospect(acme, new, "assigned@example.com", assigned_at=start + 5 * day)
            )
            bare = await _insert(conn, "prospect", **_prospect(acme, called, "bare@example.com"))
        finally:
            await Tortoise.close_connections()
        await migrate(config=config)
        await Tortoise.init(config=config)
        try:
            rows = await connections.get("default").execute_query_dict(
                'SELECT "id", "status_entered_at" FROM "prospect" ORDER BY "id"'
            )
        finally:
            await Tortoise.close_connections()
    entered = {row["id"]: row["status_entered_at"] for row in rows}
    as_utc = {pk: at if isinstance(at, datetime) else datetime.fromisoformat(at) for pk, at in entered.items()}
    assert {pk: at.astimezone(UTC) for pk, at in as_utc.items()} == {
        back: start + 2 * day,
        assigned: start + 5 * day,
        bare: datetime(2026, 1, 1, tzinfo=UTC),
    }


async def test_enrollments_running_in_inactive_sequences_are_paused(tmp_path: Path) -> None:
    """0029: enrollments still running in an inactive sequence (from before a
    deactivation paused them) leave the scheduler's due index: paused as a
    deactivation pauses them (reason sequence_inactive, stage and due time kept for
    the reactivation), their stage change recorded. Others stay as they were."""
    due = datetime(2026, 1, 1, tzinfo=UTC)
    async with fresh_database(file=tmp_path / "migrated.sqlite3") as url:
        config = db.tortoise_config(url)
        await migrate(config=config, target="models.0028_mailbox_identity")
        await Tortoise.init(config=config)
        try:
            conn = connections.get("default")
            org = {"time_zone": "UTC", "phone_region": "US", "pull_from_other_agents": False, "created_at": due}
            acme = await _insert(conn, "organization", name="Acme", **org)
            workflow = await _insert(conn, "workflow", organization_id=acme, name="Leads", position=0)
            status = await _insert(
                conn,
                "status",
                organization_id=acme,
                workflow_id=workflow,
                name="New",
                position=0,
                system_status="NEW",
                pipeline_percent=0,
            )
            prospect = await _insert(conn, "prospect", **_prospect(acme, status, "ada@example.com"))
            sequences = {
                active: await _insert(
                    conn,
                    "sequence",
                    organization_id=acme,
                    name=f"Active {active}",
                    active=active,
                    stop_on_reply=True,
                    unresponsive_after_seconds=600,
                    created_at=due,
                )
                for active in (True, False)
            }

            async def enroll(active: bool, stage: str, due_at: datetime | None, **values: Any) -> int:
                return await _insert(
                    conn,
                    "enrollment",
                    organization_id=acme,
                    prospect_id=prospect,
                    sequence_id=sequences[active],
                    stage=stage,
                    due_at=due_at,
                    enrolled_at=due,
                    **values,
                )

            started = await enroll(False, "STARTED", due)
            approaching = await enroll(False, "APPROACHING", due + timedelta(hours=1))
            waiting = await enroll(False, "NOT_STARTED", None)
            finished = await enroll(False, "SUCCESS", None, finished_at=due)
            running = await enroll(True, "STARTED", due)
        finally:
            await Tortoise.close_connections()
        await migrate(config=config)
        await Tortoise.init(config=config)
        try:
            conn = connections.get("default")
            rows = await conn.execute_query_dict(
                'SELECT "id", "stage", "due_at", "paused_stage", "paused_due_at", "paused_reason" FROM "enrollment"'
            )
            changes = await conn.execute_query_dict(
                'SELECT "enrollment_id", "from_stage", "to_stage", "cause", "reason" FROM "stage_change" '
                'ORDER BY "enrollment_id"'
            )
        finally:
            await Tortoise.close_connections()

    def at(value: Any) -> Any:
        return (
            (value if isinstance(value, datetime) else datetime.fromisoformat(value)).astimezone(UTC) if value else None
        )

    found = {
        row["id"]: (
            row["stage"],
            at(row["due_at"]),
            row["paused_stage"],
            at(row["paused_due_at"]),
            row["paused_reason"],
        )
        for row in rows
    }
    assert found == {
        started: ("PAUSED", None, "STARTED", due, "sequence_inactive"),
        approaching: ("PAUSED", None, "APPROACHING", due + timedelta(hours=1), "sequence_inactive"),
        waiting: ("NOT_STARTED", None, None, None, None),
        finished: ("SUCCESS", None, None, None, None),
        running: ("STARTED", due, None, None, None),
    }
    assert [tuple(change.values()) for change in changes] == [
        (started, "STARTED", "PAUSED", "USER", "sequence_inactive"),
        (approaching, "APPROACHING", "PAUSED", "USER", "sequence_inactive"),
    ]
