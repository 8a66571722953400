"""Sequences, steps and enrollments through the API (the sending is tests/test_sending.py's)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app import ids
from app.accounts.models import Role
from app.clock import FrozenClock
from app.prospects.models import Prospect
from app.sequences.models import Enrollment, SequenceStep, StageChange
from app.workflows.models import Status
from tests.conftest import GraphQL, Org, QueryCounter, mutate
from tests.factories import populate

SEQUENCE = "sequence { id name active stopOnReply unresponsiveAfterSeconds sendWindow { days start end timeZone } steps { id position type delaySeconds subject body } }"
ENROLLMENTS = "enrollments { id stage finished currentStep { position } nextStepAt lastStepAt enrolledAt finishedAt prospect { firstName } }"
STEPS = [
    {
        "type": "EMAIL",
        "delaySeconds": 0,
        "subject": "Hello {{ first_name }}",
        "body": "Hi {{ first_name }} at {{ company }}",
    },
    {"type": "SMS", "delaySeconds": 86400, "body": "Quick ping, {{ first_name }}"},
    {"type": "CALL", "delaySeconds": 3600, "body": "Call {{ full_name }}"},
]


async def make_sequence(
    gql: GraphQL, org: Org, *, active: bool = True, steps: list[dict[str, Any]] = STEPS
) -> dict[str, Any]:
    payload = await mutate(
        gql, org.tokens[Role.MANAGER], "createSequence", SEQUENCE, name="Outreach", steps=steps, active=active
    )
    assert payload["errors"] == []
    sequence: dict[str, Any] = payload["sequence"]
    return sequence


async def make_prospects(gql: GraphQL, org: Org, *names: str) -> list[str]:
    payload = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "createProspects",
        "prospects { id }",
        # A phone each: an opt-out of one would follow a shared number to the others (R12.1).
        prospects=[
            {"firstName": n, "email": f"{n.lower()}@client.example", "phone": f"+1202555{150 + i:04d}"}
            for i, n in enumerate(names)
        ],
    )
    return [p["id"] for p in payload["prospects"]]


async def test_create_a_sequence_with_steps_and_a_window(gql: GraphQL, org: Org) -> None:
    payload = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "createSequence",
        SEQUENCE,
        name=" Outreach ",
        steps=STEPS,
        sendWindow={"days": ["MON", "FRI"], "start": "09:00", "end": "17:30", "timeZone": "America/New_York"},
    )
    sequence = payload["sequence"]
    assert payload["errors"] == []
    assert {k: v for k, v in sequence.items() if k not in ("id", "steps")} == {
        "name": "Outreach",
        "active": False,
        "stopOnReply": True,
        "unresponsiveAfterSeconds": 604800,
        "sendWindow": {"days": ["MON", "FRI"], "start": "09:00", "end": "17:30", "timeZone": "America/New_York"},
    }
    assert [(s["position"], s["type"], s["subject"]) for s in sequence["steps"]] == [
        (1, "EMAIL", "Hello {{ first_name }}"),
        (2, "SMS", None),
        (3, "CALL", None),
    ]


async def test_bad_sequences_are_refused_with_the_field_at_fault(gql: GraphQL, org: Org) -> None:
    cases = [
        ({"steps": [{"type": "EMAIL", "delaySeconds": 0, "body": "x"}]}, ["input", "steps", "0", "subject"]),
        (
            {"steps": [{"type": "SMS", "delaySeconds": 0, "subject": "s", "body": "x"}]},
            ["input", "steps", "0", "subject"],
        ),
        ({"steps": [{"type": "SMS", "delaySeconds": 0, "body": "Hi {{ nickname }}"}]}, ["input", "steps", "0", "body"]),
        ({"steps": [{"type": "SMS", "delaySeconds": 0, "body": "Hi {{ first_name "}]}, ["input", "steps", "0", "body"]),
        ({"steps": [{"type": "SMS", "delaySeconds": -5, "body": "x"}]}, ["input", "steps", "0", "delaySeconds"]),
        ({"sendWindow": {"days": ["MON"], "start": "18:00", "end": "09:00"}}, ["input", "sendWindow", "end"]),
        ({"unresponsiveAfterSeconds": 0}, ["input", "unresponsiveAfterSeconds"]),
    ]
    for values, field in cases:
        payload = await mutate(
            gql, org.tokens[Role.MANAGER], "createSequence", "sequence { id }", **{"name": "S", **values}
        )
        assert payload["sequence"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)], values
    body = await gql(org.tokens[Role.MANAGER], "{ sequences { totalCount } }")
    assert body["data"]["sequences"]["totalCount"] == 0


async def test_steps_are_added_moved_edited_and_removed(gql: GraphQL, org: Org) -> None:
    token = org.tokens[Role.MANAGER]
    sequence = await make_sequence(gql, org)
    added = await mutate(
        gql,
        token,
        "addSequenceStep",
        "sequence { steps { position type body } }",
        sequenceId=sequence["id"],
        step={"type": "TASK", "delaySeconds": 0, "body": "Research {{ company }}"},
        position=1,
    )
    assert [(s["position"], s["type"]) for s in added["sequence"]["steps"]] == [
        (1, "TASK"),
        (2, "EMAIL"),
        (3, "SMS"),
        (4, "CALL"),
    ]
    call = sequence["steps"][2]["id"]
    moved = await mutate(
        gql,
        token,
        "updateSequenceStep",
        "sequence { steps { type delaySeconds body } }",
        id=call,
        position=1,
        delaySeconds=60,
        body="Ring {{ first_name }}",
    )
    assert [s["type"] for s in moved["sequence"]["steps"]] == ["CALL", "TASK", "EMAIL", "SMS"]
    assert moved["sequence"]["steps"][0] == {"type": "CALL", "delaySeconds": 60, "body": "Ring {{ first_name }}"}
    bad = await mutate(gql, token, "updateSequenceStep", "sequence { id }", id=sequence["steps"][0]["id"], subject="")
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", ["input", "subject"])]
    removed = await mutate(gql, token, "removeSequenceStep", "sequence { steps { position type } }", id=call)
    again = await mutate(gql, token, "removeSequenceStep", "sequence { id }", id=call)
    assert removed["sequence"]["steps"] == [
        {"position": 1, "type": "TASK"},
        {"position": 2, "type": "EMAIL"},
        {"position": 3, "type": "SMS"},
    ]
    assert [e["code"] for e in again["errors"]] == ["NOT_FOUND"]
    assert (
        await SequenceStep.filter(sequence_id=ids.decode_as("Sequence", sequence["id"])).count() == 4
    )  # kept, marked removed


async def test_enrolling_reports_each_refused_prospect_by_index(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    sequence = await make_sequence(gql, org)
    ada, bob, cy = await make_prospects(gql, org, "Ada", "Bob", "Cy")
    await mutate(gql, org.tokens[Role.MANAGER], "optOutProspect", "prospect { id }", id=bob, channel="SMS")
    await mutate(gql, org.tokens[Role.MANAGER], "markDoNotContact", "prospect { id }", id=cy, doNotContact=True)
    first = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "enrollProspects",
        ENROLLMENTS,
        sequenceId=sequence["id"],
        prospectIds=[ada, bob, ids.encode("Prospect", 999), cy, ada],
    )
    assert [(e["code"], e["field"]) for e in first["errors"]] == [
        ("DO_NOT_CONTACT", ["input", "prospectIds", "1"]),
        ("NOT_FOUND", ["input", "prospectIds", "2"]),
        ("DO_NOT_CONTACT", ["input", "prospectIds", "3"]),
        ("ALREADY_ENROLLED", ["input", "prospectIds", "4"]),
    ]
    [enrollment] = first["enrollments"]
    now = clock.now().isoformat()
    assert enrollment | {"id": None} == {
        "id": None,
        "stage": "STARTED",
        "finished": False,
        "currentStep": {"position": 1},
        "nextStepAt": now,
        "lastStepAt": None,
        "enrolledAt": now,
        "finishedAt": None,
        "prospect": {"firstName": "Ada"},
    }
    listed = await gql(
        org.tokens[Role.AGENT],
        "query($id: ID!) { node(id: $id) { ... on Prospect { enrollments { totalCount edges { node { stage sequence { name } history { edges { node { from to cause reason actor { name } } } } } } } } } }",
        id=ada,
    )
    node = listed["data"]["node"]["enrollments"]["edges"][0]["node"]
    assert node["sequence"] == {"name": "Outreach"}
    assert [e["node"] for e in node["history"]["edges"]] == [
        {"from": None, "to": "STARTED", "cause": "USER", "reason": "enrolled", "actor": {"name": "Agent"}}
    ]


async def test_enrolling_100_prospects_costs_the_statements_of_enrolling_1(
    gql: GraphQL, org: Org, clock: FrozenClock, sql_queries: QueryCounter
) -> None:
    """A batch is read, checked and written in a few statements whatever its size;
    an agent cannot enroll a prospect another user owns (NOT_FOUND, nothing written)."""
    await populate(org, clock)
    sequence = await make_sequence(gql, org)
    rows = [{"firstName": f"P{i}", "email": f"p{i}@client.example"} for i in range(101)]
    made = await mutate(gql, org.tokens[Role.MANAGER], "createProspects", "prospects { id }", prospects=rows)
    first, *rest = [p["id"] for p in made["prospects"]]
    owned = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "createProspects",
        "prospects { id }",
        prospects=[{"firstName": "Mine", "email": "mine@client.example", "ownerId": org.user_gid(Role.MANAGER)}],
    )
    [mine] = [p["id"] for p in owned["prospects"]]
    await gql(org.tokens[Role.AGENT], "{ viewer { id } }")  # the token's lastUsedAt is written once
    enrolled_before = await StageChange.filter(reason="enrolled").count()  # populate's

    async def enroll(prospect_ids: list[str]) -> tuple[dict[str, Any], int]:
        sql_queries.count = 0
        payload = await mutate(
            gql,
            org.tokens[Role.AGENT],
            "enrollProspects",
            ENROLLMENTS,
            sequenceId=sequence["id"],
            prospectIds=prospect_ids,
        )
        return payload, sql_queries.count

    one, one_cost = await enroll([first])
    hundred, hundred_cost = await enroll([*rest, mine])
    assert len(one["enrollments"]) == 1 and len(hundred["enrollments"]) == 100
    assert [(e["code"], e["field"]) for e in hundred["errors"]] == [("NOT_FOUND", ["input", "prospectIds", "100"])]
    assert {e["stage"] for e in hundred["enrollments"]} == {"STARTED"}
    assert hundred_cost == one_cost
    assert await Enrollment.filter(prospect_id=ids.decode_as("Prospect", mine)).count() == 0
    assert await StageChange.filter(reason="enrolled").count() == enrolled_before + 101


async def test_an_inactive_sequence_holds_enrollments_until_it_is_activated(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    await populate(org, clock)
    sequence = await make_sequence(gql, org, active=False)
    ada, bob = await make_prospects(gql, org, "Ada", "Bob")
    held = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "enrollProspects",
        "enrollments { stage nextStepAt }",
        sequenceId=sequence["id"],
        prospectIds=[ada],
    )
    assert held["enrollments"] == [{"stage": "NOT_STARTED", "nextStepAt": None}]
    clock.advance(10)
    activated = await mutate(
        gql, org.tokens[Role.MANAGER], "setSequenceActive", "sequence { active }", id=sequence["id"], active=True
    )
    assert activated == {"errors": [], "sequence": {"active": True}}
    waiting = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "enrollProspects",
        "enrollments { id stage }",
        sequenceId=sequence["id"],
        prospectIds=[bob],
        activate=False,
    )
    assert waiting["enrollments"][0]["stage"] == "NOT_STARTED"
    started = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "activateEnrollments",
        "enrollments { stage nextStepAt }",
        ids=[waiting["enrollments"][0]["id"]],
    )
    assert started["enrollments"] == [{"stage": "STARTED", "nextStepAt": clock.now().isoformat()}]
    body = await gql(
        org.tokens[Role.MANAGER],
        "query($s: ID!) { enrollments(filter: {stages: [STARTED], sequenceIds: [$s]}) { totalCount } }",
        s=sequence["id"],
    )
    assert body["data"]["enrollments"]["totalCount"] == 2
    only_active = await mutate(
        gql, org.tokens[Role.AGENT], "setSequenceActive", "sequence { id }", id=sequence["id"], active=False
    )
    assert [e["code"] for e in only_active["errors"]] == ["FORBIDDEN"]


async def test_pause_resume_jump_finish_and_remove(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    token = org.tokens[Role.AGENT]
    sequence = await make_sequence(
        gql,
        org,
        steps=[
            {"type": "SMS", "delaySeconds": 3600, "body": "one"},
            {"type": "SMS", "delaySeconds": 60, "body": "two"},
        ],
    )
    ada, bob = await make_prospects(gql, org, "Ada", "Bob")
    enrolled = await mutate(
        gql, token, "enrollProspects", "enrollments { id }", sequenceId=sequence["id"], prospectIds=[ada, bob]
    )
    a, b = (e["id"] for e in enrolled["enrollments"])
    due = clock.now() + timedelta(hours=1)

    paused = await mutate(gql, token, "pauseEnrollments", "enrollments { stage nextStepAt }", ids=[a, b])
    assert paused["enrollments"] == [{"stage": "PAUSED", "nextStepAt": None}] * 2
    twice = await mutate(gql, token, "pauseEnrollments", "enrollments { id }", ids=[a])
    assert [(e["code"], e["field"]) for e in twice["errors"]] == [("INVALID_TRANSITION", ["input", "ids", "0"])]

    clock.advance(7200)  # the paused step is overdue now
    resumed = await mutate(gql, token, "resumeEnrollments", "enrollments { stage nextStepAt }", ids=[a])
    assert resumed["enrollments"] == [{"stage": "STARTED", "nextStepAt": clock.now().isoformat()}]
    assert due < clock.now()

    jumped = await mutate(
        gql, token, "jumpEnrollments", "enrollments { stage currentStep { position } nextStepAt }", ids=[b], position=2
    )
    assert jumped["enrollments"] == [
        {"stage": "STARTED", "currentStep": {"position": 2}, "nextStepAt": clock.now().isoformat()}
    ]
    out_of_range = await mutate(gql, token, "jumpEnrollments", "enrollments { id }", ids=[b], position=3)
    assert [(e["code"], e["field"]) for e in out_of_range["errors"]] == [("INVALID_INPUT", ["input", "position"])]

    not_an_outcome = await mutate(gql, token, "finishEnrollments", "enrollments { id }", ids=[a], outcome="REMOVED")
    assert [e["code"] for e in not_an_outcome["errors"]] == ["INVALID_TRANSITION"]
    replied = await mutate(
        gql,
        token,
        "finishEnrollments",
        "enrollments { stage finished finishedAt currentStep { id } }",
        ids=[a],
        outcome="REPLIED",
    )
    assert replied["enrollments"] == [
        {"stage": "REPLIED", "finished": True, "finishedAt": clock.now().isoformat(), "currentStep": None}
    ]
    success = await mutate(gql, token, "finishEnrollments", "enrollments { stage }", ids=[a], outcome="SUCCESS")
    assert success["enrollments"] == [{"stage": "SUCCESS"}]
    removed = await mutate(gql, token, "removeEnrollments", "enrollments { stage }", ids=[b, a])
    assert removed["enrollments"] == [{"stage": "REMOVED"}]
    assert [(e["code"], e["field"]) for e in removed["errors"]] == [("INVALID_TRANSITION", ["input", "ids", "1"])]

    again = await mutate(
        gql, token, "enrollProspects", "enrollments { stage }", sequenceId=sequence["id"], prospectIds=[ada, bob]
    )
    assert again["errors"] == [] and len(again["enrollments"]) == 2  # finished enrollments do not block a new one
    history = await gql(
        token,
        "query($id: ID!) { node(id: $id) { ... on Enrollment { history { edges { node { from to reason } } } } } }",
        id=a,
    )
    assert [
        (e["node"]["from"], e["node"]["to"], e["node"]["reason"]) for e in history["data"]["node"]["history"]["edges"]
    ] == [
        (None, "STARTED", "enrolled"),
        ("STARTED", "PAUSED", "paused"),
        ("PAUSED", "STARTED", "resumed"),
        ("STARTED", "REPLIED", "manual"),
        ("REPLIED", "SUCCESS", "manual"),
    ]


async def test_removing_the_step_an_enrollment_waits_for_moves_it_on(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    await populate(org, clock)
    sequence = await make_sequence(gql, org)
    [ada] = await make_prospects(gql, org, "Ada")
    await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "enrollProspects",
        "enrollments { id }",
        sequenceId=sequence["id"],
        prospectIds=[ada],
    )
    await mutate(gql, org.tokens[Role.MANAGER], "removeSequenceStep", "sequence { id }", id=sequence["steps"][0]["id"])
    enrollment = await Enrollment.get(prospect_id=ids.decode_as("Prospect", ada))
    assert enrollment.current_step_id == ids.decode_as("SequenceStep", sequence["steps"][1]["id"])
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert prospect.first_name == "Ada"


async def test_entering_a_status_with_an_enrollment_outcome_finishes_enrollments(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    sold = ids.encode("Status", (await Status.get(organization_id=org.id, name="Sold")).id)
    updated = await mutate(
        gql, token, "updateStatus", "status { enrollmentOutcome }", id=sold, enrollmentOutcome="SUCCESS"
    )
    bad = await mutate(gql, token, "updateStatus", "status { id }", id=sold, enrollmentOutcome="APPROACHING")
    assert updated["status"] == {"enrollmentOutcome": "SUCCESS"}
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", ["input", "enrollmentOutcome"])]

    await mutate(gql, token, "setProspectStatus", "prospect { id }", id=own["Prospect"], statusId=sold)

    enrollment = await Enrollment.get(id=ids.decode_as("Enrollment", own["Enrollment"]))
    assert (enrollment.stage, enrollment.finished_at) == ("SUCCESS", clock.now())
    change = await StageChange.filter(enrollment_id=enrollment.id).order_by("-id").first()
    assert change is not None and (change.cause, change.reason) == ("USER", "status_outcome")
    cleared = await mutate(gql, token, "updateStatus", "status { enrollmentOutcome }", id=sold, enrollmentOutcome=None)
    assert cleared["status"] == {"enrollmentOutcome": None}


async def test_a_paused_or_started_outcome_pauses_or_sets_going_the_enrollments(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    prospect, enrollment_id = own["Prospect"], ids.decode_as("Enrollment", own["Enrollment"])
    workflow = own["Workflow"]
    statuses = {}
    for name, outcome in (("Hold", "PAUSED"), ("Go", "STARTED")):
        made = await mutate(
            gql,
            token,
            "createStatus",
            "status { id enrollmentOutcome }",
            workflowId=workflow,
            name=name,
            systemStatus="ATTEMPTING_CONTACT",
            enrollmentOutcome=outcome,
        )
        assert made["status"]["enrollmentOutcome"] == outcome
        statuses[name] = made["status"]["id"]

    async def choose(name: str) -> str:
        await mutate(gql, token, "setProspectStatus", "prospect { id }", id=prospect, statusId=statuses[name])
        enrollment = await Enrollment.get(id=enrollment_id)
        return str(enrollment.stage)

    due = (await Enrollment.get(id=enrollment_id)).due_at
    assert await choose("Hold") == "PAUSED"
    clock.advance(60)
    assert await choose("Go") == "STARTED"
    assert (await Enrollment.get(id=enrollment_id)).due_at == due  # as resumeEnrollments leaves it
    reasons = await StageChange.filter(enrollment_id=enrollment_id, reason="status_outcome").values_list(
        "to_stage", "cause"
    )
    assert reasons == [("PAUSED", "USER"), ("STARTED", "USER")]

    # An inactive sequence sends nothing: Go does not set its enrollment going.
    assert await choose("Hold") == "PAUSED"
    sequence = own["Sequence"]
    await mutate(gql, token, "setSequenceActive", "sequence { id }", id=sequence, active=False)
    assert await choose("Go") == "PAUSED"
    await mutate(gql, token, "setSequenceActive", "sequence { id }", id=sequence, active=True)
    assert await choose("Hold") == "PAUSED"
    assert await choose("Go") == "STARTED"


async def test_do_not_contact_and_opt_out_finish_enrollments_as_opted_out(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    sms_only = await make_sequence(gql, org, steps=[{"type": "SMS", "delaySeconds": 0, "body": "hi"}])
    email_only = await make_sequence(
        gql, org, steps=[{"type": "EMAIL", "delaySeconds": 0, "subject": "s", "body": "b"}]
    )
    ada, bob = await make_prospects(gql, org, "Ada", "Bob")
    for sequence in (sms_only, email_only):
        await mutate(
            gql, token, "enrollProspects", "enrollments { id }", sequenceId=sequence["id"], prospectIds=[ada, bob]
        )

    await mutate(gql, token, "optOutProspect", "prospect { id }", id=ada, channel="SMS")
    await mutate(gql, token, "markDoNotContact", "prospect { id }", id=bob, doNotContact=True)

    stages = {
        (e.prospect_id, e.sequence_id): (e.stage, e.finished_at is not None)
        for e in await Enrollment.filter(prospect_id__in=[ids.decode_as("Prospect", p) for p in (ada, bob)])
    }
    a, b = ids.decode_as("Prospect", ada), ids.decode_as("Prospect", bob)
    sms, email = ids.decode_as("Sequence", sms_only["id"]), ids.decode_as("Sequence", email_only["id"])
    assert stages == {
        (a, sms): ("OPTED_OUT", True),
        (a, email): ("STARTED", False),
        (b, sms): ("OPTED_OUT", True),
        (b, email): ("OPTED_OUT", True),
    }
    reasons = await StageChange.filter(to_stage="OPTED_OUT").order_by("id").values_list("reason", flat=True)
    assert list(reasons) == ["opted_out", "do_not_contact", "do_not_contact"]


async def test_actions_enroll_pause_resume_and_finish_enrollments(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    sequence = await make_sequence(gql, org, steps=[{"type": "EMAIL", "delaySeconds": 60, "subject": "s", "body": "b"}])
    [ada] = await make_prospects(gql, org, "Ada")

    async def action(name: str, operations: list[dict[str, Any]]) -> str:
        created = await mutate(
            gql,
            token,
            "createAction",
            "action { id operations { type sequence { name } outcome } }",
            name=name,
            operations=operations,
        )
        assert created["errors"] == [], created
        return str(created["action"]["id"])

    enroll = await action("Start outreach", [{"type": "ENROLL_IN_SEQUENCE", "sequenceId": sequence["id"]}])
    hold = await action("Hold", [{"type": "PAUSE_ENROLLMENTS"}])
    go = await action("Go on", [{"type": "RESUME_ENROLLMENTS"}])
    won = await action("Won", [{"type": "FINISH_ENROLLMENTS", "outcome": "SUCCESS"}])

    async def log(action_id: str) -> list[str]:
        await mutate(
            gql, token, "logActivity", "activity { id }", prospectId=ada, interaction="CALL", actionId=action_id
        )
        return [e.stage for e in await Enrollment.filter(prospect_id=ids.decode_as("Prospect", ada)).order_by("id")]

    assert await log(enroll) == ["STARTED"]
    assert await log(enroll) == ["STARTED"]  # already enrolled: left as it is
    assert await log(hold) == ["PAUSED"]
    assert await log(go) == ["STARTED"]
    assert await log(won) == ["SUCCESS"]
    assert await log(go) == ["SUCCESS"]  # nothing unfinished to resume

    for operations, field in [
        ([{"type": "ENROLL_IN_SEQUENCE"}], "sequenceId"),
        ([{"type": "FINISH_ENROLLMENTS", "outcome": "PAUSED"}], "outcome"),
        ([{"type": "PAUSE_ENROLLMENTS", "outcome": "SUCCESS"}], "outcome"),
        ([{"type": "ENROLL_IN_SEQUENCE", "sequenceId": ids.encode("Sequence", 999)}], "sequenceId"),
    ]:
        bad = await mutate(gql, token, "createAction", "action { id }", name="bad", operations=operations)
        assert [e["field"] for e in bad["errors"]] == [["input", "operations", "0", field]], operations
