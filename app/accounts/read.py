"""What a viewer may read of accounts, and the tenant filter every read starts from.

Each organization is a tenant: a viewer reads only its own organization's rows.
Users and the organization are readable by every member; API tokens by ADMINs
only (another role reads none, revoked or not)."""

from __future__ import annotations

from typing import TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

from app.accounts.actor import Actor
from app.accounts.models import ApiToken, Organization, Role, User

M = TypeVar("M", bound=Model)


def of_organization(model: type[M], organization_id: int | None) -> QuerySet[M]:
    """The organization's rows of ``model`` (none without an organization)."""
    return model.filter(organization_id=organization_id)


def organizations(actor: Actor) -> QuerySet[Organization]:
    """The viewer's own organization: the only one it may read."""
    return Organization.filter(id=actor.organization_id)


async def viewer(actor: Actor) -> User:
    """The acting user: the row its token's look-up read when there is one (as fresh
    as the actor's role), so that ``{ viewer { id } }`` needs no query."""
    return actor.user if actor.user is not None else await User.get(id=actor.user_id)


def users(actor: Actor) -> QuerySet[User]:
    return of_organization(User, actor.organization_id)


def admin_only(actor: Actor, query: QuerySet[M]) -> QuerySet[M]:
    """``query`` for an ADMIN; for other roles, a query of nothing."""
    return query if actor.role is Role.ADMIN else query.filter(id__in=[])


def api_tokens(actor: Actor) -> QuerySet[ApiToken]:
    """The organization's API tokens, revoked ones too (ADMIN only)."""
    return admin_only(actor, of_organization(ApiToken, actor.organization_id))
