"""Bulk writes: the cheap conversion of row values keeps Tortoise's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from tortoise import connections
from tortoise.exceptions import ValidationError
from tortoise.transactions import in_transaction

from app import bulk, presets, sqlite_immediate
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.events.models import Event, EventType
from app.messaging.models import Message, MessageState
from app.prospects import service as prospects
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


async def test_awkward_values_survive_bulk_inserts_and_updates(org: Org, clock: FrozenClock) -> None:
    """What Postgres reads from arrays and SQLite from bound values, both ways (insert,
    update): quotes, backslashes, line breaks and non-ASCII text, offsets and
    microseconds, None, booleans, and JSON values of every shape, which stay JSON."""
    text = 'He said "hi"\\ \n\ttab — café 🚀 \u2028 end'
    at = AT.astimezone(timezone(timedelta(hours=5, minutes=30))).replace(microsecond=654321)
    payloads: list[object] = [{"q": text, "n": [1, 2.5, None, True]}, [], 7, '"a JSON string"', {"deep": {"x": {}}}]
    await bulk.insert_rows(
        Event,
        [{"organization_id": org.id, "type": EventType.PROSPECT_CREATED, "at": at, "payload": p} for p in payloads],
    )
    stored = await Event.filter(organization_id=org.id).order_by("id")
    assert [e.payload for e in stored] == [payloads[0], [], 7, "a JSON string", payloads[4]]
    assert {e.at for e in stored} == {at}

    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    [person], _ = await prospects.create_prospects(actor=admin, inputs=[{"first_name": "Ada"}])
    row = {
        "organization_id": org.id,
        "prospect_id": person.id,
        "channel": "EMAIL",
        "direction": "OUTBOUND",
        "state": MessageState.QUEUED,
        "to_address": "ada@client.example",
        "subject": None,
        "body": text,
        "created_at": at,
        "next_attempt_at": None,
        "auto_reply": True,
    }
    [message_id] = await bulk.insert_returning(Message, [row])
    message = await Message.get(id=message_id)
    assert (message.body, message.subject, message.created_at, message.next_attempt_at, message.auto_reply) == (
        text,
        None,
        at,
        None,
        True,
    )
    message.state, message.error, message.sent_at, message.attempts = MessageState.SENT, text[::-1], at, 3
    async with in_transaction() as connection:
        await bulk.update_each([message], ["state", "error", "sent_at", "attempts"], connection)
    again = await Message.get(id=message_id)
    assert (again.state, again.error, again.sent_at, again.attempts, again.body) == (
        MessageState.SENT,
        text[::-1],
        at,
        3,
        text,
    )


async def test_columns_alike_in_every_row_and_columns_that_vary_are_both_written(org: Org, clock: FrozenClock) -> None:
    """Postgres passes a column whose rows all hold one value as one parameter and
    the others as arrays (bulk._columns_of): rows of either kind, and of only alike
    columns (several rows, or one), come back as given, ids in row order, on both
    databases; so do updates whose rows share some values and not others."""
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    made, _ = await prospects.create_prospects(actor=admin, inputs=[{"first_name": n} for n in ("Ada", "Bo", "Cy")])

    def row(prospect_id: int, body: str) -> dict[str, object]:
        return {
            "organization_id": org.id,
            "prospect_id": prospect_id,
            "channel": "EMAIL",
            "direction": "OUTBOUND",
            "state": MessageState.QUEUED,
            "to_address": None,
            "body": body,
            "created_at": AT,
        }

    mixed = [row(p.id, f"body {i}") for i, p in enumerate(made)]
    alike = [row(made[0].id, "same"), row(made[0].id, "same")]
    ids = await bulk.insert_returning(Message, mixed + alike)
    ids += await bulk.insert_returning(Message, [row(made[1].id, "alone")])
    stored = {m.id: m for m in await Message.filter(id__in=ids)}
    assert [(stored[i].prospect_id, stored[i].body, stored[i].to_address, stored[i].attempts) for i in ids] == [
        (made[0].id, "body 0", None, 0),
        (made[1].id, "body 1", None, 0),
        (made[2].id, "body 2", None, 0),
        (made[0].id, "same", None, 0),
        (made[0].id, "same", None, 0),
        (made[1].id, "alone", None, 0),
    ]
    await bulk.insert_rows(
        Event, [{"organization_id": org.id, "type": EventType.TASK_DUE, "at": AT, "payload": {}}] * 3
    )
    assert await Event.filter(organization_id=org.id, type=EventType.TASK_DUE, at=AT).count() == 3

    messages = [stored[i] for i in ids]
    for n, message in enumerate(messages):
        message.state, message.sent_at, message.external_id = MessageState.SENT, AT, f"<{n}@x>"
    async with in_transaction() as connection:
        await bulk.update_each(messages, ["state", "sent_at", "external_id", "error"], connection)
        await bulk.update_each(messages[:1], ["error"], connection)
    again = {m.id: m for m in await Message.filter(id__in=ids)}
    assert [(again[i].state, again[i].sent_at, again[i].external_id, again[i].error) for i in ids] == [
        (MessageState.SENT, AT, f"<{n}@x>", None) for n in range(len(ids))
    ]


def test_postgres_gets_alike_columns_as_one_parameter_and_the_rest_as_arrays() -> None:
    expressions, source, params = bulk._columns_of(
        ["a", "b", "c"], ["INT", "TEXT", "TEXT"], [[1, None, "x"], [2, None, "x"], [3, None, "x"]]
    )
    assert expressions == ['v."a"', "$2::TEXT", "$3::TEXT"]
    assert source == 'unnest($1::INT[]) AS v("a")'
    assert params == [[1, 2, 3], None, "x"]
    expressions, source, params = bulk._columns_of(["a"], ["INT"], [[7], [7]])
    assert (expressions, source, params) == (["$1::INT"], "generate_series(1, $2::INT) AS v", [7, 2])


async def test_rows_read_by_many_keys_are_what_values_reads(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    """``select_in`` gives each field's Python value as Tortoise's ``values()`` does
    (JSON, enums, datetimes, NULLs), keeps ``null``'s condition, and on SQLite splits
    a long key list at the bound-parameter limit."""
    await bulk.insert_rows(
        Event,
        [
            {"organization_id": org.id, "type": EventType.TASK_DUE, "at": AT, "payload": {"n": n, "x": [None, "é"]}}
            for n in range(5)
        ],
    )
    ids = await Event.filter(organization_id=org.id).order_by("id").values_list("id", flat=True)
    await Event.filter(id=ids[0]).update(seq=10_000)
    fields = ["id", "organization_id", "type", "at", "payload", "seq", "prospect_id"]
    monkeypatch.setattr(bulk, "MAX_PARAMETERS", 2)
    rows = await bulk.select_in(Event, fields, "id", [*ids, 10**9])
    assert sorted(rows, key=lambda row: row["id"]) == await Event.filter(id__in=ids).order_by("id").values(*fields)
    unnumbered = await bulk.select_in(Event, ["id"], "id", set(ids), null=["seq"])
    assert sorted(row["id"] for row in unnumbered) == ids[1:]
    assert await bulk.select_in(Event, ["id"], "id", []) == []
