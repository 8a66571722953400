"""Bulk writes: the cheap conversion of row values keeps Tortoise's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from tortoise import connections
from tortoise.exceptions import ValidationError

from app import bulk, sqlite_immediate
from app.accounts.models import Organization
from app.events.models import Event, EventType
from app.messaging.models import Message, MessageState
from tests.conftest import Org

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _converted(field: str, value: object, model: type = Message) -> object:
    return bulk.db_value(model._meta.fields_map[field], model)(value)


@pytest.mark.usefixtures("db")
def test_values_that_need_no_work_pass_through_and_the_rest_keeps_tortoises_checks() -> None:
    assert _converted("attempts", 3) == 3 and _converted("body", "text") == "text"
    assert _converted("created_at", AT) is AT
    assert _converted("state", MessageState.SENT) == "SENT" and _converted("state", "SENT") == "SENT"
    assert _converted("payload", {"a": [1, None]}, Event) == '{"a":[1,null]}'
    with pytest.raises(ValueError):
        _converted("state", "NOT_A_STATE")
    with pytest.raises(ValidationError):
        _converted("to_address", "x" * 321)  # CharField(max_length=320)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        assert _converted("created_at", datetime(2026, 11, 23, 12, 0)) == AT


async def test_rows_written_in_bulk_read_back_as_given(org: Org) -> None:
    await bulk.insert_rows(
        Event,
        [
            {"organization_id": org.id, "type": EventType.PROSPECT_CREATED, "at": AT, "payload": {"n": n}}
            for n in range(3)
        ],
    )
    stored = await Event.filter(organization_id=org.id).order_by("id")
    assert [(e.type, e.at, e.payload) for e in stored] == [("PROSPECT_CREATED", AT, {"n": n}) for n in range(3)]


async def test_datetimes_read_back_as_written_on_the_production_engine(database: str) -> None:
    """On SQLite the engine hands TIMESTAMP columns over as datetimes (app.sqlite_immediate);
    on either database what comes back is the aware datetime written, with or without
    microseconds, and text that is no ISO datetime still reaches Tortoise's own parser."""
    organization = await Organization.create(name="Acme", created_at=AT)
    events = [
        {"organization_id": organization.id, "type": EventType.PROSPECT_CREATED, "at": at, "payload": {}}
        for at in (AT, AT.replace(microsecond=123456), AT.astimezone(timezone(timedelta(hours=-5))))
    ]
    await bulk.insert_rows(Event, events)
    stored = await Event.filter(organization_id=organization.id).order_by("id")
    assert [e.at for e in stored] == [e["at"] for e in events]
    assert all(e.at.tzinfo is not None for e in stored)
    if not database.startswith("sqlite"):
        return
    assert sqlite_immediate._timestamp(b"2026-11-23 12:00:00+00:00") == AT
    assert sqlite_immediate._timestamp(b"not a date") == "not a date"
    raw = await connections.get("default").execute_query_dict('SELECT "at" FROM "event" ORDER BY "id" LIMIT 1')
    assert raw[0]["at"] == AT  # a datetime from the driver, not text
