"""R12.3: upsert_prospects creates or updates by the first key that matches, a
batch in a few queries; what it writes is what create and update write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app import ids, presets
from app.accounts.actor import Actor
from app.accounts.models import Role
from app.clock import FrozenClock
from app.errors import Code
from app.events.models import Event, EventType
from app.prospects import service, upsert
from app.prospects.models import Prospect, StatusChange
from app.prospects.upsert import MatchKey, OnDuplicate, upsert_prospects
from app.workflows.models import Status
from tests.conftest import Org, QueryCounter


@pytest.fixture
async def admin(org: Org, clock: FrozenClock) -> Actor:
    actor = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=actor, name="lead-workflow")
    return actor


async def _existing(admin: Actor, **values: Any) -> Prospect:
    return await service.create_prospect(actor=admin, values=values)


def _errors(result: upsert.UpsertResult) -> list[tuple[Code, tuple[str | int, ...] | None, str]]:
    return [(e.code, e.field, e.message) for e in result.errors]


async def test_matched_rows_update_only_the_fields_they_give_and_the_rest_are_created(admin: Actor) -> None:
    ada = await _existing(admin, email="ada@analytical.example", first_name="Ada", company="Engines")
    result = await upsert_prospects(
        actor=admin,
        rows=[{"email": "ADA@analytical.example", "title": "CTO"}, {"email": "grace@navy.example", "first_name": "G"}],
    )
    assert [p.id for p in result.updated] == [ada.id]
    assert [p.email for p in result.created] == ["grace@navy.example"]
    assert (result.skipped, result.errors) == ([], [])
    await ada.refresh_from_db()
    assert (ada.first_name, ada.company, ada.title) == ("Ada", "Engines", "CTO")
    updated = await Event.filter(prospect_id=ada.id, type=EventType.PROSPECT_UPDATED).values_list("payload", flat=True)
    assert [p["fields"] for p in updated] == [["title"]]  # type: ignore[index]
    grace = result.created[0]
    assert await StatusChange.filter(prospect_id=grace.id, from_status_id=None).count() == 1
    assert await Event.filter(prospect_id=grace.id, type=EventType.PROSPECT_CREATED).count() == 1


async def test_a_matched_row_keeps_the_custom_fields_it_leaves_out(admin: Actor) -> None:
    ada = await _existing(admin, email="ada@analytical.example", custom_fields={"lead_source": "CRM", "tier": 1})
    result = await upsert_prospects(
        actor=admin, rows=[{"email": "ada@analytical.example", "custom_fields": {"industry": "Computing", "tier": 2}}]
    )
    assert [p.id for p in result.updated] == [ada.id]
    await ada.refresh_from_db()
    assert ada.custom_fields == {"lead_source": "CRM", "tier": 2, "industry": "Computing"}


async def test_the_first_key_of_match_on_that_finds_a_prospect_decides(admin: Actor) -> None:
    ada = await _existing(admin, email="ada@analytical.example", external_id="crm-1")
    grace = await _existing(admin, email="grace@navy.example")
    result = await upsert_prospects(
        actor=admin,
        rows=[
            {"external_id": "crm-1", "email": "lovelace@analytical.example"},  # by externalId: its email changes
            {"external_id": "crm-2", "email": "grace@navy.example"},  # crm-2 finds no one; the email does
        ],
    )
    assert [p.id for p in result.updated] == [ada.id, grace.id]
    assert result.created == [] and result.errors == []
    await ada.refresh_from_db()
    await grace.refresh_from_db()
    assert (ada.email, grace.external_id) == ("lovelace@analytical.example", "crm-2")
    by_email = await upsert_prospects(
        actor=admin, rows=[{"external_id": "crm-9", "email": "lovelace@analytical.example"}], match_on=[MatchKey.EMAIL]
    )
    assert [p.id for p in by_email.updated] == [ada.id]


async def test_skip_and_error_leave_matched_prospects_as_they_are(admin: Actor) -> None:
    ada = await _existing(admin, email="ada@analytical.example", first_name="Ada")
    rows = [{"first_name": "New"}, {"email": "ada@analytical.example", "first_name": "Changed"}]
    skipped = await upsert_prospects(actor=admin, rows=rows, on_duplicate=OnDuplicate.SKIP)
    assert (len(skipped.created), skipped.updated, skipped.skipped, skipped.errors) == (1, [], [1], [])
    refused = await upsert_prospects(actor=admin, rows=rows, on_duplicate=OnDuplicate.ERROR)
    gid = ids.encode("Prospect", ada.id)
    assert _errors(refused) == [(Code.DUPLICATE, (1, "email"), f"Prospect {gid} already has this email.")]
    await ada.refresh_from_db()
    assert ada.first_name == "Ada"


async def test_two_rows_with_one_key_are_one_person(admin: Actor) -> None:
    rows = [
        {"email": "ada@analytical.example", "first_name": "Ada", "company": "Engines"},
        {"email": "Ada@Analytical.example", "first_name": "Augusta"},
    ]
    result = await upsert_prospects(actor=admin, rows=rows)
    assert [(p.first_name, p.company) for p in result.created] == [("Augusta", "Engines")]
    assert (result.updated, result.errors) == ([], [])
    assert await Prospect.filter(email="ada@analytical.example").count() == 1
    fresh = [{**row, "email": "grace@navy.example"} for row in rows]
    refused = await upsert_prospects(actor=admin, rows=fresh, on_duplicate=OnDuplicate.ERROR)
    gid = ids.encode("Prospect", refused.created[0].id)
    assert _errors(refused) == [(Code.DUPLICATE, (1, "email"), f"Prospect {gid} already has this email.")]
    skipped = await upsert_prospects(
        actor=admin, rows=[{**row, "email": "alan@turing.example"} for row in rows], on_duplicate=OnDuplicate.SKIP
    )
    assert (len(skipped.created), skipped.skipped) == (1, [1])


async def test_phone_matches_one_prospect_and_refuses_a_shared_number(admin: Actor) -> None:
    ada = await _existing(admin, phone="+12025550143")
    shared = [await _existing(admin, phone="+12025550144") for _ in range(2)]
    result = await upsert_prospects(
        actor=admin,
        rows=[{"phone": "(202) 555-0143", "title": "CTO"}, {"phone": "+1 202 555 0144", "title": "CEO"}],
        match_on=[MatchKey.PHONE],
    )
    assert [p.id for p in result.updated] == [ada.id]
    [(code, field, message)] = _errors(result)
    assert (code, field) == (Code.INVALID_INPUT, (1, "phone"))
    assert all(ids.encode("Prospect", p.id) in message for p in shared)


async def test_a_key_another_person_holds_is_duplicate(admin: Actor) -> None:
    ada = await _existing(admin, email="ada@analytical.example", external_id="crm-1")
    grace = await _existing(admin, email="grace@navy.example")
    result = await upsert_prospects(
        actor=admin,
        rows=[
            {"external_id": "crm-7", "email": "ada@analytical.example"},  # no match by externalId: a creation
            {"email": "grace@navy.example", "external_id": "crm-1"},  # ada by externalId, taking grace's email
            {"email": "not an email"},
        ],
        match_on=[MatchKey.EXTERNAL_ID],
    )
    assert (result.created, result.updated) == ([], [])
    assert _errors(result) == [
        (Code.DUPLICATE, (0, "email"), f"Prospect {ids.encode('Prospect', ada.id)} already has this email."),
        (Code.DUPLICATE, (1, "email"), f"Prospect {ids.encode('Prospect', grace.id)} already has this email."),
        (Code.INVALID_INPUT, (2, "email"), "Not a valid email address."),
    ]
    await ada.refresh_from_db()
    assert ada.email == "ada@analytical.example"


async def test_status_and_owner_given_move_and_assign_as_the_api_does(org: Org, admin: Actor) -> None:
    ada = await _existing(admin, email="ada@analytical.example")
    won = await Status.get(organization_id=org.id, name="Sold")
    agent = org.users[Role.AGENT].id
    result = await upsert_prospects(
        actor=admin, rows=[{"email": "ada@analytical.example", "status_id": won.id, "owner_id": agent}]
    )
    assert [(p.status_id, p.owner_id) for p in result.updated] == [(won.id, agent)]
    assert await StatusChange.filter(prospect_id=ada.id, to_status_id=won.id).count() == 1
    types = await Event.filter(prospect_id=ada.id).values_list("type", flat=True)
    assert {EventType.STATUS_CHANGED, EventType.ASSIGNMENT_CHANGED} <= set(types)


async def test_an_agent_may_not_update_a_prospect_it_may_not_work(org: Org, admin: Actor, clock: FrozenClock) -> None:
    manager = org.users[Role.MANAGER].id
    theirs = await _existing(admin, email="ada@analytical.example", owner_id=manager)
    agent = org.actor(Role.AGENT, clock)
    result = await upsert_prospects(actor=agent, rows=[{"email": "ada@analytical.example", "title": "CTO"}])
    assert (result.created, result.updated) == ([], [])
    assert [(e.code, e.field) for e in result.errors] == [(Code.DUPLICATE, (0,))]
    await theirs.refresh_from_db()
    assert theirs.title is None


async def test_a_dry_run_computes_the_same_result_and_writes_nothing(admin: Actor) -> None:
    await _existing(admin, email="ada@analytical.example")
    rows = [{"email": "ada@analytical.example", "title": "CTO"}, {"email": "grace@navy.example"}, {"email": "bad"}]
    counts = [await Prospect.all().count(), await Event.all().count(), await StatusChange.all().count()]
    dry = await upsert_prospects(actor=admin, rows=rows, dry_run=True)
    assert [await Prospect.all().count(), await Event.all().count(), await StatusChange.all().count()] == counts
    assert (await Prospect.get(email="ada@analytical.example")).title is None
    real = await upsert_prospects(actor=admin, rows=rows)
    assert (len(dry.created), len(dry.updated), dry.skipped, _errors(dry)) == (
        len(real.created),
        len(real.updated),
        real.skipped,
        _errors(real),
    )


async def test_a_batch_costs_the_same_queries_whatever_its_size(admin: Actor, sql_queries: QueryCounter) -> None:
    async def cost(size: int, start: int) -> int:
        existing = [{"email": f"p{n}@example.com"} for n in range(start, start + size)]
        await service.create_prospects(actor=admin, inputs=existing)
        rows = [{"email": f"p{n}@example.com", "title": "CTO"} for n in range(start, start + size)]
        rows += [{"email": f"q{n}@example.com"} for n in range(start, start + size)]
        before = sql_queries.count
        result = await upsert_prospects(actor=admin, rows=rows)
        assert (len(result.created), len(result.updated)) == (size, size)
        return sql_queries.count - before

    small, large = await cost(5, 0), await cost(400, 1000)
    assert small == large
    assert large <= 30


async def test_too_many_rows_or_no_key_are_refused(admin: Actor) -> None:
    with pytest.raises(Exception) as too_many:
        await upsert_prospects(actor=admin, rows=[{"first_name": "x"}] * 1001)
    assert getattr(too_many.value, "field", None) == ("rows",)
    with pytest.raises(Exception) as no_key:
        await upsert_prospects(actor=admin, rows=[{"first_name": "x"}], match_on=[])
    assert getattr(no_key.value, "field", None) == ("match_on",)


@pytest.mark.postgres
async def test_concurrent_upserts_of_one_new_email_give_one_prospect(
    admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both transactions plan a creation (neither sees the other's); the unique index
    lets one insert through, and the other, refused, plans again and updates it."""
    both_planned = asyncio.Barrier(2)
    real = upsert._Plan.read
    plans = 0

    async def together(actor: Actor, prepared: Any, match_on: Any) -> upsert._Plan:
        nonlocal plans
        plan = await real(actor, prepared, match_on)
        plans += 1
        if plans <= 2:
            await both_planned.wait()
        return plan

    monkeypatch.setattr(upsert._Plan, "read", together)
    first, second = await asyncio.gather(
        upsert_prospects(actor=admin, rows=[{"email": "ada@analytical.example", "first_name": "Ada"}]),
        upsert_prospects(actor=admin, rows=[{"email": "Ada@Analytical.example", "title": "CTO"}]),
    )
    assert plans == 3
    assert sorted([len(first.created), len(second.created)]) == [0, 1]
    assert sorted([len(first.updated), len(second.updated)]) == [0, 1]
    [ada] = await Prospect.filter(email="ada@analytical.example")
    assert (ada.first_name, ada.title) == ("Ada", "CTO")
