"""GraphQL operations: what a query may ask for and carry (issue #19, items 5, 9 and 13).
An operation over the cost budget is refused before any SQL runs; bad input is an
INVALID_INPUT naming the field, never a masked error; production hides the
schema (no introspection, no "Did you mean")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.prospects.models import Prospect
from app.web import create_app
from tests.conftest import GraphQL, Org, QueryCounter
from tests.factories import populate

AVAILABLE_IN_9 = (
    "{ actions { availableIn { actions { availableIn { actions { availableIn { actions { availableIn "
    "{ actions { id } } } } } } } } } }"
)
THREE_PAGES = "prospects(first: $n) { edges { node { enrollments(first: $n) { edges { node { history(first: $n) { edges { node { at } } } } } } } } }"  # fmt: skip
OVER = "is over the budget of 1,000,000 (GRAPHQL_MAX_COST)"
CREATE = "mutation($input: CreateProspectInput!) { createProspect(input: $input) { errors { code message field } } }"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# query, variables, where the refusal is ("errors", or the payload's field), what it says
OPERATIONS = [
    pytest.param(AVAILABLE_IN_9, {}, "errors", {"message": f"Query cost 51,051,051,051,051 {OVER}"},
                 id="actions-available-in-nine-deep"),
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
