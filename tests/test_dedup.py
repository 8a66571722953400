"""R12.2: one person, one record. No two prospects of an organization share an
email (stored lower-cased) or an externalId: creating or updating one that
would is DUPLICATE naming the prospect that has it, and the unique indexes
refuse what a check raced past."""

from __future__ import annotations

from typing import Any

import pytest

from app import ids, presets
from app.accounts.models import Role
from app.clock import FrozenClock
from app.prospects import duplicates
from app.prospects.models import Prospect
from tests.conftest import GraphQL, Org, mutate

PROSPECT = "prospect { id email externalId }"


@pytest.fixture
async def leads(org: Org, clock: FrozenClock) -> Org:
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    return org


async def _create(gql: GraphQL, org: Org, **prospect: Any) -> dict[str, Any]:
    return await mutate(gql, org.tokens[Role.MANAGER], "createProspect", PROSPECT, prospect=prospect)


async def test_emails_are_stored_lower_cased_and_external_ids_trimmed(gql: GraphQL, leads: Org) -> None:
    payload = await _create(gql, leads, email=" Ada@Analytical.EXAMPLE ", externalId="  crm-1 ")
    assert payload["errors"] == []
    assert (payload["prospect"]["email"], payload["prospect"]["externalId"]) == ("ada@analytical.example", "crm-1")
    blank = await _create(gql, leads, firstName="Blank", externalId="   ")
    assert blank["prospect"]["externalId"] is None
    too_long = await _create(gql, leads, externalId="x" * 201)
    assert too_long == {
        "prospect": None,
        "errors": [
            {
                "code": "INVALID_INPUT",
                "message": "At most 200 characters.",
                "field": ["input", "prospect", "externalId"],
            }
        ],
    }


async def test_a_second_prospect_with_an_email_or_external_id_is_duplicate(gql: GraphQL, leads: Org) -> None:
    first = (await _create(gql, leads, email="ada@analytical.example", externalId="crm-1"))["prospect"]["id"]
    same_email = await _create(gql, leads, email="ADA@Analytical.example")
    same_id = await _create(gql, leads, email="other@analytical.example", externalId="crm-1")
    assert same_email == {
        "prospect": None,
        "errors": [
            {
                "code": "DUPLICATE",
                "message": f"Prospect {first} already has this email.",
                "field": ["input", "prospect", "email"],
            }
        ],
    }
    assert same_id["errors"] == [
        {
            "code": "DUPLICATE",
            "message": f"Prospect {first} already has this externalId.",
            "field": ["input", "prospect", "externalId"],
        }
    ]
    # No email and no externalId collide with nothing, on either database.
    for _ in range(2):
        assert (await _create(gql, leads, firstName="Anonymous"))["errors"] == []
    assert await Prospect.filter(organization_id=leads.id).count() == 3


async def test_other_organizations_may_hold_the_same_email(gql: GraphQL, leads: Org, other_org: Org) -> None:
    await _create(gql, leads, email="ada@analytical.example", externalId="crm-1")
    await presets.apply(actor=other_org.actor(Role.ADMIN, FrozenClock()), name="lead-workflow")
    elsewhere = await _create(gql, other_org, email="ada@analytical.example", externalId="crm-1")
    assert elsewhere["errors"] == []


async def test_create_prospects_refuses_duplicates_of_existing_rows_and_of_earlier_inputs(
    gql: GraphQL, leads: Org
) -> None:
    existing = (await _create(gql, leads, email="ada@analytical.example"))["prospect"]["id"]
    rows = [
        {"firstName": "P0", "email": "Ada@analytical.example"},
        {"firstName": "P1", "email": "grace@navy.example", "externalId": "crm-7"},
        {"firstName": "P2", "email": "GRACE@navy.example"},
        {"firstName": "P3", "email": "new@navy.example", "externalId": "crm-7"},
        {"firstName": "P4", "email": "not an email"},
        {"firstName": "P5", "email": "alan@turing.example"},
    ]
    payload = await mutate(
        gql, leads.tokens[Role.MANAGER], "createProspects", "prospects { id firstName }", prospects=rows
    )
    created = {p["firstName"]: p["id"] for p in payload["prospects"]}
    assert list(created) == ["P1", "P5"]
    assert payload["errors"] == [
        {
            "code": "DUPLICATE",
            "message": f"Prospect {existing} already has this email.",
            "field": ["input", "prospects", "0", "email"],
        },
        {
            "code": "DUPLICATE",
            "message": f"Prospect {created['P1']} already has this email.",
            "field": ["input", "prospects", "2", "email"],
        },
        {
            "code": "DUPLICATE",
            "message": f"Prospect {created['P1']} already has this externalId.",
            "field": ["input", "prospects", "3", "externalId"],
        },
        {
            "code": "INVALID_INPUT",
            "message": "Not a valid email address.",
            "field": ["input", "prospects", "4", "email"],
        },
    ]


async def test_update_prospect_to_another_prospects_email_is_duplicate(gql: GraphQL, leads: Org) -> None:
    ada = (await _create(gql, leads, email="ada@analytical.example", externalId="crm-1"))["prospect"]["id"]
    grace = (await _create(gql, leads, email="grace@navy.example"))["prospect"]["id"]
    token = leads.tokens[Role.MANAGER]
    taken = await mutate(gql, token, "updateProspect", PROSPECT, id=grace, email="Ada@Analytical.example")
    assert taken["errors"] == [
        {"code": "DUPLICATE", "message": f"Prospect {ada} already has this email.", "field": ["input", "email"]}
    ]
    taken_id = await mutate(gql, token, "updateProspect", PROSPECT, id=grace, externalId="crm-1")
    assert [e["field"] for e in taken_id["errors"]] == [["input", "externalId"]]
    assert (await Prospect.get(id=ids.decode_as("Prospect", grace))).email == "grace@navy.example"
    # Its own email again (in another case) is no duplicate.
    own = await mutate(
        gql, token, "updateProspect", PROSPECT, id=ada, email="ADA@analytical.example", externalId="crm-2"
    )
    assert own == {
        "errors": [],
        "prospect": {"id": ada, "email": "ada@analytical.example", "externalId": "crm-2"},
    }


async def test_a_write_that_raced_past_the_check_is_duplicate_not_a_crash(
    gql: GraphQL, leads: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check saw the key free (a concurrent insert committed just after it): the
    unique index refuses the write, and the retry's check names the holder."""
    ada = (await _create(gql, leads, email="ada@analytical.example", externalId="crm-1"))["prospect"]["id"]
    real = duplicates.holders
    calls: list[int] = []

    async def stale_once(organization_id: int, keys: Any) -> dict[duplicates.Key, int]:
        calls.append(organization_id)
        return {} if len(calls) % 2 else await real(organization_id, keys)

    monkeypatch.setattr(duplicates, "holders", stale_once)
    single = await _create(gql, leads, email="Ada@analytical.example")
    assert single["errors"] == [
        {
            "code": "DUPLICATE",
            "message": f"Prospect {ada} already has this email.",
            "field": ["input", "prospect", "email"],
        }
    ]
    calls.clear()
    bulk = await mutate(
        gql,
        leads.tokens[Role.MANAGER],
        "createProspects",
        "prospects { email }",
        prospects=[{"email": "grace@navy.example"}, {"externalId": "crm-1"}],
    )
    assert bulk["prospects"] == [{"email": "grace@navy.example"}]
    assert [(e["code"], e["field"]) for e in bulk["errors"]] == [
        ("DUPLICATE", ["input", "prospects", "1", "externalId"])
    ]
    calls.clear()
    grace = bulk["prospects"] and await Prospect.get(email="grace@navy.example")
    update = await mutate(
        gql,
        leads.tokens[Role.MANAGER],
        "updateProspect",
        PROSPECT,
        id=ids.encode("Prospect", grace.id),
        externalId="crm-1",
    )
    assert [(e["code"], e["message"]) for e in update["errors"]] == [
        ("DUPLICATE", f"Prospect {ada} already has this externalId.")
    ]
    assert await Prospect.filter(organization_id=leads.id).count() == 2
