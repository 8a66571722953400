"""R1: organization settings, users and API tokens through the API."""

from __future__ import annotations

import httpx
import pytest

from app import caps, ids
from app.accounts.models import ApiToken, Organization, Role, User
from app.clock import FrozenClock
from app.workflows.models import Status
from tests.conftest import GraphQL, Org, mutate
from tests.factories import populate


async def test_update_organization_validates_and_saves(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    own = await populate(org, clock)
    payload = await mutate(
        gql,
        org.tokens[Role.ADMIN],
        "updateOrganization",
        "organization { name timeZone defaultStatus { name } emailFrom smsFrom postalAddress pullFromOtherAgents }",
        name=" Acme Sales ",
        timeZone="America/New_York",
        defaultStatusId=own["Status"],
        emailFrom="Sales@ACME.example",
        smsFrom="(202) 555-0143",
        postalAddress="1 Main St",
        pullFromOtherAgents=True,
    )
    assert payload == {
        "errors": [],
        "organization": {
            "name": "Acme Sales",
            "timeZone": "America/New_York",
            "defaultStatus": {"name": "Attempting Contact"},
            "emailFrom": "sales@acme.example",
            "smsFrom": "+12025550143",
            "postalAddress": "1 Main St",
            "pullFromOtherAgents": True,
        },
    }
    saved = await Organization.get(id=org.id)
    assert (saved.time_zone, saved.sms_from) == ("America/New_York", "+12025550143")


async def test_update_organization_rejects_bad_values_and_changes_nothing(gql: GraphQL, org: Org) -> None:
    cases = [
        ({"timeZone": "Mars/Olympus"}, "INVALID_INPUT", "timeZone"),
        ({"emailFrom": "not an address"}, "INVALID_INPUT", "emailFrom"),
        ({"smsFrom": "12"}, "INVALID_INPUT", "smsFrom"),
        ({"name": "  "}, "INVALID_INPUT", "name"),
        ({"defaultStatusId": ids.encode("Status", 999)}, "NOT_FOUND", "defaultStatusId"),
    ]
    for values, code, field in cases:
        payload = await mutate(gql, org.tokens[Role.ADMIN], "updateOrganization", "organization { name }", **values)
        assert payload["organization"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, ["input", field])]
    saved = await Organization.get(id=org.id)
    assert (saved.name, saved.time_zone, saved.email_from) == ("Acme", "UTC", None)


async def test_create_user_and_its_errors(gql: GraphQL, org: Org) -> None:
    payload = await mutate(
        gql,
        org.tokens[Role.ADMIN],
        "createUser",
        "user { name email role active }",
        name="Dana",
        email="dana@acme.example",
        role="AGENT",
    )
    assert payload == {
        "errors": [],
        "user": {"name": "Dana", "email": "dana@acme.example", "role": "AGENT", "active": True},
    }
    again = await mutate(
        gql,
        org.tokens[Role.ADMIN],
        "createUser",
        "user { name }",
        name="Dana 2",
        email="DANA@acme.example",
        role="AGENT",
    )
    bad = await mutate(gql, org.tokens[Role.ADMIN], "createUser", "user { name }", name="X", email="x@", role="AGENT")
    assert [e["code"] for e in again["errors"]] == ["CONFLICT"]
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", ["input", "email"])]
    assert await User.filter(organization_id=org.id).count() == 4


async def test_tokens_are_shown_once_record_use_and_can_be_revoked(
    gql: GraphQL, org: Org, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    created = await mutate(
        gql,
        org.tokens[Role.ADMIN],
        "createApiToken",
        "token apiToken { id name user { role } lastUsedAt revokedAt }",
        name="dialer",
        userId=org.user_gid(Role.AGENT),
    )
    token, token_id = created["token"], created["apiToken"]["id"]
    assert created["apiToken"]["user"] == {"role": "AGENT"} and created["apiToken"]["lastUsedAt"] is None
    row = await ApiToken.get(id=ids.decode_as("ApiToken", token_id))
    assert token not in (row.token_hash, row.name) and len(row.token_hash) == 64

    clock.advance(120)
    viewer = await gql(token, "{ viewer { role } }")
    listed = await gql(org.tokens[Role.ADMIN], "{ apiTokens { id lastUsedAt } }")
    assert viewer == {"data": {"viewer": {"role": "AGENT"}}}
    assert {"id": token_id, "lastUsedAt": clock.now().isoformat()} in listed["data"]["apiTokens"]

    revoked = await mutate(gql, org.tokens[Role.ADMIN], "revokeApiToken", "apiToken { revokedAt }", id=token_id)
    again = await mutate(gql, org.tokens[Role.ADMIN], "revokeApiToken", "apiToken { revokedAt }", id=token_id)
    assert revoked["apiToken"]["revokedAt"] == again["apiToken"]["revokedAt"] == clock.now().isoformat()
    after = await gql(org.tokens[Role.ADMIN], "query($id: ID!) { apiTokens { id } node(id: $id) { id } }", id=token_id)
    assert {"id": token_id} not in after["data"]["apiTokens"] and after["data"]["node"] == {"id": token_id}
    response = await client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


async def test_revoking_a_token_makes_room_for_another(gql: GraphQL, org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caps, "MAX_ACTIVE_TOKENS", 3)  # the org's three tokens, one per role
    full = await mutate(gql, org.tokens[Role.ADMIN], "createApiToken", "token", name="dialer")
    agent = (await ApiToken.get(name="AGENT", organization_id=org.id)).id
    await mutate(gql, org.tokens[Role.ADMIN], "revokeApiToken", "__typename", id=ids.encode("ApiToken", agent))
    room = await mutate(gql, org.tokens[Role.ADMIN], "createApiToken", "token", name="dialer")
    assert [(e["code"], e["field"]) for e in full["errors"]] == [("CONFLICT", ["input"])]
    assert room["errors"] == [] and room["token"].startswith("ll_")


async def test_token_errors(gql: GraphQL, org: Org) -> None:
    unknown_user = await mutate(
        gql, org.tokens[Role.ADMIN], "createApiToken", "token", name="x", userId=ids.encode("User", 999)
    )
    unknown_token = await mutate(
        gql, org.tokens[Role.ADMIN], "revokeApiToken", "apiToken { id }", id=ids.encode("ApiToken", 999)
    )
    empty_name = await mutate(gql, org.tokens[Role.ADMIN], "createApiToken", "token", name=" ")
    assert unknown_user == {
        "token": None,
        "errors": [{"code": "NOT_FOUND", "message": "User not found.", "field": ["input", "userId"]}],
    }
    assert [e["code"] for e in unknown_token["errors"]] == ["NOT_FOUND"]
    assert [e["code"] for e in empty_name["errors"]] == ["INVALID_INPUT"]
    assert await ApiToken.filter(organization_id=org.id).count() == 3


async def test_a_default_status_is_set_by_the_first_status(gql: GraphQL, org: Org) -> None:
    workflow = await mutate(gql, org.tokens[Role.MANAGER], "createWorkflow", "workflow { id }", name="Pipeline")
    await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "createStatus",
        "status { id }",
        workflowId=workflow["workflow"]["id"],
        name="Fresh",
        systemStatus="NEW",
    )
    saved = await Organization.get(id=org.id)
    assert saved.default_status_id == (await Status.get(name="Fresh")).id


USER = "user { name role active }"


async def test_an_admin_renames_changes_the_role_of_and_deactivates_a_user(
    gql: GraphQL, client: httpx.AsyncClient, org: Org
) -> None:
    agent = org.user_gid(Role.AGENT)
    payload = await mutate(gql, org.tokens[Role.ADMIN], "updateUser", USER, userId=agent, name=" Ada ", role="MANAGER")
    assert payload == {"errors": [], "user": {"name": "Ada", "role": "MANAGER", "active": True}}

    payload = await mutate(gql, org.tokens[Role.ADMIN], "updateUser", USER, userId=agent, active=False)
    assert payload == {"errors": [], "user": {"name": "Ada", "role": "MANAGER", "active": False}}
    # its token no longer authenticates
    response = await client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": f"Bearer {org.tokens[Role.AGENT]}"}
    )
    assert response.status_code == 401

    payload = await mutate(gql, org.tokens[Role.ADMIN], "updateUser", USER, userId=agent, active=True)
    assert payload["user"]["active"] is True
    assert (await gql(org.tokens[Role.AGENT], "{ viewer { name } }"))["data"] == {"viewer": {"name": "Ada"}}


async def test_update_user_refusals_change_nothing(gql: GraphQL, org: Org, other_org: Org) -> None:
    admin = org.user_gid(Role.ADMIN)
    cases = [
        (org.tokens[Role.ADMIN], {"userId": admin, "active": False}, "CONFLICT", "active"),
        (org.tokens[Role.ADMIN], {"userId": admin, "role": "AGENT"}, "CONFLICT", "role"),
        (org.tokens[Role.ADMIN], {"userId": admin, "name": " "}, "INVALID_INPUT", "name"),
        (org.tokens[Role.ADMIN], {"userId": other_org.user_gid(Role.AGENT), "active": False}, "NOT_FOUND", "userId"),
        (org.tokens[Role.MANAGER], {"userId": org.user_gid(Role.AGENT), "active": False}, "FORBIDDEN", None),
    ]
    for token, values, code, field in cases:
        payload = await mutate(gql, token, "updateUser", USER, **values)
        assert payload["user"] is None
        assert [(e["code"], e["field"][-1] if e["field"] else None) for e in payload["errors"]] == [(code, field)]
    users = await User.filter(organization_id__in=[org.id, other_org.id]).values_list("name", "role", "active")
    assert all(active for _, _, active in users)
    assert ("Admin", Role.ADMIN, True) in users


async def test_a_second_admin_may_demote_the_first(gql: GraphQL, org: Org) -> None:
    await mutate(gql, org.tokens[Role.ADMIN], "updateUser", USER, userId=org.user_gid(Role.MANAGER), role="ADMIN")
    payload = await mutate(
        gql, org.tokens[Role.MANAGER], "updateUser", USER, userId=org.user_gid(Role.ADMIN), role="MANAGER"
    )
    assert payload == {"errors": [], "user": {"name": "Admin", "role": "MANAGER", "active": True}}
