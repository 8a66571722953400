"""upsertProspects and ProspectFilter.externalIds through the API (contract part 50)."""

from __future__ import annotations

import pytest

from app import ids, presets
from app.accounts.models import Role
from app.clock import FrozenClock
from app.prospects.models import Prospect
from tests.conftest import GraphQL, Org, mutate

UPSERTED = "created { email externalId firstName } updated { id email externalId firstName title }"


@pytest.fixture
async def leads(org: Org, clock: FrozenClock) -> Org:
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    return org


async def test_upsert_prospects_creates_and_updates_and_reports_rows_by_index(gql: GraphQL, leads: Org) -> None:
    token = leads.tokens[Role.MANAGER]
    first = await mutate(
        gql,
        token,
        "upsertProspects",
        UPSERTED,
        prospects=[{"email": "Ada@Analytical.example", "externalId": "crm-1", "firstName": "Ada"}],
    )
    assert first == {
        "created": [{"email": "ada@analytical.example", "externalId": "crm-1", "firstName": "Ada"}],
        "updated": [],
        "errors": [],
    }
    ada = ids.encode("Prospect", (await Prospect.get(external_id="crm-1")).id)
    second = await mutate(
        gql,
        token,
        "upsertProspects",
        UPSERTED,
        prospects=[
            {"externalId": "crm-1", "title": "CTO"},
            {"email": "grace@navy.example", "externalId": "crm-2"},
            {"email": "nope"},
            {"externalId": "crm-3", "email": "ada@analytical.example"},
        ],
        matchOn=["EXTERNAL_ID"],
    )
    assert second == {
        "created": [{"email": "grace@navy.example", "externalId": "crm-2", "firstName": None}],
        "updated": [
            {"id": ada, "email": "ada@analytical.example", "externalId": "crm-1", "firstName": "Ada", "title": "CTO"}
        ],
        "errors": [
            {
                "code": "INVALID_INPUT",
                "message": "Not a valid email address.",
                "field": ["input", "prospects", "2", "email"],
            },
            {
                "code": "DUPLICATE",
                "message": f"Prospect {ada} already has this email.",
                "field": ["input", "prospects", "3", "email"],
            },
        ],
    }
    no_key = await mutate(gql, token, "upsertProspects", UPSERTED, prospects=[{"firstName": "x"}], matchOn=[])
    assert [(e["code"], e["field"]) for e in no_key["errors"]] == [("INVALID_INPUT", ["input", "matchOn"])]
    too_many = await mutate(gql, token, "upsertProspects", UPSERTED, prospects=[{"firstName": "x"}] * 1001)
    assert [(e["code"], e["field"]) for e in too_many["errors"]] == [("INVALID_INPUT", ["input", "prospects"])]


async def test_prospects_filter_by_external_ids(gql: GraphQL, leads: Org) -> None:
    token = leads.tokens[Role.MANAGER]
    await mutate(
        gql,
        token,
        "createProspects",
        "prospects { id }",
        prospects=[{"externalId": f"crm-{n}", "firstName": f"P{n}"} for n in range(4)] + [{"firstName": "None"}],
    )
    query = "query($ids: [String!]) { prospects(filter: {externalIds: $ids}) { edges { node { firstName } } } }"
    found = await gql(token, query, ids=["crm-1", " crm-3 ", "crm-9"])
    assert sorted(e["node"]["firstName"] for e in found["data"]["prospects"]["edges"]) == ["P1", "P3"]
    too_many = await gql(token, query, ids=["x"] * 1001)
    assert too_many["data"] is None
    assert too_many["errors"][0]["message"] == "At most 1000 externalIds."
    assert too_many["errors"][0]["extensions"] == {
        "code": "INVALID_INPUT",
        "field": ["filter", "externalIds"],
    }
