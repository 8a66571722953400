"""GraphQL operations: what a query may ask for and carry (issue #19, item 9).
Bad input is an INVALID_INPUT naming the field, never a masked error."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.models import Role
from app.clock import FrozenClock
from app.prospects.models import Prospect
from tests.conftest import GraphQL, Org, QueryCounter
from tests.factories import populate

CREATE = "mutation($input: CreateProspectInput!) { createProspect(input: $input) { errors { code message field } } }"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# query, variables, where the refusal is ("errors", or the payload's field), what it says
OPERATIONS = [
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
