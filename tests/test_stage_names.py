"""An organization's own names for enrollment stages (contract part 70):
Organization.stageNames set through updateOrganization, Enrollment.stageName per
enrollment, EnrollmentFilter.stageNames, and the presets that fill them in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis

from app import ids, presets
from app.accounts.actor import Actor
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.events import log
from app.prospects import consent
from app.prospects import service as prospects
from app.prospects.models import ChangeCause, Channel, Prospect
from app.sequences import enrollments
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from app.sequences.state import Stage
from app.state import state_of
from app.web import create_app
from app.workflows import service as workflows
from app.workflows.models import SystemStatus
from tests.conftest import GraphQL, Org, QueryCounter, mutate
from tests.loopback import serving
from tests.ws_client import connect

ORGANIZATION = "organization { stageNames { stage name } }"
READ_NAMES = "{ organization { stageNames { stage name } } }"
ENROLLMENTS = """
query($filter: EnrollmentFilter) {
  enrollments(filter: $filter, first: 100) {
    edges { node { stage stageName prospect { firstName } sequence { name } } }
  }
}
"""
SEQUENCE_ENROLLMENTS = """
query($id: ID!, $filter: EnrollmentFilter) {
  node(id: $id) { ... on Sequence { enrollments(filter: $filter) { edges { node { prospect { firstName } } } } } }
}
"""


async def _set_names(gql: GraphQL, token: str, names: list[dict[str, str]]) -> dict[str, Any]:
    return await mutate(gql, token, "updateOrganization", ORGANIZATION, stageNames=names)


async def _sequence(admin: Actor, name: str) -> int:
    steps = [StepSpec(StepType.EMAIL, 3600, body="Hello {{ first_name }}", subject="Hi")]
    row = await sequences.create_sequence(
        actor=admin,
        name=name,
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        steps=steps,
        active=True,
    )
    return row.id


async def _people(admin: Actor, *names: str) -> list[Prospect]:
    org = await Organization.get(id=admin.organization_id)
    if org.default_status_id is None:  # new prospects need a status to start in
        workflow = await workflows.create_workflow(actor=admin, name="Leads", position=None)
        status = await workflows.create_status(
            actor=admin,
            workflow_id=workflow.id,
            name="New",
            system_status=SystemStatus.NEW,
            pipeline_percent=0,
            max_assignment_seconds=None,
            position=None,
            enrollment_outcome=None,
        )
        await Organization.filter(id=org.id).update(default_status_id=status.id)
    made, errors = await prospects.create_prospects(
        actor=admin, inputs=[{"first_name": n, "email": f"{n.lower()}@client.example"} for n in names]
    )
    assert not errors
    return made


async def _enroll(admin: Actor, sequence_id: int, people: list[Prospect]) -> list[Enrollment]:
    enrolled, errors = await enrollments.enroll(
        actor=admin, sequence_id=sequence_id, prospect_ids=[p.id for p in people], activate=None
    )
    assert not errors
    return enrolled


async def _listed(gql: GraphQL, org: Org, **filter_: Any) -> list[tuple[str, str, str]]:
    body = await gql(org.tokens[Role.MANAGER], ENROLLMENTS, filter=filter_ or None)
    assert "errors" not in body, body
    nodes = [edge["node"] for edge in body["data"]["enrollments"]["edges"]]
    return sorted((n["prospect"]["firstName"], n["stage"], n["stageName"]) for n in nodes)


async def test_an_admin_sets_reads_and_clears_the_stage_names(gql: GraphQL, org: Org) -> None:
    # Given no names, when an ADMIN sets three, two of them the same (seed 001's one "Opted out")
    assert (await gql(org.tokens[Role.AGENT], READ_NAMES))["data"]["organization"]["stageNames"] == []
    payload = await _set_names(
        gql,
        org.tokens[Role.ADMIN],
        [
            {"stage": "UNSUBSCRIBED", "name": " Opted out "},
            {"stage": "REPLIED", "name": "Finished (Replied)"},
            {"stage": "OPTED_OUT", "name": "Opted out"},
        ],
    )
    # then they read trimmed, in the stages' order, for every member
    named = [
        {"stage": "REPLIED", "name": "Finished (Replied)"},
        {"stage": "OPTED_OUT", "name": "Opted out"},
        {"stage": "UNSUBSCRIBED", "name": "Opted out"},
    ]
    assert payload == {"organization": {"stageNames": named}, "errors": []}
    assert (await gql(org.tokens[Role.AGENT], READ_NAMES))["data"]["organization"]["stageNames"] == named
    # An update without stageNames keeps them; a new list replaces the whole list; [] clears it.
    kept = await mutate(gql, org.tokens[Role.ADMIN], "updateOrganization", ORGANIZATION, name="Acme Corp")
    assert kept["organization"]["stageNames"] == named
    replaced = await _set_names(gql, org.tokens[Role.ADMIN], [{"stage": "PAUSED", "name": "On hold"}])
    assert replaced["organization"]["stageNames"] == [{"stage": "PAUSED", "name": "On hold"}]
    cleared = await _set_names(gql, org.tokens[Role.ADMIN], [])
    assert cleared == {"organization": {"stageNames": []}, "errors": []}
    assert (await Organization.get(id=org.id)).stage_names == {}


async def test_bad_stage_names_are_refused_naming_the_entry_and_change_nothing(gql: GraphQL, org: Org) -> None:
    await _set_names(gql, org.tokens[Role.ADMIN], [{"stage": "PAUSED", "name": "Paused"}])
    cases = [
        (
            [{"stage": "PAUSED", "name": "A"}, {"stage": "REPLIED", "name": "B"}, {"stage": "PAUSED", "name": "C"}],
            ["input", "stageNames", "2", "stage"],
        ),
        ([{"stage": "PAUSED", "name": "   "}], ["input", "stageNames", "0", "name"]),
        (
            [{"stage": "REPLIED", "name": "ok"}, {"stage": "PAUSED", "name": "x" * 101}],
            ["input", "stageNames", "1", "name"],
        ),
    ]
    for names, field in cases:
        payload = await _set_names(gql, org.tokens[Role.ADMIN], names)
        assert payload["organization"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)]
    # A name of 100 characters is fine; a MANAGER may not change the organization (as for its other settings).
    fine = await _set_names(gql, org.tokens[Role.ADMIN], [{"stage": "PAUSED", "name": "y" * 100}])
    assert fine["errors"] == []
    refused = await _set_names(gql, org.tokens[Role.MANAGER], [])
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    assert (await Organization.get(id=org.id)).stage_names == {"PAUSED": "y" * 100}


async def test_each_enrollment_reads_its_own_stage_in_the_organizations_words(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    # Given one prospect in two sequences, one of its enrollments paused
    admin = org.actor(Role.ADMIN, clock)
    [ada] = await _people(admin, "Ada")
    first, second = await _sequence(admin, "First"), await _sequence(admin, "Second")
    [in_first] = await _enroll(admin, first, [ada])
    await _enroll(admin, second, [ada])
    await enrollments.pause(actor=admin, enrollment_ids=[in_first.id])
    # Without names, each reads the stage's own name: its value, as `stage` spells it
    assert await _listed(gql, org) == [("Ada", "PAUSED", "PAUSED"), ("Ada", "STARTED", "STARTED")]
    # With names for two stages, each enrollment reads the name of its own stage
    await _set_names(
        gql, org.tokens[Role.ADMIN], [{"stage": "STARTED", "name": "Active"}, {"stage": "PAUSED", "name": "Paused"}]
    )
    assert await _listed(gql, org) == [("Ada", "PAUSED", "Paused"), ("Ada", "STARTED", "Active")]
    body = await gql(
        org.tokens[Role.AGENT],
        "query($id: ID!) { node(id: $id) { ... on Prospect { enrollments { edges { node { sequence { name } stageName } } } } } }",
        id=ids.encode("Prospect", ada.id),
    )
    read = {e["node"]["sequence"]["name"]: e["node"]["stageName"] for e in body["data"]["node"]["enrollments"]["edges"]}
    assert read == {"First": "Paused", "Second": "Active"}


async def test_the_filter_finds_every_stage_that_carries_a_name(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    # Given enrollments STARTED, PAUSED, OPTED_OUT and UNSUBSCRIBED, the last two named alike
    admin = org.actor(Role.ADMIN, clock)
    people = await _people(admin, "Ada", "Bob", "Cy", "Di")
    sequence_id = await _sequence(admin, "Outreach")
    _, bob, cy, di = await _enroll(admin, sequence_id, people)
    await enrollments.pause(actor=admin, enrollment_ids=[bob.id])
    await enrollments.finish(actor=admin, enrollment_ids=[cy.id], outcome=Stage.OPTED_OUT)
    await enrollments.finish(actor=admin, enrollment_ids=[di.id], outcome=Stage.UNSUBSCRIBED)
    await _set_names(
        gql,
        org.tokens[Role.ADMIN],
        [
            {"stage": "PAUSED", "name": "Paused"},
            {"stage": "OPTED_OUT", "name": "Opted out"},
            {"stage": "UNSUBSCRIBED", "name": "Opted out"},
        ],
    )

    async def names(**filter_: Any) -> list[str]:
        return [name for name, _, _ in await _listed(gql, org, **filter_)]

    # One name finds every stage it names; names compare trimmed and case-blind
    assert await names(stageNames=["Opted out"]) == ["Cy", "Di"]
    assert await names(stageNames=[" OPTED OUT"]) == ["Cy", "Di"]
    # A stage not named is found by its own name; a renamed one no longer is
    assert await names(stageNames=["STARTED", "Paused"]) == ["Ada", "Bob"]
    assert await names(stageNames=["OPTED_OUT"]) == []
    assert await names(stageNames=["Nobody's name"]) == []
    assert await names(stageNames=[]) == []
    # With the other filters, all must hold; Sequence.enrollments filters alike
    assert await names(stageNames=["Opted out"], stages=["UNSUBSCRIBED"]) == ["Di"]
    assert await names(stageNames=["Opted out"], finished=False) == []
    body = await gql(
        org.tokens[Role.AGENT],
        SEQUENCE_ENROLLMENTS,
        id=ids.encode("Sequence", sequence_id),
        filter={"stageNames": ["opted out"]},
    )
    edges = body["data"]["node"]["enrollments"]["edges"]
    assert sorted(e["node"]["prospect"]["firstName"] for e in edges) == ["Cy", "Di"]


async def test_a_page_of_enrollments_reads_the_names_in_the_queries_of_one(
    gql: GraphQL, org: Org, clock: FrozenClock, sql_queries: QueryCounter
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    await _set_names(gql, org.tokens[Role.ADMIN], [{"stage": "STARTED", "name": "Active"}])
    one, many = await _sequence(admin, "One"), await _sequence(admin, "Many")
    await _enroll(admin, one, await _people(admin, "Solo"))
    await _enroll(admin, many, await _people(admin, *(f"P{i}" for i in range(30))))
    await gql(org.tokens[Role.MANAGER], "{ viewer { id } }")  # the token's lastUsedAt is written once

    async def cost(sequence_id: int) -> tuple[list[str], int]:
        sql_queries.count = 0
        body = await gql(
            org.tokens[Role.MANAGER],
            ENROLLMENTS,
            filter={"sequenceIds": [ids.encode("Sequence", sequence_id)], "stageNames": ["Active"]},
        )
        nodes = [edge["node"] for edge in body["data"]["enrollments"]["edges"]]
        return [n["stageName"] for n in nodes], sql_queries.count

    solo, solo_cost = await cost(one)
    thirty, thirty_cost = await cost(many)
    assert solo == ["Active"] and thirty == ["Active"] * 30
    assert thirty_cost == solo_cost


async def test_a_preset_names_only_the_stages_the_organization_has_not_named(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    # Given an organization that named REPLIED its own way
    await _set_names(gql, org.tokens[Role.ADMIN], [{"stage": "REPLIED", "name": "Answered"}])
    # When a MANAGER applies prospect-workflow (Upscale, seed 000), twice
    for _ in range(2):
        applied = await mutate(
            gql, org.tokens[Role.MANAGER], "applyPreset", "workflows { name }", name="prospect-workflow"
        )
        assert applied["errors"] == []
    # then every other stage reads Upscale's word for it, and REPLIED keeps the organization's
    listed = (await gql(org.tokens[Role.AGENT], READ_NAMES))["data"]["organization"]["stageNames"]
    assert {n["stage"]: n["name"] for n in listed} == {
        "NOT_STARTED": "Pending",
        "STARTED": "Active",
        "APPROACHING": "Active",
        "PAUSED": "Paused",
        "REPLIED": "Answered",
        "SUCCESS": "Finished (Replied)",
        "NOT_INTERESTED": "Finished (Replied)",
        "UNRESPONSIVE": "Finished (No reply)",
        "BOUNCED": "Finished (No reply)",
        "OPTED_OUT": "Opted Out",
        "UNSUBSCRIBED": "Unsubscribed",
        "REMOVED": "Finished (No reply)",
        "FAILED": "Finished (No reply)",
    }
    # A second preset fills in nothing the first named (sequence-stages would read "Not started").
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="sequence-stages")
    assert (await Organization.get(id=org.id)).stage_names["NOT_STARTED"] == "Pending"


async def test_001_the_link_and_the_manual_opt_out_both_read_opted_out(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    # Given sequence-stages (Revenue Grid, seed 001) and two enrolled prospects
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="sequence-stages")
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    ada, bob = await _people(admin, "Ada", "Bob")
    await _enroll(admin, await _sequence(admin, "Outreach"), [ada, bob])
    assert await _listed(gql, org) == [("Ada", "STARTED", "Started"), ("Bob", "STARTED", "Started")]
    # When Ada unsubscribes through the link and a user opts Bob out by hand
    await consent.unsubscribe(ada, actor=admin, cause=ChangeCause.INBOUND)
    await prospects.opt_out(actor=admin, prospect_id=bob.id, channel=Channel.EMAIL)
    # then both read the seed's one "Opted out", and the name finds both
    opted_out = [("Ada", "UNSUBSCRIBED", "Opted out"), ("Bob", "OPTED_OUT", "Opted out")]
    assert await _listed(gql, org) == opted_out
    assert await _listed(gql, org, stageNames=["Opted out"]) == opted_out


@asynccontextmanager
async def _served(settings: Settings, clock: FrozenClock, redis: Redis) -> AsyncIterator[str]:
    app = create_app(settings, clock=clock, redis=redis, manage_resources=False)
    try:
        async with serving(app) as url:
            yield url.replace("http://", "ws://") + "/graphql"
    finally:
        state = state_of(app)
        assert state.hub is not None
        await state.hub.close()
        await state.sessions.close()


async def test_a_subscription_reads_the_enrollments_stage_name(
    org: Org, settings: Settings, clock: FrozenClock, redis: Redis
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="prospect-workflow")
    [ada] = await _people(admin, "Ada")
    [enrollment] = await _enroll(admin, await _sequence(admin, "Outreach"), [ada])
    await enrollments.pause(actor=admin, enrollment_ids=[enrollment.id])
    await log.sequence()
    async with _served(settings, clock, redis) as url, connect(url, org.tokens[Role.MANAGER]) as client:
        operation = await client.subscribe(
            "subscription($after: String) { events(after: $after, filter: {types: [STAGE_CHANGED]}) "
            "{ stageChange { to enrollment { stageName } } } }",
            after=ids.encode("Cursor", 0),
        )
        first = (await client.next_data(operation))["events"]["stageChange"]
        # The enrollment as it is now (paused), in the preset's words
        assert first == {"to": "STARTED", "enrollment": {"stageName": "Paused"}}
