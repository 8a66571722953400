"""Quality bars of the API: no N+1, limits before resolvers, masked errors, websocket auth."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
import websockets
from graphql import FragmentDefinitionNode, OperationDefinitionNode, get_introspection_query, parse
from websockets.typing import Subprotocol

from app import limits
from app.accounts.models import Role
from app.cli import uvicorn_options
from app.clock import FrozenClock
from app.config import GRAPHQL_MAX_COST, Settings
from app.prospects import service as prospect_service
from app.web import create_app
from schema import cost
from schema.build import build_schema
from tests.conftest import GraphQL, Org, QueryCounter, mutate
from tests.factories import populate
from tests.loopback import serving
from tests.ws_client import connect

PAGE = """query { prospects(first: 100) { totalCount edges { node {
    firstName status { name workflow { name statuses { name } } } owner { name }
    tasks { totalCount edges { node { kind assignee { name } } } } statusHistory { totalCount }
    enrollments { totalCount edges { node { stage currentStep { position } sequence { name steps { type } } } } } } } } }"""


SPEC_PAGE = """query { prospects(first: 100) { totalCount edges { node {
    firstName status { name } owner { name } enrollments { totalCount edges { node { stage sequence { name } } } } } } } }"""


def _cost(query: str) -> int:
    document = parse(query)
    (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return cost.operation_cost(build_schema()._schema, operation, fragments, {})


def test_the_heavy_pages_fit_the_cost_budget_with_room() -> None:
    assert (_cost(PAGE), _cost(SPEC_PAGE), _cost(get_introspection_query())) == (311_703, 20_903, 329_452)
    assert max(_cost(PAGE), _cost(get_introspection_query())) * 3 < GRAPHQL_MAX_COST


async def _page_cost(gql: GraphQL, org: Org, sql_queries: QueryCounter, expected: int) -> int:
    await gql(org.tokens[Role.MANAGER], "{ viewer { id } }")  # the token's lastUsedAt is written once
    sql_queries.count = 0
    body = await gql(org.tokens[Role.MANAGER], PAGE)
    assert len(body["data"]["prospects"]["edges"]) == expected
    return sql_queries.count


async def test_a_page_of_100_prospects_costs_the_same_queries_as_a_page_of_1(
    gql: GraphQL, org: Org, clock: FrozenClock, sql_queries: QueryCounter
) -> None:
    await populate(org, clock)
    one = await _page_cost(gql, org, sql_queries, 1)
    rows = [{"firstName": f"P{i}", "ownerId": org.user_gid(Role.AGENT if i % 2 else Role.MANAGER)} for i in range(99)]
    await mutate(gql, org.tokens[Role.MANAGER], "createProspects", "prospects { id }", prospects=rows)
    hundred = await _page_cost(gql, org, sql_queries, 100)
    assert one == hundred
    assert hundred <= 16  # one per loader level, whatever the page size


async def _rejected_cost(gql: GraphQL, org: Org, sql_queries: QueryCounter, query: str) -> tuple[int, str]:
    await gql(org.tokens[Role.MANAGER], "{ viewer { id } }")
    sql_queries.count = 0
    body = await gql(org.tokens[Role.MANAGER], query)
    return sql_queries.count, body["errors"][0]["message"]


async def test_depth_alias_and_token_limits_reject_before_any_resolver(
    gql: GraphQL, org: Org, sql_queries: QueryCounter
) -> None:
    auth_only, _ = await _rejected_cost(gql, org, sql_queries, "{ viewer { nope } }")
    deep = "{ prospects { edges { node { " + "status { workflow { statuses { " * 4 + "name" + " } } }" * 4 + " } } } }"
    aliases = "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(31)) + " }"
    tokens = "{ viewer { " + " ".join(["id"] * 3000) + " } }"
    for query, words in ((deep, "exceeds maximum operation depth"), (aliases, "aliases"), (tokens, "token")):
        cost, message = await _rejected_cost(gql, org, sql_queries, query)
        assert cost == auth_only, message
        assert words in message.lower()


async def test_unexpected_errors_are_masked_and_logged_without_personal_data(
    gql: GraphQL, org: Org, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    own = await populate(org, clock)

    async def broken(**kwargs: object) -> None:
        raise RuntimeError("duplicate key: SELECT * FROM prospect WHERE email = 'pat@client.example'")

    monkeypatch.setattr(prospect_service, "mark_do_not_contact", broken)
    with caplog.at_level(logging.ERROR):
        body = await gql(
            org.tokens[Role.AGENT],
            """mutation($input: MarkDoNotContactInput!) {
            markDoNotContact(input: $input) { errors { code } } }""",
            input={"id": own["Prospect"], "doNotContact": True},
        )
    assert body["data"] is None
    assert body["errors"] == [
        {"message": "Unexpected error.", "locations": [{"line": 2, "column": 13}], "path": ["markDoNotContact"]}
    ]
    assert "RuntimeError" in caplog.text and "markDoNotContact" not in body["errors"][0]["message"]
    assert "pat@client.example" not in caplog.text and "SELECT" not in caplog.text


async def test_error_messages_never_echo_an_email_address(gql: GraphQL, org: Org) -> None:
    body = await gql(
        org.tokens[Role.AGENT], "query($n: Int) { prospects(first: $n) { totalCount } }", n="pat@client.example"
    )
    text = str(body)
    assert "errors" in body and "pat@client.example" not in text and "Traceback" not in text


async def test_graphiql_is_served_only_in_development(client: httpx.AsyncClient, tmp_path: Path) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    production = Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path), "LEADLINE_ENV": "production", "SECRET_KEY": "k" * 40}
    )
    app = create_app(production, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as prod:
        response = await prod.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 401


def _production(tmp_path: Path, **environ: str) -> Settings:
    return Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path), "LEADLINE_ENV": "production", "SECRET_KEY": "k" * 40, **environ}
    )


async def _post(settings: Settings, token: str, query: str) -> httpx.Response:
    app = create_app(settings, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        return await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})


INTROSPECTION = "{ __schema { types { name } } }"


async def test_introspection_is_off_in_production_unless_enabled(
    gql: GraphQL, org: Org, settings: Settings, tmp_path: Path
) -> None:
    token = org.tokens[Role.AGENT]
    assert len((await gql(token, INTROSPECTION))["data"]["__schema"]["types"]) > 100
    refused = (await _post(_production(tmp_path), token, INTROSPECTION)).json()
    assert refused["data"] is None and "introspection has been disabled" in refused["errors"][0]["message"]
    enabled = (await _post(_production(tmp_path, GRAPHQL_INTROSPECTION="true"), token, INTROSPECTION)).json()
    assert "errors" not in enabled and len(enabled["data"]["__schema"]["types"]) > 100
    assert (await _post(_production(tmp_path), token, "{ __typename }")).json() == {"data": {"__typename": "Query"}}


async def test_a_response_over_its_cap_is_an_error_in_its_place(org: Org, tmp_path: Path) -> None:
    settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), "GRAPHQL_MAX_RESPONSE_BYTES": "1024"})
    response = await _post(settings, org.tokens[Role.AGENT], INTROSPECTION)
    assert response.status_code == 200
    message = response.json()["errors"][0]["message"]
    assert response.json()["data"] is None
    assert message.startswith("The response is over the limit of 1,024 bytes (GRAPHQL_MAX_RESPONSE_BYTES)")
    small = await _post(settings, org.tokens[Role.AGENT], "{ viewer { name } }")
    assert small.json() == {"data": {"viewer": {"name": "Agent"}}}


def test_a_response_in_parts_is_the_json_strawberry_writes() -> None:
    texts = ['x\u0000\n"\\é😀\ud800' * 40_000, "y" * 700_000, "", "Pat"]
    rows = [{"name": text, "n": n, "f": 1.5e300, "b": n % 2 == 0, "none": None} for n, text in enumerate(texts)]
    response = {"data": {"rows": rows * 3, "big": -(10**30), "kéy😀": [[], {}]}, "errors": [{"message": "m"}]}
    encoded = json.dumps(response, separators=(",", ":")).encode()
    assert len(encoded) > 4 * limits.PART
    assert limits.encode_within(response, len(encoded)) == encoded
    assert limits.encode_within(response, len(encoded) - 1) is None


async def test_field_suggestions_only_in_development(
    gql: GraphQL, org: Org, settings: Settings, tmp_path: Path
) -> None:
    development = await gql(org.tokens[Role.AGENT], "{ viewer { nam } }")
    assert "Did you mean 'name'?" in development["errors"][0]["message"]
    production = Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path), "LEADLINE_ENV": "production", "SECRET_KEY": "k" * 40}
    )
    app = create_app(production, manage_resources=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as prod:
        response = await prod.post(
            "/graphql",
            json={"query": "{ viewer { nam } }"},
            headers={"Authorization": f"Bearer {org.tokens[Role.AGENT]}"},
        )
    message = response.json()["errors"][0]["message"]
    assert "nam" in message and "Did you mean" not in message


async def _connection_init(url: str, token: str | None) -> dict[str, object] | int:
    """The server's answer to connection_init: its first message, or the close code."""
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"} if token else {}})
        )
        try:
            answer: dict[str, object] = json.loads(await ws.recv())
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code
        return answer


async def test_websocket_clients_authenticate_in_connection_init(live_server: str, org: Org) -> None:
    url = live_server.replace("http://", "ws://") + "/graphql"
    assert await _connection_init(url, org.tokens[Role.AGENT]) == {"type": "connection_ack"}
    assert await _connection_init(url, None) == 4403
    assert await _connection_init(url, "ll_not-a-token") == 4403


async def test_only_the_graphql_transport_ws_protocol_is_offered(live_server: str, org: Org) -> None:
    url = live_server.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-ws")]) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4406


async def test_the_server_pings_an_idle_websocket_client(org: Org, settings: Settings, clock: FrozenClock) -> None:
    app = create_app(settings, clock=clock, manage_resources=False, ping_seconds=0.1)
    async with (
        serving(app) as url,
        connect(url.replace("http://", "ws://") + "/graphql", org.tokens[Role.AGENT]) as client,
    ):
        with pytest.raises(TimeoutError):
            await client.receive(seconds=0.5)  # nothing but pings, each answered
        assert client.pings >= 3


async def test_a_websocket_message_over_max_request_bytes_closes_the_socket(
    org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path), "MAX_REQUEST_BYTES": "4096"})
    app = create_app(settings, clock=clock, manage_resources=False)
    async with serving(app, **{**uvicorn_options(settings), "host": "127.0.0.1", "port": 0}) as url:
        url = url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": "x" * 4096}}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
