"""R1.1: another organization's id behaves exactly like an unknown id, everywhere.

Driven by the served schema: every mutation's input and every query argument
or filter that takes an ID is tried with the other organization's id of the
right type. A field added later is covered as soon as its name maps to a type
(the test fails for an ID field it cannot map)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    get_named_type,
)
from tortoise import connections

from app import ids
from app.accounts.models import Role
from app.clock import FrozenClock
from schema.build import build_schema
from tests.conftest import GraphQL, Org
from tests.factories import populate

SCHEMA = build_schema()._schema
MUTATIONS = SCHEMA.mutation_type.fields  # type: ignore[union-attr]
SPECIAL_TYPES = {"owner": "User", "assignee": "User", "category": "ActionCategory", "availableInStatus": "Status"}
UNKNOWN = {
    type_name: ids.encode(type_name, 987654)
    for type_name in (
        "Organization",
        "User",
        "ApiToken",
        "Workflow",
        "Status",
        "ActionCategory",
        "Action",
        "AutomationRule",
        "Prospect",
        "Activity",
        "StatusChange",
        "Task",
    )
}


def id_type(field_name: str, mutation: str) -> str:
    """The entity type an ID input field names."""
    if field_name == "id":
        if mutation.startswith("delete"):
            return mutation.removeprefix("delete")
        payload = get_named_type(MUTATIONS[mutation].type)
        entity = next(n for n in payload.fields if n not in ("errors", "token"))  # type: ignore[attr-defined]
        return entity[0].upper() + entity[1:]
    stem = field_name.removesuffix("Ids").removesuffix("Id")
    for prefix in ("moveTo", "default"):
        stem = stem.removeprefix(prefix)
    stem = stem[0].lower() + stem[1:]
    return SPECIAL_TYPES.get(stem, stem[0].upper() + stem[1:])


def _unwrap(t: GraphQLInputType) -> tuple[GraphQLInputType, bool]:
    is_list = False
    while isinstance(t, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(t, GraphQLList)
        t = t.of_type
    return t, is_list


def sample(
    t: GraphQLInputType,
    mutation: str,
    name: str,
    own: dict[str, str],
    path: list[str],
    target: list[str],
    foreign: dict[str, str],
) -> Any:
    """A valid value for an input of type ``t``; the ID at ``target`` is the foreign one."""
    named, is_list = _unwrap(t)
    if isinstance(named, GraphQLInputObjectType):
        value = _object(named, mutation, own, path + (["0"] if is_list else []), target, foreign)
    elif isinstance(named, GraphQLEnumType):
        value = next(iter(named.values))
    elif isinstance(named, GraphQLScalarType) and named.name == "ID":
        kind = id_type(name, mutation)
        value = (foreign if path + (["0"] if is_list else []) == target else own)[kind]
    else:
        value = {"String": "Sample", "Int": 1, "Boolean": True, "JSON": {}, "DateTime": "2026-01-01T00:00:00Z"}[
            named.name
        ]
        if name == "email":
            value = "sample@client.example"
        if name == "timeZone":
            value = "Europe/Paris"
        if name == "role":
            value = "AGENT"
    return [value] if is_list else value


def _object(
    t: GraphQLInputObjectType,
    mutation: str,
    own: dict[str, str],
    path: list[str],
    target: list[str],
    foreign: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in t.fields.items():
        here = [*path, name]
        holds_target = target[: len(here)] == here
        if isinstance(field.type, GraphQLNonNull) or holds_target:
            out[name] = sample(field.type, mutation, name, own, here, target, foreign)
    if t.name == "OperationInput":
        out["type"] = "SET_STATUS" if "statusId" in out else "ASSIGN" if "userId" in out else "MARK_CONTACT_MADE"
        if out["type"] == "SET_STATUS" and "statusId" not in out:
            out["statusId"] = own["Status"]
    if t.name == "CreateAutomationRuleInput" and "statusId" in out:
        out["event"] = "STATUS_ENTERED"
    return out


def id_paths(t: GraphQLInputType, path: list[str]) -> list[list[str]]:
    named, is_list = _unwrap(t)
    here = path + (["0"] if is_list else [])
    if isinstance(named, GraphQLInputObjectType):
        return [p for name, f in named.fields.items() for p in id_paths(f.type, [*here, name])]
    if isinstance(named, GraphQLScalarType) and named.name == "ID":
        return [here]
    return []


CASES = [
    (mutation, path)
    for mutation, field in MUTATIONS.items()
    for arg in field.args.values()
    for path in id_paths(arg.type, ["input"])
]


def test_every_id_field_maps_to_a_type() -> None:
    for mutation, path in CASES:
        assert id_type(next(p for p in reversed(path) if not p.isdigit()), mutation) in UNKNOWN, (mutation, path)


async def snapshot() -> str:
    """A digest of every table's rows: proof that nothing changed."""
    db = connections.get("default")
    digest = hashlib.sha256()
    tables = [
        "organization",
        "user",
        "api_token",
        "workflow",
        "status",
        "action_category",
        "action",
        "action_availability",
        "automation_rule",
        "prospect",
        "activity",
        "status_change",
        "task",
    ]
    for table in tables:
        _, rows = await db.execute_query(f'SELECT * FROM "{table}" ORDER BY id')
        digest.update(json.dumps([dict(r) for r in rows], default=str, sort_keys=True).encode())
    return digest.hexdigest()


@pytest.fixture
async def worlds(org: Org, other_org: Org, clock: FrozenClock) -> tuple[dict[str, str], dict[str, str]]:
    return await populate(org, clock), await populate(other_org, clock)


@pytest.mark.parametrize(("mutation", "path"), CASES, ids=[f"{m}:{'.'.join(p)}" for m, p in CASES])
async def test_a_foreign_id_in_a_mutation_is_not_found_and_changes_nothing(
    gql: GraphQL, org: Org, worlds: tuple[dict[str, str], dict[str, str]], mutation: str, path: list[str]
) -> None:
    own, foreign = worlds
    field = MUTATIONS[mutation]
    variables = {"input": sample(field.args["input"].type, mutation, "input", own, ["input"], path, foreign)}
    unknown_variables = {"input": sample(field.args["input"].type, mutation, "input", own, ["input"], path, UNKNOWN)}
    document = f"mutation($input: {field.args['input'].type}) {{ {mutation}(input: $input) {{ errors {{ code message field }} }} }}"
    await gql(org.tokens[Role.ADMIN], "{ viewer { id } }")  # records the token's lastUsedAt first
    before = await snapshot()

    body = await gql(org.tokens[Role.ADMIN], document, **variables)
    unknown_body = await gql(org.tokens[Role.ADMIN], document, **unknown_variables)

    assert "errors" not in body, body
    errors = body["data"][mutation]["errors"]
    assert [e["code"] for e in errors] == ["NOT_FOUND"], (variables, errors)
    assert errors == unknown_body["data"][mutation]["errors"]
    assert errors[0]["field"][: len(path)] == path or path[-1].isdigit()
    assert await snapshot() == before


async def test_node_answers_null_for_every_foreign_id(
    gql: GraphQL, org: Org, worlds: tuple[dict[str, str], dict[str, str]]
) -> None:
    own, foreign = worlds
    for type_name, global_id in foreign.items():
        body = await gql(org.tokens[Role.ADMIN], "query($id: ID!) { node(id: $id) { id } }", id=global_id)
        assert body == {"data": {"node": None}}, type_name
        body = await gql(org.tokens[Role.ADMIN], "query($id: ID!) { node(id: $id) { id } }", id=own[type_name])
        assert body == {"data": {"node": {"id": own[type_name]}}}, type_name


FILTER_TYPES = {"prospects": "ProspectFilter", "tasks": "TaskFilter"}


async def test_filters_given_foreign_ids_match_nothing(
    gql: GraphQL, org: Org, worlds: tuple[dict[str, str], dict[str, str]]
) -> None:
    own, foreign = worlds
    for query, type_name in FILTER_TYPES.items():
        filter_type = SCHEMA.type_map[type_name]
        assert isinstance(filter_type, GraphQLInputObjectType)
        for name, field in filter_type.fields.items():
            if _unwrap(field.type)[0].name != "ID":  # type: ignore[attr-defined]
                continue
            kind = id_type(name, query)
            document = f"query($f: {type_name}) {{ {query}(filter: $f) {{ totalCount }} }}"
            foreign_body = await gql(org.tokens[Role.ADMIN], document, f={name: [foreign[kind]]})
            own_body = await gql(org.tokens[Role.ADMIN], document, f={name: [own[kind]]})
            assert foreign_body == {"data": {query: {"totalCount": 0}}}, (query, name)
            assert own_body["data"][query]["totalCount"] >= 1, (query, name)
