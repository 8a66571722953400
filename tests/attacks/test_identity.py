"""Sending identities and cross-tenant reports: an organization claims an SMS
number or a sender address another holds (in any spelling), or an AGENT reads
the numbers of prospects it may not work (R1.3, R15)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.accounts import service as accounts
from app.accounts.models import Organization, Role, SendingIdentity
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import sending
from app.sequences import scheduler
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from tests.conftest import GraphQL, Org, mutate
from tests.test_scheduler import setup

# (field, what the first organization holds, what another then claims)
CLAIMS = [
    pytest.param("smsFrom", "+12025550143", "+12025550143", id="sms-the-same-number"),
    pytest.param("smsFrom", "+12025550143", "(202) 555-0143", id="sms-the-number-in-national-form"),
    pytest.param("smsFrom", "+12025550143", "+1 202-555-0143", id="sms-the-number-spelled-with-spaces"),
    pytest.param("emailFrom", "Ada@acme.example", "Ada@acme.example", id="email-the-same-address"),
    pytest.param("emailFrom", "Ada@acme.example", "ADA@ACME.EXAMPLE", id="email-the-address-in-capitals"),
    pytest.param("emailFrom", "ada@bücher.example", "ada@xn--bcher-kva.example", id="email-the-domain-in-punycode"),
]

# (emailFrom claimed, the error naming input.emailFrom or None) under PUBLIC_URL
# https://Leadline.Example.com: its host is Leadline's own mail domain, where every
# organization without a sender address sends from (no-reply@leadline.example.com).
OWN_DOMAIN = [
    pytest.param("no-reply@leadline.example.com", "INVALID_INPUT", id="the-default-sender"),
    pytest.param("No-Reply@LEADLINE.EXAMPLE.COM", "INVALID_INPUT", id="the-default-sender-in-capitals"),
    pytest.param("sales@leadline.example.com", "INVALID_INPUT", id="another-address-at-its-domain"),
    pytest.param("sales@mail.leadline.example.com", None, id="a-subdomain-may-be-an-organizations"),
    pytest.param("sales@example.com", None, id="the-parent-domain-may-be-an-organizations"),
]

# (viewer, prospects enrolled it counts, messages sent it counts): of three enrolled
# prospects, one is the agent's, one unassigned, one the second agent's.
STATS = [
    pytest.param("agent", 2, 2, id="agent-counts-its-own-and-unassigned"),
    pytest.param("second agent", 2, 2, id="second-agent-counts-its-own-and-unassigned"),
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path / "data"), "PUBLIC_URL": "https://Leadline.Example.com"}
    )


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


@pytest.mark.parametrize(("claimed", "error"), OWN_DOMAIN)
async def test_the_default_senders_domain_is_no_organizations(
    gql: GraphQL, org: Org, claimed: str, error: str | None
) -> None:
    payload = await mutate(
        gql, org.tokens[Role.ADMIN], "updateOrganization", "organization { emailFrom }", **{"emailFrom": claimed}
    )
    if error is None:
        assert (payload["organization"], payload["errors"]) == ({"emailFrom": claimed}, [])
        assert [i.address for i in await SendingIdentity.all()] == [claimed]
    else:
        assert payload["organization"] is None
        [refused] = payload["errors"]
        assert (refused["code"], refused["field"]) == (error, ["input", "emailFrom"])
        assert "leadline.example.com" in refused["message"]
        assert (await Organization.get(id=org.id)).email_from is None
        assert await SendingIdentity.all().count() == 0


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


@pytest.mark.parametrize(("viewer", "enrolled", "sent"), STATS)
async def test_an_agents_sequence_stats_count_only_the_prospects_it_may_work(
    gql: GraphQL, org: Org, clock: FrozenClock, tmp_path: Path, viewer: str, enrolled: int, sent: int
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    second = await accounts.create_user(actor=admin, name="Second", email="second@acme.example", role=Role.AGENT)
    second_token, _ = await accounts.create_token(actor=admin, name="second", user_id=second.id)
    people: list[dict[str, object]] = [
        {"first_name": "Ada", "email": "ada@client.example", "owner_id": org.users[Role.AGENT].id},
        {"first_name": "Bob", "email": "bob@client.example"},
        {"first_name": "Cyd", "email": "cyd@client.example", "owner_id": second.id},
    ]
    await setup(org, clock, steps=[StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi")], people=people)
    settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data")})
    transports = sending.transports_for(settings)
    for message_id in (await scheduler.run_pass(clock)).queued:
        assert await sending.send(message_id, transports=transports, settings=settings, clock=clock) == "SENT"
    query = "{ sequences { edges { node { stats { enrolled sent byStage { count } } } } } }"
    token = {"agent": org.tokens[Role.AGENT], "second agent": second_token}[viewer]

    [edge] = (await gql(token, query))["data"]["sequences"]["edges"]
    [everything] = (await gql(org.tokens[Role.MANAGER], query))["data"]["sequences"]["edges"]

    assert (edge["node"]["stats"]["enrolled"], edge["node"]["stats"]["sent"]) == (enrolled, sent)
    assert sum(row["count"] for row in edge["node"]["stats"]["byStage"]) == enrolled
    assert (everything["node"]["stats"]["enrolled"], everything["node"]["stats"]["sent"]) == (3, 3)
