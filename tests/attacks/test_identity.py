"""Sending identities and cross-tenant reports: an organization claims an SMS
number or a sender address another holds (in any spelling), or an AGENT reads
the numbers of prospects it may not work (R1.3, R15)."""

from __future__ import annotations

import asyncio

import pytest

from app.accounts.models import Organization, Role, SendingIdentity
from tests.conftest import GraphQL, Org, mutate

# (field, what the first organization holds, what another then claims)
CLAIMS = [
    pytest.param("smsFrom", "+12025550143", "+12025550143", id="sms-the-same-number"),
    pytest.param("smsFrom", "+12025550143", "(202) 555-0143", id="sms-the-number-in-national-form"),
    pytest.param("smsFrom", "+12025550143", "+1 202-555-0143", id="sms-the-number-spelled-with-spaces"),
    pytest.param("emailFrom", "Ada@acme.example", "Ada@acme.example", id="email-the-same-address"),
    pytest.param("emailFrom", "Ada@acme.example", "ADA@ACME.EXAMPLE", id="email-the-address-in-capitals"),
    pytest.param("emailFrom", "ada@bücher.example", "ada@xn--bcher-kva.example", id="email-the-domain-in-punycode"),
]


@pytest.mark.parametrize(("field", "held", "claimed"), CLAIMS)
async def test_an_identity_another_organization_holds_is_conflict(
    gql: GraphQL, org: Org, other_org: Org, field: str, held: str, claimed: str
) -> None:
    first = await mutate(gql, org.tokens[Role.ADMIN], "updateOrganization", "organization { name }", **{field: held})
    assert first["errors"] == []
    second = await mutate(
        gql,
        other_org.tokens[Role.ADMIN],
        "updateOrganization",
        "organization { name }",
        name="Renamed",
        **{field: claimed},
    )
    assert second["organization"] is None
    assert [(e["code"], e["field"]) for e in second["errors"]] == [("CONFLICT", ["input", field])]
    globex = await Organization.get(id=other_org.id)
    assert (globex.name, globex.email_from, globex.sms_from) == ("Globex", None, None)
    assert [i.organization_id for i in await SendingIdentity.all()] == [org.id]


async def test_two_organizations_claiming_one_number_at_once_get_one_claim_and_one_conflict(
    gql: GraphQL, org: Org, other_org: Org
) -> None:
    for attempt in range(5):
        number = f"+1202555014{attempt}"
        payloads = await asyncio.gather(
            *(
                mutate(gql, o.tokens[Role.ADMIN], "updateOrganization", "organization { smsFrom }", smsFrom=number)
                for o in (org, other_org)
            )
        )
        outcomes = sorted(
            (p["organization"] or {}).get("smsFrom") or p["errors"][0]["code"] + ":" + "/".join(p["errors"][0]["field"])
            for p in payloads
        )
        assert outcomes == [number, "CONFLICT:input/smsFrom"], attempt
        holders = await Organization.filter(sms_from=number).values_list("id", flat=True)
        [identity] = await SendingIdentity.filter(address=number)
        assert holders == [identity.organization_id]
