"""Query fields of accounts: the viewer, its organization, users, API tokens."""

from __future__ import annotations

import strawberry

from app.accounts import models as accounts
from schema.accounts.types import ApiToken, Organization, User
from schema.context import Info
from schema.node import Node, NodeReader


async def _organization(info: Info, pk: int) -> Node | None:
    org = info.context.actor.organization_id
    return Organization(row=await accounts.Organization.get(id=org)) if pk == org else None


async def _user(info: Info, pk: int) -> Node | None:
    user = await accounts.User.get_or_none(id=pk, organization_id=info.context.actor.organization_id)
    return User(row=user) if user else None


async def _api_token(info: Info, pk: int) -> Node | None:
    actor = info.context.actor
    token = await accounts.ApiToken.get_or_none(id=pk, organization_id=actor.organization_id)
    return ApiToken(row=token) if token and actor.role is accounts.Role.ADMIN else None


NODES: dict[str, NodeReader] = {"Organization": _organization, "User": _user, "ApiToken": _api_token}


@strawberry.type
class AccountQueries:
    @strawberry.field
    async def viewer(self, info: Info) -> User:
        user = await accounts.User.get(id=info.context.actor.user_id)
        return User(row=user)

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return Organization(row=await accounts.Organization.get(id=info.context.actor.organization_id))

    @strawberry.field
    async def users(self, info: Info) -> list[User]:
        rows = await accounts.User.filter(organization_id=info.context.actor.organization_id).order_by("id")
        return [User(row=r) for r in rows]

    @strawberry.field(
        description="The organization's API tokens not revoked (ADMIN only; empty for other roles). "
        "A revoked token is still read by `node`."
    )
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        actor = info.context.actor
        if actor.role is not accounts.Role.ADMIN:
            return []
        # Revoked tokens pile up without end; the ones in use are capped (app/caps.py).
        rows = await accounts.ApiToken.filter(organization_id=actor.organization_id, revoked_at=None).order_by("id")
        return [ApiToken(row=r) for r in rows]
