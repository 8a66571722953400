"""R3: prospects, activities, status history and tasks through the API."""

from __future__ import annotations

from datetime import timedelta

from app import ids
from app.accounts.models import Role, User
from app.clock import FrozenClock
from app.prospects.models import Activity, Prospect, StatusChange, Task
from app.workflows.models import Action, Status
from tests.conftest import GraphQL, Org, mutate
from tests.factories import populate

PROSPECT = (
    "prospect { id firstName lastName email phone company title timeZone customFields status { name } "
    "systemStatus owner { name } assignedAt doNotContact optedOutChannels contactAttempts lastContactAttemptAt "
    "contactMadeAt createdAt updatedAt }"
)


async def test_create_prospect_normalizes_its_fields(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    payload = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "createProspect",
        PROSPECT,
        prospect={
            "firstName": " Ada ",
            "lastName": "Lovelace",
            "email": "Ada@Analytical.EXAMPLE",
            "phone": "(202) 555-0143",
            "company": "Engines",
            "title": "CTO",
            "timeZone": "Europe/London",
            "customFields": {"source": "fair"},
            "ownerId": org.user_gid(Role.AGENT),
        },
    )
    now = clock.now().isoformat()
    assert payload["errors"] == []
    assert {k: v for k, v in payload["prospect"].items() if k != "id"} == {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@analytical.example",
        "phone": "+12025550143",
        "company": "Engines",
        "title": "CTO",
        "timeZone": "Europe/London",
        "customFields": {"source": "fair"},
        "status": {"name": "New Lead"},
        "systemStatus": "NEW",
        "owner": {"name": "Agent"},
        "assignedAt": now,
        "doNotContact": False,
        "optedOutChannels": [],
        "contactAttempts": 0,
        "lastContactAttemptAt": None,
        "contactMadeAt": None,
        "createdAt": now,
        "updatedAt": now,
    }
    prospect = await Prospect.get(id=ids.decode_as("Prospect", payload["prospect"]["id"]))
    history = await StatusChange.filter(prospect_id=prospect.id)
    assert [(h.from_status_id, h.to_status_id, h.cause) for h in history] == [(None, prospect.status_id, "USER")]


async def test_create_prospect_reports_the_faulty_field(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    cases = [
        ({"email": "ada@"}, "INVALID_INPUT", "email"),
        ({"phone": "555"}, "INVALID_INPUT", "phone"),
        ({"timeZone": "EST5EDT-ish"}, "INVALID_INPUT", "timeZone"),
        ({"customFields": [1, 2]}, "INVALID_INPUT", "customFields"),
        ({"firstName": "x" * 201}, "INVALID_INPUT", "firstName"),
        ({"statusId": ids.encode("Status", 999)}, "NOT_FOUND", "statusId"),
        ({"ownerId": ids.encode("User", 999)}, "NOT_FOUND", "ownerId"),
    ]
    before = await Prospect.all().count()
    for values, code, field in cases:
        payload = await mutate(gql, org.tokens[Role.MANAGER], "createProspect", "prospect { id }", prospect=values)
        assert payload["prospect"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, ["input", "prospect", field])], values
    assert await Prospect.all().count() == before


async def test_create_prospects_creates_the_valid_and_reports_the_rest_by_index(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    await populate(org, clock)
    rows = [{"firstName": f"P{i}", "email": f"p{i}@client.example"} for i in range(6)]
    rows[1]["email"] = "broken"
    rows[4]["phone"] = "12"
    payload = await mutate(gql, org.tokens[Role.MANAGER], "createProspects", "prospects { firstName }", prospects=rows)
    assert [p["firstName"] for p in payload["prospects"]] == ["P0", "P2", "P3", "P5"]
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("INVALID_INPUT", ["input", "prospects", "1", "email"]),
        ("INVALID_INPUT", ["input", "prospects", "4", "phone"]),
    ]
    assert await Prospect.filter(first_name__startswith="P").count() == 4 + 1  # and Pat from populate
    too_many = await mutate(
        gql, org.tokens[Role.MANAGER], "createProspects", "prospects { id }", prospects=[{"firstName": "x"}] * 1001
    )
    assert too_many == {
        "prospects": [],
        "errors": [
            {"code": "INVALID_INPUT", "message": "At most 1000 prospects per call.", "field": ["input", "prospects"]}
        ],
    }


async def test_update_prospect_changes_and_clears_fields(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    clock.advance(60)
    payload = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "updateProspect",
        "prospect { firstName email phone company updatedAt }",
        id=own["Prospect"],
        email=None,
        phone="+44 20 7946 0958",
        company="Globex",
    )
    assert payload == {
        "errors": [],
        "prospect": {
            "firstName": "Pat",
            "email": None,
            "phone": "+442079460958",
            "company": "Globex",
            "updatedAt": clock.now().isoformat(),
        },
    }
    searched = await gql(org.tokens[Role.AGENT], '{ prospects(filter: {search: "GLOBEX"}) { totalCount } }')
    assert searched["data"]["prospects"]["totalCount"] == 1
    bad = await mutate(
        gql, org.tokens[Role.AGENT], "updateProspect", "prospect { id }", id=own["Prospect"], timeZone="Nowhere"
    )
    missing = await mutate(
        gql, org.tokens[Role.AGENT], "updateProspect", "prospect { id }", id=ids.encode("Prospect", 999)
    )
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", ["input", "timeZone"])]
    assert [(e["code"], e["field"]) for e in missing["errors"]] == [("NOT_FOUND", ["input", "id"])]


async def test_set_prospect_status_records_history(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    sold = await Status.get(organization_id=org.id, name="Sold")
    payload = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "setProspectStatus",
        "prospect { status { name } systemStatus }",
        id=own["Prospect"],
        statusId=ids.encode("Status", sold.id),
        note="signed",
    )
    assert payload == {"errors": [], "prospect": {"status": {"name": "Sold"}, "systemStatus": "WON"}}
    history = await gql(
        org.tokens[Role.AGENT],
        """query($id: ID!) { node(id: $id) { ... on Prospect {
        statusHistory { totalCount edges { node { from { name } to { name } cause actor { name } note } } } } } }""",
        id=own["Prospect"],
    )
    edges = history["data"]["node"]["statusHistory"]["edges"]
    assert history["data"]["node"]["statusHistory"]["totalCount"] == 3
    assert [e["node"] for e in edges] == [
        {"from": None, "to": {"name": "New Lead"}, "cause": "USER", "actor": {"name": "Admin"}, "note": None},
        {
            "from": {"name": "New Lead"},
            "to": {"name": "Attempting Contact"},
            "cause": "ACTION",
            "actor": {"name": "Admin"},
            "note": None,
        },
        {
            "from": {"name": "Attempting Contact"},
            "to": {"name": "Sold"},
            "cause": "USER",
            "actor": {"name": "Agent"},
            "note": "signed",
        },
    ]
    missing = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "setProspectStatus",
        "prospect { id }",
        id=own["Prospect"],
        statusId=ids.encode("Status", 999),
    )
    assert [(e["code"], e["field"]) for e in missing["errors"]] == [("NOT_FOUND", ["input", "statusId"])]


async def test_log_activity_runs_the_actions_operations(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    appointment = await Action.get(organization_id=org.id, name="Appointment Set")
    payload = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "logActivity",
        "activity { interaction note action { name } actor { name } at prospect { id } } "
        "prospect { status { name } contactMadeAt contactAttempts tasks { totalCount edges { node { kind dueAt assignee { name } } } } }",
        prospectId=own["Prospect"],
        interaction="IN_PERSON",
        actionId=ids.encode("Action", appointment.id),
        note="Tuesday 3pm",
    )
    now = clock.now()
    assert payload["errors"] == []
    assert payload["activity"] == {
        "interaction": "IN_PERSON",
        "note": "Tuesday 3pm",
        "action": {"name": "Appointment Set"},
        "actor": {"name": "Agent"},
        "at": now.isoformat(),
        "prospect": {"id": own["Prospect"]},
    }
    prospect = payload["prospect"]
    assert prospect["status"] == {"name": "Appointment Set"}
    assert prospect["contactMadeAt"] == now.isoformat() and prospect["contactAttempts"] == 1
    assert prospect["tasks"]["totalCount"] == 2
    assert prospect["tasks"]["edges"][1]["node"] == {
        "kind": "CALLBACK",
        "dueAt": (now + timedelta(days=1)).isoformat(),
        "assignee": {"name": "Agent"},
    }


async def test_log_activity_with_an_action_not_available_writes_nothing(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    own = await populate(org, clock)
    sold = await Action.get(organization_id=org.id, name="Sold")  # not available in Attempting Contact
    no_answer = await Action.get(organization_id=org.id, name="No Answer")  # CALL only
    before = (await Activity.all().count(), await StatusChange.all().count())
    wrong_status = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "logActivity",
        "activity { id }",
        prospectId=own["Prospect"],
        interaction="CALL",
        actionId=ids.encode("Action", sold.id),
    )
    wrong_interaction = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "logActivity",
        "activity { id }",
        prospectId=own["Prospect"],
        interaction="EMAIL",
        actionId=ids.encode("Action", no_answer.id),
    )
    assert [(e["code"], e["field"]) for e in wrong_status["errors"]] == [
        ("ACTION_NOT_AVAILABLE", ["input", "actionId"])
    ]
    assert [(e["code"], e["field"]) for e in wrong_interaction["errors"]] == [
        ("ACTION_NOT_AVAILABLE", ["input", "interaction"])
    ]
    assert (await Activity.all().count(), await StatusChange.all().count()) == before
    plain = await mutate(
        gql,
        org.tokens[Role.AGENT],
        "logActivity",
        "activity { action { id } note }",
        prospectId=own["Prospect"],
        interaction="OTHER",
        note="just a note",
    )
    assert plain == {"errors": [], "activity": {"action": None, "note": "just a note"}}


async def test_an_operation_failing_mid_list_rolls_back_the_ones_before(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    sold = await Status.get(organization_id=org.id, name="Sold")
    created = await mutate(
        gql,
        token,
        "createAction",
        "action { id }",
        name="Close and hand over",
        operations=[
            {"type": "MARK_CONTACT_MADE"},
            {"type": "SET_STATUS", "statusId": ids.encode("Status", sold.id)},
            {"type": "ASSIGN"},  # round robin: fails while no agent is active
        ],
    )
    await User.filter(role=Role.AGENT).update(active=False)
    before = await Prospect.get(id=ids.decode_as("Prospect", own["Prospect"]))
    counts = (await Activity.all().count(), await StatusChange.all().count())
    payload = await mutate(
        gql,
        token,
        "logActivity",
        "activity { id } prospect { id }",
        prospectId=own["Prospect"],
        interaction="CALL",
        actionId=created["action"]["id"],
    )
    assert payload["activity"] is None and [e["code"] for e in payload["errors"]] == ["CONFLICT"]
    after = await Prospect.get(id=before.id)
    assert (after.status_id, after.contact_made_at, after.owner_id) == (before.status_id, None, before.owner_id)
    assert (await Activity.all().count(), await StatusChange.all().count()) == counts


async def test_do_not_contact_and_opt_out(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.AGENT]
    marked = await mutate(
        gql, token, "markDoNotContact", "prospect { doNotContact }", id=own["Prospect"], doNotContact=True
    )
    opted = await mutate(
        gql, token, "optOutProspect", "prospect { optedOutChannels }", id=own["Prospect"], channel="SMS"
    )
    twice = await mutate(
        gql, token, "optOutProspect", "prospect { optedOutChannels }", id=own["Prospect"], channel="SMS"
    )
    email = await mutate(
        gql, token, "optOutProspect", "prospect { optedOutChannels }", id=own["Prospect"], channel="EMAIL"
    )
    assert marked == {"errors": [], "prospect": {"doNotContact": True}}
    assert opted["prospect"] == twice["prospect"] == {"optedOutChannels": ["SMS"]}
    assert email["prospect"] == {"optedOutChannels": ["EMAIL", "SMS"]}
    filtered = await gql(token, "{ prospects(filter: {doNotContact: true}) { totalCount } }")
    assert filtered["data"]["prospects"]["totalCount"] == 1
    unmarked = await mutate(
        gql, token, "markDoNotContact", "prospect { doNotContact }", id=own["Prospect"], doNotContact=False
    )
    assert unmarked["prospect"] == {"doNotContact": False}
    for name, extra in (("markDoNotContact", {"doNotContact": True}), ("optOutProspect", {"channel": "SMS"})):
        missing = await mutate(gql, token, name, "prospect { id }", id=ids.encode("Prospect", 999), **extra)
        assert [e["code"] for e in missing["errors"]] == ["NOT_FOUND"]


async def test_delete_prospect_erases_its_personal_data(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    pk = ids.decode_as("Prospect", own["Prospect"])
    deleted = await mutate(gql, org.tokens[Role.MANAGER], "deleteProspect", "deletedId", id=own["Prospect"])
    again = await mutate(gql, org.tokens[Role.MANAGER], "deleteProspect", "deletedId", id=own["Prospect"])
    assert deleted == {"deletedId": own["Prospect"], "errors": []}
    assert [e["code"] for e in again["errors"]] == ["NOT_FOUND"]
    for model in (Prospect, Activity, StatusChange, Task):
        column = "id" if model is Prospect else "prospect_id"
        assert not await model.filter(**{column: pk}).exists(), model.__name__


async def test_tasks_query_filters_and_complete_task(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.AGENT]
    due = (clock.now() + timedelta(days=1)).isoformat()
    listed = await gql(
        token,
        "{ tasks { totalCount edges { node { id kind dueAt completedAt assignee { name } prospect { firstName } } } } }",
    )
    assert listed["data"]["tasks"] == {
        "totalCount": 1,
        "edges": [
            {
                "node": {
                    "id": own["Task"],
                    "kind": "CALLBACK",
                    "dueAt": due,
                    "completedAt": None,
                    "assignee": {"name": "Agent"},
                    "prospect": {"firstName": "Pat"},
                }
            }
        ],
    }
    clock.advance(30)
    done = await mutate(gql, token, "completeTask", "task { completedAt note }", id=own["Task"], note="called back")
    again = await mutate(gql, token, "completeTask", "task { completedAt note }", id=own["Task"])
    assert done == {"errors": [], "task": {"completedAt": clock.now().isoformat(), "note": "called back"}}
    assert again["task"] == done["task"]
    for filter_, count in [
        ("{open: true}", 0),
        ("{open: false}", 1),
        (f'{{dueBefore: "{due}"}}', 0),
        (f'{{assigneeIds: ["{org.user_gid(Role.AGENT)}"]}}', 1),
    ]:
        body = await gql(token, f"{{ tasks(filter: {filter_}) {{ totalCount }} }}")
        assert body["data"]["tasks"]["totalCount"] == count, filter_
    missing = await mutate(gql, token, "completeTask", "task { id }", id=ids.encode("Task", 999))
    assert [(e["code"], e["field"]) for e in missing["errors"]] == [("NOT_FOUND", ["input", "id"])]


async def test_prospect_filters_and_pagination(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    await mutate(
        gql,
        token,
        "createProspects",
        "prospects { id }",
        prospects=[{"firstName": f"Lead {i}", "company": "Initech" if i % 2 else "Hooli"} for i in range(25)],
    )
    first = await gql(
        token,
        "{ prospects(first: 10) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { node { firstName } } } }",
    )
    page = first["data"]["prospects"]
    assert page["totalCount"] == 26 and page["pageInfo"]["hasNextPage"] is True and len(page["edges"]) == 10
    rest = await gql(
        token,
        "query($after: String) { prospects(first: 100, after: $after) { pageInfo { hasNextPage hasPreviousPage } edges { node { firstName } } } }",
        after=page["pageInfo"]["endCursor"],
    )
    assert len(rest["data"]["prospects"]["edges"]) == 16
    assert rest["data"]["prospects"]["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}
    too_big = await gql(token, "{ prospects(first: 101) { totalCount } }")
    assert too_big["errors"][0]["message"] == "`first` must be between 0 and 100."
    for filter_, count in [
        ('{search: "initech"}', 12),
        ('{search: "lead 1"}', 11),
        ("{unassigned: true}", 25),
        ("{unassigned: false}", 1),
        ("{systemStatuses: [NEW]}", 25),
        ("{systemStatuses: [ATTEMPTING_CONTACT]}", 1),
        ('{search: "%"}', 0),
    ]:
        body = await gql(token, f"{{ prospects(filter: {filter_}) {{ totalCount }} }}")
        assert body["data"]["prospects"]["totalCount"] == count, filter_


async def test_log_activity_callback_at_schedules_the_callback_at_the_time_asked_for(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    """Seeds 003/004: "the lead asked for a second phone call scheduled for a later
    time": the callback is due then, not after the action's fixed delay. A time
    with an offset is that instant; one without is UTC, as other DateTimes are."""
    own = await populate(org, clock)
    voicemail = await Action.get(organization_id=org.id, name="Left Voicemail")
    tasks = "prospect { tasks { edges { node { kind dueAt } } } }"
    for asked, due in [
        ("2026-01-08T15:30:00-05:00", "2026-01-08T20:30:00+00:00"),
        ("2026-01-09T10:00:00", "2026-01-09T10:00:00+00:00"),
        ((clock.now() - timedelta(minutes=1)).isoformat(), (clock.now() - timedelta(minutes=1)).isoformat()),
    ]:
        payload = await mutate(
            gql,
            org.tokens[Role.AGENT],
            "logActivity",
            tasks,
            prospectId=own["Prospect"],
            interaction="CALL",
            actionId=ids.encode("Action", voicemail.id),
            callbackAt=asked,
        )
        assert payload["errors"] == []
        assert payload["prospect"]["tasks"]["edges"][-1]["node"] == {"kind": "CALLBACK", "dueAt": due}


async def test_log_activity_refuses_a_callback_at_it_cannot_keep(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    voicemail = await Action.get(organization_id=org.id, name="Left Voicemail")
    no_answer = await Action.get(organization_id=org.id, name="No Answer")  # schedules no callback
    now = clock.now()
    before = (await Activity.all().count(), await Task.all().count(), await StatusChange.all().count())
    for action, asked, says in [
        (voicemail, now - timedelta(hours=1), "in the past"),
        (voicemail, now + timedelta(days=400), "at most a year ahead"),
        (no_answer, now + timedelta(days=1), "'No Answer' schedules none"),
        (None, now + timedelta(days=1), "no action is given"),
    ]:
        payload = await mutate(
            gql,
            org.tokens[Role.AGENT],
            "logActivity",
            "activity { id }",
            prospectId=own["Prospect"],
            interaction="CALL",
            actionId=ids.encode("Action", action.id) if action else None,
            callbackAt=asked.isoformat(),
        )
        [error] = payload["errors"]
        assert (error["code"], error["field"]) == ("INVALID_INPUT", ["input", "callbackAt"])
        assert says in error["message"] and "callbackAt" in error["message"]
    assert (await Activity.all().count(), await Task.all().count(), await StatusChange.all().count()) == before
