"""Bulk writes: the cheap conversion of row values keeps Tortoise's checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tortoise.exceptions import ValidationError

from app import bulk
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
