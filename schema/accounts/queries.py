"""Query fields of accounts: the viewer, its organization, users, API tokens."""

from __future__ import annotations

import strawberry

from app.accounts import read
from schema.accounts.types import ApiToken, Organization, User
from schema.context import Info
from schema.node import Node, NodeReader


async def _organization(info: Info, pk: int) -> Node | None:
    row = await read.organizations(info.context.actor).get_or_none(id=pk)
    return Organization(row=row) if row else None


async def _user(info: Info, pk: int) -> Node | None:
    row = await read.users(info.context.actor).get_or_none(id=pk)
    return User(row=row) if row else None


async def _api_token(info: Info, pk: int) -> Node | None:
    row = await read.api_tokens(info.context.actor).get_or_none(id=pk)
    return ApiToken(row=row) if row else None


NODES: dict[str, NodeReader] = {"Organization": _organization, "User": _user, "ApiToken": _api_token}


@strawberry.type
class AccountQueries:
    @strawberry.field
    async def viewer(self, info: Info) -> User:
        return User(row=await read.viewer(info.context.actor))

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return Organization(row=await read.organizations(info.context.actor).get())

    @strawberry.field
    async def users(self, info: Info) -> list[User]:
        return [User(row=r) for r in await read.users(info.context.actor).order_by("id")]

    @strawberry.field(
        description="The organization's API tokens not revoked (ADMIN only; empty for other roles). "
        "A revoked token is still read by `node`."
    )
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        # Revoked tokens pile up without end; the ones in use are capped (app/caps.py).
        rows = await read.api_tokens(info.context.actor).filter(revoked_at=None).order_by("id")
        return [ApiToken(row=r) for r in rows]
