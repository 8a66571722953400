"""R2: workflows, statuses, categories, actions, rules and presets through the API."""

from __future__ import annotations

from app import ids
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.prospects.models import Prospect, StatusChange
from app.workflows.models import Action, ActionAvailability, AutomationRule, Status, Workflow
from tests.conftest import GraphQL, Org, QueryCounter, mutate
from tests.factories import populate

WORKFLOWS = "{ workflows { name position statuses { name position } } }"


async def names(gql: GraphQL, org: Org) -> list[tuple[str, list[str]]]:
    body = await gql(org.tokens[Role.MANAGER], WORKFLOWS)
    return [(w["name"], [s["name"] for s in w["statuses"]]) for w in body["data"]["workflows"]]


async def test_workflows_are_created_ordered_and_renamed(gql: GraphQL, org: Org) -> None:
    token = org.tokens[Role.MANAGER]
    first = await mutate(gql, token, "createWorkflow", "workflow { id name position }", name="Won")
    second = await mutate(gql, token, "createWorkflow", "workflow { id position }", name="New", position=0)
    moved = await mutate(
        gql,
        token,
        "updateWorkflow",
        "workflow { name position }",
        id=first["workflow"]["id"],
        name="Closed",
        position=5,
    )
    assert first["workflow"]["position"] == 0 and second["workflow"]["position"] == 0
    assert moved == {"errors": [], "workflow": {"name": "Closed", "position": 1}}
    assert await names(gql, org) == [("New", []), ("Closed", [])]
    bad = await mutate(gql, token, "createWorkflow", "workflow { id }", name="", position=-1)
    missing = await mutate(gql, token, "updateWorkflow", "workflow { id }", id=ids.encode("Workflow", 99), name="x")
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", ["input", "name"])]
    assert [(e["code"], e["field"]) for e in missing["errors"]] == [("NOT_FOUND", ["input", "id"])]
    assert await Workflow.filter(organization_id=org.id).count() == 2


async def test_statuses_validate_their_fields(gql: GraphQL, org: Org) -> None:
    token = org.tokens[Role.MANAGER]
    workflow = (await mutate(gql, token, "createWorkflow", "workflow { id }", name="W"))["workflow"]["id"]
    created = await mutate(
        gql,
        token,
        "createStatus",
        "status { name systemStatus pipelinePercent maxAssignmentSeconds position workflow { name } }",
        workflowId=workflow,
        name="Hot",
        systemStatus="IN_PROGRESS",
        pipelinePercent=60,
        maxAssignmentSeconds=3600,
    )
    assert created == {
        "errors": [],
        "status": {
            "name": "Hot",
            "systemStatus": "IN_PROGRESS",
            "pipelinePercent": 60,
            "maxAssignmentSeconds": 3600,
            "position": 0,
            "workflow": {"name": "W"},
        },
    }
    for values, field in [
        ({"pipelinePercent": 101}, "pipelinePercent"),
        ({"maxAssignmentSeconds": 0}, "maxAssignmentSeconds"),
        ({"name": ""}, "name"),
    ]:
        payload = await mutate(
            gql,
            token,
            "createStatus",
            "status { id }",
            **{"workflowId": workflow, "name": "X", "systemStatus": "NEW", **values},
        )
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", ["input", field])]
    status_id = ids.encode("Status", (await Status.get(name="Hot")).id)
    cleared = await mutate(
        gql,
        token,
        "updateStatus",
        "status { maxAssignmentSeconds systemStatus }",
        id=status_id,
        maxAssignmentSeconds=None,
        systemStatus="WON",
    )
    kept = await mutate(
        gql, token, "updateStatus", "status { maxAssignmentSeconds pipelinePercent }", id=status_id, pipelinePercent=100
    )
    assert cleared["status"] == {"maxAssignmentSeconds": None, "systemStatus": "WON"}
    assert kept["status"] == {"maxAssignmentSeconds": None, "pipelinePercent": 100}
    assert await Status.filter(organization_id=org.id).count() == 1


async def test_a_status_moves_between_workflows_and_positions_stay_dense(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    own = await populate(org, clock)
    final = await Status.get(organization_id=org.id, name="Final Contact")
    closed = await Workflow.get(organization_id=org.id, name="Closed")
    moved = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "updateStatus",
        "status { position workflow { name } }",
        id=ids.encode("Status", final.id),
        workflowId=ids.encode("Workflow", closed.id),
        position=0,
    )
    assert moved["status"] == {"position": 0, "workflow": {"name": "Closed"}}
    assert dict(await names(gql, org))["Closed"] == [
        "Final Contact",
        "Sold",
        "Not Interested",
        "Unreachable",
        "Do Not Contact",
    ]
    assert dict(await names(gql, org))["Attempting Contact"] == ["Attempting Contact"]
    assert own


async def test_deleting_a_status_that_holds_prospects_is_a_conflict_unless_they_move(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    sold = ids.encode("Status", (await Status.get(organization_id=org.id, name="Sold")).id)
    conflict = await mutate(gql, token, "deleteStatus", "deletedId", id=own["Status"])
    assert conflict["deletedId"] is None
    assert [e["code"] for e in conflict["errors"]] == ["CONFLICT"]
    assert await Status.filter(name="Attempting Contact", deleted_at=None).exists()

    referenced = await mutate(gql, token, "deleteStatus", "deletedId", id=own["Status"], moveToStatusId=sold)
    assert [e["code"] for e in referenced["errors"]] == ["CONFLICT"]  # actions move prospects there
    assert "No Answer" in referenced["errors"][0]["message"]

    unused = await Status.get(organization_id=org.id, name="Sold")
    new_lead = ids.encode("Status", (await Status.get(organization_id=org.id, name="New Lead")).id)
    await Action.filter(organization_id=org.id, name="Sold").delete()
    prospect = await Prospect.get(organization_id=org.id)
    await Prospect.filter(id=prospect.id).update(status_id=unused.id)
    deleted = await mutate(gql, token, "deleteStatus", "deletedId", id=sold, moveToStatusId=new_lead)
    assert deleted == {"deletedId": sold, "errors": []}
    await prospect.refresh_from_db()
    change = await StatusChange.filter(prospect_id=prospect.id).order_by("-id").first()
    assert prospect.status_id == ids.decode_as("Status", new_lead)
    assert change is not None and (change.from_status_id, change.to_status_id) == (unused.id, prospect.status_id)
    assert "Sold" not in dict(await names(gql, org))["Closed"]
    assert not await ActionAvailability.filter(status_id=unused.id).exists()
    history = await gql(
        token,
        "query($id: ID!) { node(id: $id) { ... on Prospect { statusHistory { edges { node { from { name } to { name } } } } } } }",
        id=own["Prospect"],
    )
    assert history["data"]["node"]["statusHistory"]["edges"][-1]["node"] == {
        "from": {"name": "Sold"},
        "to": {"name": "New Lead"},
    }


async def test_deleting_the_default_status_needs_a_replacement(gql: GraphQL, org: Org) -> None:
    token = org.tokens[Role.MANAGER]
    workflow = (await mutate(gql, token, "createWorkflow", "workflow { id }", name="W"))["workflow"]["id"]
    first = await mutate(gql, token, "createStatus", "status { id }", workflowId=workflow, name="A", systemStatus="NEW")
    second = await mutate(
        gql, token, "createStatus", "status { id }", workflowId=workflow, name="B", systemStatus="NEW"
    )
    conflict = await mutate(gql, token, "deleteStatus", "deletedId", id=first["status"]["id"])
    moved = await mutate(
        gql, token, "deleteStatus", "deletedId", id=first["status"]["id"], moveToStatusId=second["status"]["id"]
    )
    into_itself = await mutate(
        gql, token, "deleteStatus", "deletedId", id=second["status"]["id"], moveToStatusId=second["status"]["id"]
    )
    assert [e["code"] for e in conflict["errors"]] == ["CONFLICT"]
    assert moved["errors"] == []
    assert [e["code"] for e in into_itself["errors"]] == ["INVALID_INPUT"]
    org_row = await Organization.get(id=org.id)
    assert org_row.default_status_id == ids.decode_as("Status", second["status"]["id"])


async def test_deleting_a_workflow(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    attempting = ids.encode("Workflow", (await Workflow.get(organization_id=org.id, name="Attempting Contact")).id)
    new = ids.encode("Workflow", (await Workflow.get(organization_id=org.id, name="New")).id)
    conflict = await mutate(gql, token, "deleteWorkflow", "deletedId", id=attempting)
    assert [e["code"] for e in conflict["errors"]] == ["CONFLICT"]
    await Action.filter(organization_id=org.id).delete()
    await AutomationRule.filter(organization_id=org.id).delete()
    sold = ids.encode("Status", (await Status.get(organization_id=org.id, name="Sold")).id)
    deleted = await mutate(gql, token, "deleteWorkflow", "deletedId", id=attempting, moveToStatusId=sold)
    assert deleted == {"deletedId": attempting, "errors": []}
    assert [n for n, _ in await names(gql, org)] == ["New", "Contacted", "Closed"]
    prospect = await gql(
        token, "query($id: ID!) { node(id: $id) { ... on Prospect { status { name } } } }", id=own["Prospect"]
    )
    assert prospect["data"]["node"]["status"] == {"name": "Sold"}
    emptied = await mutate(gql, token, "deleteWorkflow", "deletedId", id=new, moveToStatusId=sold)
    assert emptied["errors"] == []  # New Lead was the default; it moves to Sold
    gone = await mutate(gql, token, "deleteWorkflow", "deletedId", id=new)
    assert [e["code"] for e in gone["errors"]] == ["NOT_FOUND"]


OPERATION_SELECTION = "action { name category { name } interactions availableIn { name } operations { type status { name } user { name } delaySeconds } }"


async def test_actions_validate_their_operations_when_saved(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    category = await mutate(gql, token, "createActionCategory", "actionCategory { id name }", name="Calls")
    created = await mutate(
        gql,
        token,
        "createAction",
        OPERATION_SELECTION,
        name="Hot lead",
        categoryId=category["actionCategory"]["id"],
        interactions=["CALL", "IN_PERSON"],
        availableInStatusIds=[own["Status"]],
        operations=[
            {"type": "MARK_CONTACT_MADE"},
            {"type": "SET_STATUS", "statusId": own["Status"]},
            {"type": "ASSIGN", "userId": own["User"]},
            {"type": "SCHEDULE_CALLBACK", "delaySeconds": 600},
        ],
    )
    assert created == {
        "errors": [],
        "action": {
            "name": "Hot lead",
            "category": {"name": "Calls"},
            "interactions": ["CALL", "IN_PERSON"],
            "availableIn": [{"name": "Attempting Contact"}],
            "operations": [
                {"type": "MARK_CONTACT_MADE", "status": None, "user": None, "delaySeconds": None},
                {"type": "SET_STATUS", "status": {"name": "Attempting Contact"}, "user": None, "delaySeconds": None},
                {"type": "ASSIGN", "status": None, "user": {"name": "Agent"}, "delaySeconds": None},
                {"type": "SCHEDULE_CALLBACK", "status": None, "user": None, "delaySeconds": 600},
            ],
        },
    }
    bad_operations = [
        ([{"type": "SET_STATUS"}], "INVALID_INPUT", ["operations", "0", "statusId"]),
        ([{"type": "SCHEDULE_CALLBACK"}], "INVALID_INPUT", ["operations", "0", "delaySeconds"]),
        ([{"type": "UNASSIGN", "userId": own["User"]}], "INVALID_INPUT", ["operations", "0", "userId"]),
        ([{"type": "SCHEDULE_CALLBACK", "delaySeconds": -1}], "INVALID_INPUT", ["operations", "0", "delaySeconds"]),
        (
            [{"type": "MARK_CONTACT_MADE"}, {"type": "SET_STATUS", "statusId": ids.encode("Status", 999)}],
            "NOT_FOUND",
            ["operations", "1", "statusId"],
        ),
    ]
    before = await Action.filter(organization_id=org.id).count()
    for operations, code, field in bad_operations:
        payload = await mutate(gql, token, "createAction", "action { id }", name="Bad", operations=operations)
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, ["input", *field])]
    assert await Action.filter(organization_id=org.id).count() == before

    action_id = ids.encode("Action", (await Action.get(name="Hot lead")).id)
    updated = await mutate(
        gql,
        token,
        "updateAction",
        "action { name category { name } availableIn { name } operations { type } }",
        id=action_id,
        name="Warm lead",
        categoryId=None,
        availableInStatusIds=[],
        operations=[{"type": "UNASSIGN"}],
    )
    assert updated["action"] == {
        "name": "Warm lead",
        "category": None,
        "availableIn": [],
        "operations": [{"type": "UNASSIGN"}],
    }
    deleted = await mutate(gql, token, "deleteAction", "deletedId", id=action_id)
    again = await mutate(gql, token, "deleteAction", "deletedId", id=action_id)
    assert deleted == {"deletedId": action_id, "errors": []}
    assert [e["code"] for e in again["errors"]] == ["NOT_FOUND"]


async def test_status_actions_are_the_ones_available_there(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    body = await gql(org.tokens[Role.AGENT], "{ workflows { statuses { name actions { name } } } }")
    by_status = {s["name"]: [a["name"] for a in s["actions"]] for w in body["data"]["workflows"] for s in w["statuses"]}
    assert by_status["Final Contact"] == [
        "No Answer",
        "Left Message",
        "Left Voicemail",
        "Final Attempt, No Answer",
        "Callback Requested",
        "Appointment Set",
        "Not Interested",
        "Do Not Contact",
    ]
    assert by_status["Sold"] == ["Do Not Contact"]


async def test_automation_rules_crud_and_errors(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    selection = "automationRule { name enabled event status { name } operations { type } }"
    created = await mutate(
        gql,
        token,
        "createAutomationRule",
        selection,
        name="Entered",
        event="STATUS_ENTERED",
        statusId=own["Status"],
        operations=[{"type": "MARK_CONTACT_ATTEMPTED"}],
    )
    assert created["automationRule"] == {
        "name": "Entered",
        "enabled": True,
        "event": "STATUS_ENTERED",
        "status": {"name": "Attempting Contact"},
        "operations": [{"type": "MARK_CONTACT_ATTEMPTED"}],
    }
    no_status = await mutate(
        gql, token, "createAutomationRule", selection, name="x", event="STATUS_ENTERED", operations=[]
    )
    extra_status = await mutate(
        gql,
        token,
        "createAutomationRule",
        selection,
        name="x",
        event="PROSPECT_CREATED",
        statusId=own["Status"],
        operations=[],
    )
    assert [(e["code"], e["field"]) for e in no_status["errors"]] == [("INVALID_INPUT", ["input", "statusId"])]
    assert [(e["code"], e["field"]) for e in extra_status["errors"]] == [("INVALID_INPUT", ["input", "statusId"])]
    rule_id = ids.encode("AutomationRule", (await AutomationRule.get(name="Entered")).id)
    updated = await mutate(
        gql,
        token,
        "updateAutomationRule",
        selection,
        id=rule_id,
        enabled=False,
        name="Off",
        operations=[{"type": "UNASSIGN"}],
    )
    assert updated["automationRule"]["enabled"] is False and updated["automationRule"]["operations"] == [
        {"type": "UNASSIGN"}
    ]
    deleted = await mutate(gql, token, "deleteAutomationRule", "deletedId", id=rule_id)
    assert deleted == {"deletedId": rule_id, "errors": []}
    rules = await gql(token, "{ automationRules { name } }")
    assert rules["data"]["automationRules"] == [{"name": "on new lead"}]


async def test_apply_preset_is_idempotent_and_rejects_unknown_names(gql: GraphQL, org: Org) -> None:
    token = org.tokens[Role.MANAGER]
    first = await mutate(gql, token, "applyPreset", "workflows { name }", name="lead-workflow")
    counts = (
        await Workflow.filter(organization_id=org.id).count(),
        await Status.filter(organization_id=org.id).count(),
        await Action.filter(organization_id=org.id).count(),
        await ActionAvailability.all().count(),
    )
    second = await mutate(gql, token, "applyPreset", "workflows { name }", name="lead-workflow")
    unknown = await mutate(gql, token, "applyPreset", "workflows { name }", name="../etc/passwd")
    assert (
        first
        == second
        == {
            "errors": [],
            "workflows": [{"name": "New"}, {"name": "Attempting Contact"}, {"name": "Contacted"}, {"name": "Closed"}],
        }
    )
    assert counts == (4, 9, 9, 25)
    assert counts == (
        await Workflow.filter(organization_id=org.id).count(),
        await Status.filter(organization_id=org.id).count(),
        await Action.filter(organization_id=org.id).count(),
        await ActionAvailability.all().count(),
    )
    assert [(e["code"], e["field"]) for e in unknown["errors"]] == [("INVALID_INPUT", ["input", "name"])]
    organization = await gql(token, "{ organization { defaultStatus { name } } }")
    assert organization["data"]["organization"]["defaultStatus"] == {"name": "New Lead"}


RULE = "automationRule { name onlyInStatuses { name } }"


async def test_a_rule_limited_to_statuses_reads_and_changes_its_list(
    gql: GraphQL, org: Org, other_org: Org, clock: FrozenClock
) -> None:
    """onlyInStatusIds: live statuses of the organization, named by index when one is
    not; [] on update removes the condition; STATUS_ENTERED takes none."""
    await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    status = {s.name: ids.encode("Status", s.id) for s in await Status.filter(organization_id=org.id)}
    created = await mutate(
        gql,
        token,
        "createAutomationRule",
        RULE,
        name="Replies",
        event="MESSAGE_RECEIVED",
        onlyInStatusIds=[status["New Lead"], status["Attempting Contact"], status["New Lead"]],
        operations=[{"type": "SET_STATUS", "statusId": status["Contact Made"]}],
    )
    assert created == {
        "automationRule": {"name": "Replies", "onlyInStatuses": [{"name": "New Lead"}, {"name": "Attempting Contact"}]},
        "errors": [],
    }
    rule_id = ids.encode("AutomationRule", (await AutomationRule.get(name="Replies")).id)

    foreign = await Status.create(
        organization_id=other_org.id,
        workflow=await Workflow.create(organization_id=other_org.id, name="Theirs", position=0),
        name="Theirs",
        position=0,
        system_status="NEW",
    )
    gone = await Status.get(organization_id=org.id, name="Final Contact")
    gone.deleted_at = clock.now()
    await gone.save()
    for bad in (ids.encode("Status", foreign.id), status["Final Contact"], "nonsense"):
        refused = await mutate(
            gql, token, "updateAutomationRule", RULE, id=rule_id, onlyInStatusIds=[status["Sold"], bad]
        )
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [
            ("NOT_FOUND", ["input", "onlyInStatusIds", "1"])
        ], bad
    entered = await mutate(
        gql,
        token,
        "createAutomationRule",
        RULE,
        name="Entered",
        event="STATUS_ENTERED",
        statusId=status["Sold"],
        onlyInStatusIds=[status["New Lead"]],
        operations=[],
    )
    assert [(e["code"], e["field"]) for e in entered["errors"]] == [("INVALID_INPUT", ["input", "onlyInStatusIds"])]

    kept = await mutate(gql, token, "updateAutomationRule", RULE, id=rule_id, name="Still")
    assert kept["automationRule"]["onlyInStatuses"] == [{"name": "New Lead"}, {"name": "Attempting Contact"}]
    changed = await mutate(gql, token, "updateAutomationRule", RULE, id=rule_id, onlyInStatusIds=[status["Sold"]])
    assert changed["automationRule"]["onlyInStatuses"] == [{"name": "Sold"}]
    cleared = await mutate(gql, token, "updateAutomationRule", RULE, id=rule_id, onlyInStatusIds=[])
    assert cleared["automationRule"]["onlyInStatuses"] == []
    assert (await AutomationRule.get(name="Still")).only_in_status_ids == []


async def test_a_status_a_rule_is_limited_to_cannot_be_deleted_until_the_rule_lets_go(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    """Dropping it from the list silently would widen the rule (a list left empty
    runs in every status): the deletion is a CONFLICT naming the rule, as for a
    status a rule moves to."""
    await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    made = await Status.get(organization_id=org.id, name="Final Contact")  # no action moves there
    created = await mutate(
        gql,
        token,
        "createAutomationRule",
        RULE,
        name="Contacted replies",
        event="MESSAGE_RECEIVED",
        onlyInStatusIds=[ids.encode("Status", made.id)],
        operations=[{"type": "MARK_CONTACT_MADE"}],
    )
    assert created["errors"] == []
    refused = await mutate(gql, token, "deleteStatus", "deletedId", id=ids.encode("Status", made.id))
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("CONFLICT", ["input", "id"])]
    assert "rule 'Contacted replies'" in refused["errors"][0]["message"]
    rule = await AutomationRule.get(name="Contacted replies")
    await mutate(gql, token, "updateAutomationRule", RULE, id=ids.encode("AutomationRule", rule.id), onlyInStatusIds=[])
    deleted = await mutate(gql, token, "deleteStatus", "deletedId", id=ids.encode("Status", made.id))
    assert deleted["errors"] == []


async def test_the_statuses_of_many_rules_load_in_one_query(
    gql: GraphQL, org: Org, clock: FrozenClock, sql_queries: QueryCounter
) -> None:
    await populate(org, clock)
    statuses = await Status.filter(organization_id=org.id).order_by("id")
    for number in range(6):
        await AutomationRule.create(
            organization_id=org.id,
            name=f"rule {number}",
            event="MESSAGE_SENT",
            only_in_status_ids=[s.id for s in statuses[number : number + 3]],
        )
    query = "{ automationRules { name onlyInStatuses { name } } }"
    await gql(org.tokens[Role.MANAGER], query)  # the token's first use records it
    sql_queries.count = 0
    few = await gql(org.tokens[Role.MANAGER], query)
    few_queries = sql_queries.count
    for number in range(6, 12):
        await AutomationRule.create(
            organization_id=org.id, name=f"rule {number}", event="MESSAGE_SENT", only_in_status_ids=[statuses[-1].id]
        )
    sql_queries.count = 0
    many = await gql(org.tokens[Role.MANAGER], query)
    assert sql_queries.count == few_queries
    rules = {r["name"]: [s["name"] for s in r["onlyInStatuses"]] for r in many["data"]["automationRules"]}
    assert rules["rule 0"] == [s.name for s in statuses[0:3]] and rules["rule 11"] == [statuses[-1].name]
    assert few["data"]["automationRules"][0]["name"] == "on new lead"
