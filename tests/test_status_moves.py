"""R2.5, R2.6, R10.1: prospects that deleteStatus and deleteWorkflow move with
moveToStatusId are moved as setProspectStatus moves one: a STATUS_CHANGED event
in the log, the STATUS_ENTERED rules of the status they enter, its enrollment
outcome."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.models import Role
from app.events import log
from tests.conftest import GraphQL, Org, mutate

STATUS_CHANGES = """query { events(filter: {types: [STATUS_CHANGED]}) {
  edges { node { prospect { firstName } payload } }
} }"""
PROSPECT = """query($id: ID!) { node(id: $id) { ... on Prospect {
  status { name } contactMadeAt enrollments { edges { node { stage } } }
} } }"""


async def _status(gql: GraphQL, token: str, workflow: str, name: str, **extra: Any) -> str:
    made = await mutate(
        gql, token, "createStatus", "status { id }", workflowId=workflow, name=name, systemStatus="NEW", **extra
    )
    status: str = made["status"]["id"]
    return status


async def _won_prospect_in(gql: GraphQL, token: str, status: str) -> tuple[str, str]:
    """A workflow "Closed" whose status Won finishes enrollments SUCCESS and has a
    STATUS_ENTERED rule, and a prospect at ``status``, enrolled in a running sequence:
    (Won's id, the prospect's id)."""
    closed = (await mutate(gql, token, "createWorkflow", "workflow { id }", name="Closed"))["workflow"]["id"]
    won = await _status(gql, token, closed, "Won", enrollmentOutcome="SUCCESS")
    rule = await mutate(
        gql,
        token,
        "createAutomationRule",
        "automationRule { id }",
        name="made it",
        event="STATUS_ENTERED",
        statusId=won,
        operations=[{"type": "MARK_CONTACT_MADE"}],
    )
    assert rule["errors"] == []
    made = await mutate(
        gql,
        token,
        "createProspect",
        "prospect { id }",
        prospect={"firstName": "Ada", "email": "ada@client.example", "statusId": status},
    )
    prospect: str = made["prospect"]["id"]
    steps = [{"type": "EMAIL", "delaySeconds": 3600, "subject": "Hi", "body": "Hello"}]
    sequence = await mutate(gql, token, "createSequence", "sequence { id }", name="S", steps=steps, active=True)
    enrolled = await mutate(
        gql,
        token,
        "enrollProspects",
        "enrollments { stage }",
        sequenceId=sequence["sequence"]["id"],
        prospectIds=[prospect],
    )
    assert enrolled["enrollments"] == [{"stage": "STARTED"}]
    return won, prospect


@pytest.mark.parametrize("mutation", ["deleteStatus", "deleteWorkflow"])
async def test_deleting_moves_the_prospects_with_their_event_rules_and_outcome(
    gql: GraphQL, org: Org, mutation: str
) -> None:
    token = org.tokens[Role.MANAGER]
    open_ = (await mutate(gql, token, "createWorkflow", "workflow { id }", name="Open"))["workflow"]["id"]
    old = await _status(gql, token, open_, "Old")
    won, prospect = await _won_prospect_in(gql, token, old)
    deleting = old if mutation == "deleteStatus" else open_

    deleted = await mutate(gql, token, mutation, "deletedId", id=deleting, moveToStatusId=won)

    assert deleted == {"deletedId": deleting, "errors": []}
    await log.sequence()
    [event] = (await gql(token, STATUS_CHANGES))["data"]["events"]["edges"]
    assert event["node"]["prospect"] == {"firstName": "Ada"}
    change = event["node"]["payload"]["statusChange"]
    assert (change["fromStatusId"], change["toStatusId"], change["cause"]) == (old, won, "USER")
    node = (await gql(token, PROSPECT, id=prospect))["data"]["node"]
    assert node["status"] == {"name": "Won"}
    assert node["contactMadeAt"] is not None  # the rule on entering Won ran
    assert node["enrollments"]["edges"] == [{"node": {"stage": "SUCCESS"}}]  # Won's outcome
