"""R1.1: another organization's id behaves exactly like an unknown id, everywhere.

Driven by the served schema: every mutation's input and every query argument
or filter that takes an ID is tried with the other organization's id of the
right type. A field added later is covered as soon as its name maps to a type
(the test fails for an ID field it cannot map)."""

from __future__ import annotations

import hashlib
import json

import pytest
from graphql import GraphQLInputObjectType
from tortoise import connections
from tortoise.context import require_context

from app.accounts.models import Role
from app.clock import FrozenClock
from tests.conftest import GraphQL, Org
from tests.factories import populate
from tests.schema_inputs import MUTATIONS, SCHEMA, UNKNOWN, id_paths, id_type, sample, unwrap

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
    apps = require_context().apps
    assert apps is not None
    tables = sorted(model._meta.db_table for model in apps["models"].values())
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


FILTER_TYPES = {
    "prospects": "ProspectFilter",
    "tasks": "TaskFilter",
    "enrollments": "EnrollmentFilter",
    "events": "EventFilter",
}


async def test_filters_given_foreign_ids_match_nothing(
    gql: GraphQL, org: Org, worlds: tuple[dict[str, str], dict[str, str]]
) -> None:
    own, foreign = worlds
    for query, type_name in FILTER_TYPES.items():
        filter_type = SCHEMA.type_map[type_name]
        assert isinstance(filter_type, GraphQLInputObjectType)
        for name, field in filter_type.fields.items():
            if unwrap(field.type)[0].name != "ID":  # type: ignore[attr-defined]
                continue
            kind = id_type(name, query)
            document = f"query($f: {type_name}) {{ {query}(filter: $f) {{ totalCount }} }}"
            many = unwrap(field.type)[1]
            foreign_body = await gql(
                org.tokens[Role.ADMIN], document, f={name: [foreign[kind]] if many else foreign[kind]}
            )
            own_body = await gql(org.tokens[Role.ADMIN], document, f={name: [own[kind]] if many else own[kind]})
            assert foreign_body == {"data": {query: {"totalCount": 0}}}, (query, name)
            assert own_body["data"][query]["totalCount"] >= 1, (query, name)
