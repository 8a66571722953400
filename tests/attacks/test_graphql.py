"""GraphQL operations: what a query may ask for and carry.
An operation over the cost budget is refused before any SQL runs; configuration
past its caps (which the cost counts lists at) is a CONFLICT naming the field; bad
input is an INVALID_INPUT naming the field, never a masked error; production
hides the schema (no introspection, no "Did you mean")."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
from tortoise.models import Model

from app import caps, ids
from app.accounts.models import ApiToken, Role, User
from app.clock import FrozenClock
from app.config import Settings
from app.prospects.models import Prospect
from app.sequences import service as sequences
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from app.web import create_app
from app.workflows.models import Action, ActionCategory, AutomationRule, Status, SystemStatus, TriggerEvent, Workflow
from tests.conftest import GraphQL, Org, QueryCounter, mutate
from tests.factories import populate
from tests.ws_client import connect

AVAILABLE_IN_9 = (
    "{ actions { availableIn { actions { availableIn { actions { availableIn { actions { availableIn "
    "{ actions { id } } } } } } } } } }"
)
STEP_TEXTS = "enrollments(first: 100) { edges { node { sequence { steps { subject body } } } } }"
THREE_PAGES = "prospects(first: $n) { edges { node { enrollments(first: $n) { edges { node { history(first: $n) { edges { node { at } } } } } } } } }"  # fmt: skip
OVER = "is over the budget of 1,000,000 (GRAPHQL_MAX_COST)"
CREATE = "mutation($input: CreateProspectInput!) { createProspect(input: $input) { errors { code message field } } }"
CUSTOM = "mutation { createProspect(input: {prospect: {customFields: {n: %s}}}) { errors { code message field } } }"
NUMBERS = "customFields numbers must be finite, and integers within ±9,223,372,036,854,775,807."


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# query, variables, where the refusal is ("errors", or the payload's field), what it says
OPERATIONS = [
    pytest.param(AVAILABLE_IN_9, {}, "errors", {"message": f"Query cost 3,830,017,334,964,859,437,751 {OVER}"},
                 id="actions-available-in-nine-deep"),
    pytest.param("{ workflows { statuses { actions { availableIn { id name } } } } }", {}, "errors",
                 {"message": f"Query cost 31,312,801 {OVER}"}, id="every-status-of-every-action-of-every-status"),
    pytest.param("{ " + THREE_PAGES.replace("$n", "100") + " }", {}, "errors",
                 {"message": f"Query cost 2,030,302 {OVER}"}, id="three-nested-pages"),
    pytest.param("query($n: Int) { " + THREE_PAGES + " }", {"n": 100}, "errors",
                 {"message": f"Query cost 2,030,302 {OVER}"}, id="page-sizes-in-variables"),
    pytest.param("query($n: Int = 100) { " + THREE_PAGES + " }", {}, "errors",
                 {"message": f"Query cost 2,030,302 {OVER}"}, id="page-sizes-in-variable-defaults"),
    pytest.param("{ prospects(first: 100) { edges { node { ...P } } } } "
                 "fragment P on Prospect { enrollments(first: 100) { edges { node { ...E } } } } "
                 "fragment E on Enrollment { history(first: 100) { edges { node { at } } } }", {}, "errors",
                 {"message": f"Query cost 2,030,302 {OVER}"}, id="fragments"),
    pytest.param('{ node(id: "x") { ... on Sequence { enrollments(first: 100) { edges { node { prospect { '
                 "enrollments(first: 100) { edges { node { history(first: 100) { edges { node { at } } } } } } } } } } } } }",
                 {}, "errors", {"message": f"Query cost 2,030,403 {OVER}"}, id="inline-fragments"),
    pytest.param("mutation { createProspects(input: {prospects: [{firstName: \"Ann\"}]}) { prospects { "
                 "enrollments(first: 100) { edges { node { history(first: 100) { edges { node { at } } } } } } } } }",
                 {}, "errors", {"message": f"Query cost 20,302,002 {OVER}"}, id="a-mutation-runs-not-at-all"),
    pytest.param(f"{{ a: {STEP_TEXTS} b: {STEP_TEXTS} }}", {}, "errors", {"message": f"Query cost 1,100,604 {OVER}"},
                 id="steps-texts-of-two-pages-of-enrollments"),
    pytest.param('mutation { createProspect(input: {prospect: {firstName: "Ada\\u0000"}}) { errors { code } } }', {},
                 "errors", {"message": "The string at createProspect.input.prospect.firstName has a NUL character "
                 "(\\u0000), which text may not hold."}, id="nul-escaped-in-a-string"),
    pytest.param('mutation { createProspects(input: {prospects: [{firstName: "A"}, {lastName: "\\u0000"}]}) { '
                 "errors { code } } }", {}, "errors", {"message": "The string at createProspects.input.prospects.1."
                 "lastName has a NUL character"}, id="nul-escaped-in-a-list"),
    pytest.param('query($s: String = "a\\u0000") { prospects(filter: {search: $s}) { totalCount } }', {}, "errors",
                 {"message": "The string at $s has a NUL character"}, id="nul-escaped-in-a-variable-default"),
    pytest.param('{ prospects(filter: {search: "\\ud800"}) { totalCount } }', {}, "errors",
                 {"message": "Syntax Error: Invalid Unicode escape sequence: '\\ud800'."}, id="lone-surrogate-escaped"),
    pytest.param("query($s: String) { prospects(filter: {search: $s}) { totalCount } }", {"s": "a" * 50_000},
                 "errors", {"message": "At most 320 characters.", "code": "INVALID_INPUT", "field": ["filter", "search"]},
                 id="search-of-50000-characters"),
    pytest.param("mutation { createProspect(input: {prospect: {customFields: {a: {a: {a: {a: {a: {a: 1}}}}}}}}) { "
                 "errors { code message field } } }", {}, "createProspect",
                 {"message": "customFields may nest objects and lists at most 5 deep.", "code": "INVALID_INPUT",
                  "field": ["input", "prospect", "customFields"]}, id="custom-fields-6-deep"),
    pytest.param(CREATE, {"input": {"prospect": {"customFields": nested(500)}}}, "createProspect",
                 {"message": "at most 5 deep", "code": "INVALID_INPUT", "field": ["input", "prospect", "customFields"]},
                 id="custom-fields-500-deep"),
    pytest.param(CREATE, {"input": {"prospect": {"customFields": {"n": 2**63}}}}, "createProspect",
                 {"message": NUMBERS, "code": "INVALID_INPUT", "field": ["input", "prospect", "customFields"]},
                 id="custom-fields-integer-past-64-bits"),
    pytest.param(CUSTOM % ("9" * 5_000), {}, "createProspect",
                 {"message": NUMBERS, "code": "INVALID_INPUT", "field": ["input", "prospect", "customFields"]},
                 id="custom-fields-literal-of-5000-digits"),
    pytest.param(CUSTOM % "[1, [1e400]]", {}, "createProspect",
                 {"message": NUMBERS, "code": "INVALID_INPUT", "field": ["input", "prospect", "customFields"]},
                 id="custom-fields-literal-past-a-double"),
]  # fmt: skip


def _refusal(body: dict[str, Any], where: str) -> dict[str, Any]:
    if where == "errors":
        error = body["errors"][0]
        return {"message": error["message"], **error.get("extensions", {})}
    refusal: dict[str, Any] = body["data"][where]["errors"][0]
    return refusal


@pytest.mark.parametrize(("query", "variables", "where", "expected"), OPERATIONS)
async def test_an_operation_is_refused_saying_why(
    gql: GraphQL,
    org: Org,
    clock: FrozenClock,
    sql_queries: QueryCounter,
    query: str,
    variables: dict[str, Any],
    where: str,
    expected: dict[str, Any],
) -> None:
    await populate(org, clock)
    prospects = await Prospect.filter(organization_id=org.id).count()
    token = org.tokens[Role.MANAGER]
    await gql(token, "{ viewer { id } }")  # the token's lastUsedAt is written once
    sql_queries.count = 0
    await gql(token, "{ viewer { id } }")
    authenticating, sql_queries.count = sql_queries.count, 0
    body = await gql(token, query, **variables)
    refusal = _refusal(body, where)
    assert expected["message"] in refusal["message"]
    assert {key: refusal[key] for key in expected if key != "message"} == {
        key: value for key, value in expected.items() if key != "message"
    }
    if where == "errors":
        assert sql_queries.count <= authenticating  # refused before any resolver's SQL
    assert await Prospect.filter(organization_id=org.id).count() == prospects


async def test_a_nul_escaped_in_a_subscription_is_refused_naming_where(org: Org, live_server: str) -> None:
    url = live_server.replace("http://", "ws://") + "/graphql"
    async with connect(url, org.tokens[Role.AGENT]) as client:
        operation = await client.subscribe('subscription { events(after: "1\\u0000") { cursor } }')
        answer = await client.receive(operation=operation)
    assert answer["type"] == "error"
    assert [error["message"] for error in answer["payload"]] == [
        "The string at events.after has a NUL character (\\u0000), which text may not hold."
    ]


async def _workflow(org: Org, statuses: int) -> str:
    """A new workflow holding ``statuses`` statuses; its global id."""
    workflow = await Workflow.create(organization_id=org.id, name="Full", position=0)
    await Status.bulk_create(
        Status(
            organization_id=org.id, workflow_id=workflow.id, name=f"S{i}", position=i, system_status=SystemStatus.NEW
        )
        for i in range(statuses)
    )
    return ids.encode("Workflow", workflow.id)


async def _workflows_at_cap(org: Org) -> dict[str, Any]:
    await Workflow.bulk_create(
        Workflow(organization_id=org.id, name=f"W{i}", position=i) for i in range(caps.MAX_WORKFLOWS)
    )
    return {"name": "One more"}


async def _workflow_at_cap(org: Org) -> dict[str, Any]:
    return {
        "workflowId": await _workflow(org, caps.MAX_STATUSES_PER_WORKFLOW),
        "name": "One more",
        "systemStatus": "NEW",
    }


async def _statuses_at_cap(org: Org) -> dict[str, Any]:
    for _ in range(caps.MAX_STATUSES // caps.MAX_STATUSES_PER_WORKFLOW):
        await _workflow(org, caps.MAX_STATUSES_PER_WORKFLOW)
    return {"workflowId": await _workflow(org, 0), "name": "One more", "systemStatus": "NEW"}


async def _status_into_workflow_at_cap(org: Org) -> dict[str, Any]:
    full, other = await _workflow(org, caps.MAX_STATUSES_PER_WORKFLOW), await _workflow(org, 1)
    status = await Status.get(workflow_id=ids.decode_as("Workflow", other))
    return {"id": ids.encode("Status", status.id), "workflowId": full}


async def _categories_at_cap(org: Org) -> dict[str, Any]:
    await ActionCategory.bulk_create(
        ActionCategory(organization_id=org.id, name=f"C{i}") for i in range(caps.MAX_CATEGORIES)
    )
    return {"name": "One more"}


async def _actions_at_cap(org: Org) -> dict[str, Any]:
    await Action.bulk_create(Action(organization_id=org.id, name=f"A{i}") for i in range(caps.MAX_ACTIONS))
    return {"name": "One more", "operations": []}


async def _rules_at_cap(org: Org) -> dict[str, Any]:
    await AutomationRule.bulk_create(
        AutomationRule(organization_id=org.id, name=f"R{i}", event=TriggerEvent.PROSPECT_CREATED)
        for i in range(caps.MAX_RULES)
    )
    return {"name": "One more", "event": "PROSPECT_CREATED", "operations": []}


async def _users_at_cap(org: Org) -> dict[str, Any]:
    now, count = org.users[Role.ADMIN].created_at, caps.MAX_USERS - await User.filter(organization_id=org.id).count()
    await User.bulk_create(
        User(organization_id=org.id, name=f"U{i}", email=f"u{i}@acme.example", role=Role.AGENT, created_at=now)
        for i in range(count)
    )
    return {"name": "One more", "email": "more@acme.example", "role": "AGENT"}


async def _tokens_at_cap(org: Org) -> dict[str, Any]:
    user = org.users[Role.AGENT]
    count = caps.MAX_ACTIVE_TOKENS - await ApiToken.filter(organization_id=org.id).count()
    await ApiToken.bulk_create(
        ApiToken(
            organization_id=org.id, user_id=user.id, name=f"T{i}", token_hash=f"{i:064}", created_at=user.created_at
        )
        for i in range(count)
    )
    return {"name": "One more"}


# What fills the organization to a cap (and answers the mutation's input), the mutation, the model
# it would add to, the field at fault, what the CONFLICT says
CAPS = [
    pytest.param(_workflows_at_cap, "createWorkflow", Workflow, ["input"], "An organization has at most 50 workflows",
                 id="workflows"),
    pytest.param(_workflow_at_cap, "createStatus", Status, ["input", "workflowId"],
                 "A workflow has at most 50 statuses", id="statuses-in-a-workflow"),
    pytest.param(_statuses_at_cap, "createStatus", Status, ["input"], "An organization has at most 250 statuses",
                 id="statuses-in-an-organization"),
    pytest.param(_status_into_workflow_at_cap, "updateStatus", Status, ["input", "workflowId"],
                 "A workflow has at most 50 statuses", id="a-status-moved-into-a-full-workflow"),
    pytest.param(_categories_at_cap, "createActionCategory", ActionCategory, ["input"],
                 "An organization has at most 50 action categories", id="action-categories"),
    pytest.param(_actions_at_cap, "createAction", Action, ["input"], "An organization has at most 250 actions",
                 id="actions"),
    pytest.param(_rules_at_cap, "createAutomationRule", AutomationRule, ["input"],
                 "An organization has at most 250 automation rules", id="automation-rules"),
    pytest.param(_users_at_cap, "createUser", User, ["input"], "An organization has at most 5,000 users", id="users"),
    pytest.param(_tokens_at_cap, "createApiToken", ApiToken, ["input"],
                 "An organization has at most 10,000 API tokens not revoked; revoke one first", id="api-tokens"),
]  # fmt: skip


@pytest.mark.parametrize(("fill", "mutation", "model", "field", "says"), CAPS)
async def test_configuration_past_its_cap_is_a_conflict(
    gql: GraphQL, org: Org, fill: Any, mutation: str, model: type[Model], field: list[str], says: str
) -> None:
    input_ = await fill(org)
    await gql(org.tokens[Role.ADMIN], "{ viewer { id } }")  # the token's lastUsedAt is written once
    rows = await model.filter(organization_id=org.id).order_by("id").values()
    payload = await mutate(gql, org.tokens[Role.ADMIN], mutation, "__typename", **input_)
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("CONFLICT", field)]
    assert says in payload["errors"][0]["message"]
    assert await model.filter(organization_id=org.id).order_by("id").values() == rows


async def test_a_response_past_its_cap_is_never_held_whole(org: Org, clock: FrozenClock, tmp_path: Path) -> None:
    """Thirty times fifty steps of 20,000 characters is 30 MB of JSON from 1 MB of
    rows: the encoding stops at the cap (1 MiB here) instead of writing it all out."""
    steps = [StepSpec(type=StepType.SMS, delay_seconds=0, body=f"{i:02}" + "x" * 19_998) for i in range(50)]
    manager = org.actor(Role.MANAGER, clock)
    sequence = await sequences.create_sequence(
        actor=manager, name="Long", stop_on_reply=None, unresponsive_after_seconds=None, send_window=None, steps=steps,
        active=None,
    )  # fmt: skip
    aliases = " ".join(f"s{i}: node(id: $id) {{ ... on Sequence {{ steps {{ body }} }} }}" for i in range(30))
    capped = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), "GRAPHQL_MAX_RESPONSE_BYTES": str(1024 * 1024)})
    app = create_app(capped, clock=clock, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        tracemalloc.start()
        try:
            response = await client.post(
                "/graphql",
                json={
                    "query": f"query($id: ID!) {{ {aliases} }}",
                    "variables": {"id": ids.encode("Sequence", sequence.id)},
                },
                headers={"Authorization": f"Bearer {org.tokens[Role.AGENT]}"},
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, f"{peak:,} bytes at the peak"
    assert response.json()["errors"][0]["message"].startswith("The response is over the limit of 1,048,576 bytes")


# In production (introspection off, no "Did you mean"): query, variables, what the error says
PRODUCTION = [
    pytest.param("{ __schema { types { name } } }", {}, "introspection has been disabled", id="schema"),
    pytest.param('{ __type(name: "Prospect") { name } }', {}, "introspection has been disabled", id="type"),
    pytest.param("{ prospects(frist: 1) { totalCount } }", {}, "Unknown argument 'frist' on field 'Query.prospects'.",
                 id="argument"),
    pytest.param("{ prospects(filter: {systemStatuses: [NEWW]}) { totalCount } }", {},
                 "Value 'NEWW' does not exist in 'SystemStatus' enum.", id="enum-value"),
    pytest.param('{ prospects(filter: {serch: "a"}) { totalCount } }', {},
                 "Expected value of type 'ProspectFilter' not to include unknown field 'serch'. Found:",
                 id="input-field"),
    pytest.param("query($f: ProspectFiltr) { prospects(filter: $f) { totalCount } }", {},
                 "Unknown type 'ProspectFiltr'.", id="type-name"),
    pytest.param("query($s: [SystemStatus!]) { prospects(filter: {systemStatuses: $s}) { totalCount } }",
                 {"s": ["NEWW"]}, "Value 'NEWW' does not exist in 'SystemStatus' enum.", id="enum-value-in-variables"),
    pytest.param("query($f: ProspectFilter) { prospects(filter: $f) { totalCount } }", {"f": {"serch": "a"}},
                 "Expected value of type 'ProspectFilter' not to include unknown field 'serch'",
                 id="input-field-in-variables"),
]  # fmt: skip


@pytest.mark.parametrize(("query", "variables", "says"), PRODUCTION)
async def test_production_tells_nothing_of_the_schema(
    org: Org, tmp_path: Path, query: str, variables: dict[str, Any], says: str
) -> None:
    production = Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path), "LEADLINE_ENV": "production", "SECRET_KEY": "k" * 40}
    )
    app = create_app(production, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {org.tokens[Role.AGENT]}"},
        )
    messages = [error["message"] for error in response.json()["errors"]]
    assert says in messages[0]
    assert "Did you mean" not in json.dumps(messages)
