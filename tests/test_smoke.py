from __future__ import annotations

import httpx

from app.accounts.models import Role
from tests.conftest import GraphQL, Org

VIEWER = "query { viewer { name role } organization { name timeZone defaultStatus { name } } }"


async def test_a_request_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": VIEWER})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_the_viewer_is_the_tokens_user(gql: GraphQL, org: Org) -> None:
    body = await gql(org.tokens[Role.MANAGER], VIEWER)
    assert body == {
        "data": {
            "viewer": {"name": "Manager", "role": "MANAGER"},
            "organization": {"name": "Acme", "timeZone": "UTC", "defaultStatus": None},
        }
    }
