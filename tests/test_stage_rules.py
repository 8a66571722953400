"""R8: every path that moves an enrollment fires the ENROLLMENT_STAGE_CHANGED rules,
once a move: the API's verbs, consent, a status's enrollment outcome. (The writer
of stage changes runs no rules: each of its callers does, after.)"""

from __future__ import annotations

from typing import Any

from app.accounts.models import Role
from tests.conftest import GraphQL, Org, mutate

ATTEMPTS = "query($id: ID!) { node(id: $id) { ... on Prospect { contactAttempts } } }"


async def _attempts(gql: GraphQL, token: str, prospect: str) -> int:
    body = await gql(token, ATTEMPTS, id=prospect)
    attempts: int = body["data"]["node"]["contactAttempts"]
    return attempts


async def _enrollments(gql: GraphQL, token: str, name: str, *ids: str, **input_: Any) -> None:
    done = await mutate(gql, token, name, "enrollments { id }", ids=list(ids), **input_)
    assert done["errors"] == [], (name, done)


async def test_each_stage_change_fires_the_rules_once(gql: GraphQL, org: Org) -> None:
    token = org.tokens[Role.MANAGER]
    workflow = (await mutate(gql, token, "createWorkflow", "workflow { id }", name="W"))["workflow"]["id"]
    status = {"workflowId": workflow, "systemStatus": "NEW"}
    await mutate(gql, token, "createStatus", "status { id }", name="New", **status)  # the default
    won_status = await mutate(
        gql, token, "createStatus", "status { id }", name="Won", enrollmentOutcome="SUCCESS", **status
    )
    won = won_status["status"]["id"]
    rule = await mutate(
        gql,
        token,
        "createAutomationRule",
        "automationRule { id }",
        name="count",
        event="ENROLLMENT_STAGE_CHANGED",
        operations=[{"type": "MARK_CONTACT_ATTEMPTED"}],
    )
    assert rule["errors"] == []
    people = [{"firstName": n, "email": f"{n.lower()}@client.example"} for n in ("Ada", "Bob", "Cy", "Di", "Ed")]
    made = await mutate(gql, token, "createProspects", "prospects { id }", prospects=people)
    ada, bob, cy, di, ed = [p["id"] for p in made["prospects"]]
    steps = [{"type": "EMAIL", "delaySeconds": 3600, "subject": "Hi", "body": "Hello"}]
    made_sequence = await mutate(gql, token, "createSequence", "sequence { id }", name="S", steps=steps, active=True)
    sequence = made_sequence["sequence"]
    enrolled = await mutate(
        gql,
        token,
        "enrollProspects",
        "enrollments { id }",
        sequenceId=sequence["id"],
        prospectIds=[ada, bob, cy, di, ed],
        activate=False,  # NOT_STARTED in an active sequence: activateEnrollments starts them
    )
    enrollment = {p: e["id"] for p, e in zip((ada, bob, cy, di, ed), enrolled["enrollments"], strict=True)}

    await _enrollments(gql, token, "activateEnrollments", enrollment[ada])
    await _enrollments(gql, token, "pauseEnrollments", enrollment[ada])
    await _enrollments(gql, token, "resumeEnrollments", enrollment[ada])
    await _enrollments(gql, token, "jumpEnrollments", enrollment[ada], position=1)
    await _enrollments(gql, token, "finishEnrollments", enrollment[ada], outcome="NOT_INTERESTED")
    await _enrollments(gql, token, "removeEnrollments", enrollment[bob])
    await mutate(gql, token, "optOutProspect", "prospect { id }", id=cy, channel="EMAIL")
    await mutate(gql, token, "markDoNotContact", "prospect { id }", id=di, doNotContact=True)
    await mutate(gql, token, "setProspectStatus", "prospect { id }", id=ed, statusId=won)

    # Enrolled NOT_STARTED, then STARTED, PAUSED, STARTED, STARTED again, NOT_INTERESTED.
    assert await _attempts(gql, token, ada) == 6
    # Enrolled, then REMOVED, OPTED_OUT, OPTED_OUT, SUCCESS.
    assert [await _attempts(gql, token, p) for p in (bob, cy, di, ed)] == [2, 2, 2, 2]
