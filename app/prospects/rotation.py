"""The round robin that hands prospects to an organization's active agents in
turn (R11), for distribution and for ASSIGN operations without a user."""

from __future__ import annotations

from tortoise.expressions import F

from app.accounts.models import Organization, Role, User
from app.errors import Conflict


async def lock_organization(organization_id: int) -> None:
    """The organization row's write lock, to the end of the caller's transaction
    (a Postgres row lock; on SQLite the database's write lock, taken before any
    read, so two transactions never read the same state and both write)."""
    await Organization.filter(id=organization_id).update(round_robin_user_id=F("round_robin_user_id"))


async def next_in_rotation(organization_id: int, count: int) -> list[int]:
    """The next ``count`` active agents in the organization's round robin.

    The rotation's place is kept on the organization row, locked here, so
    concurrent distributions neither skip an agent nor double up.
    """
    if count <= 0:
        return []
    await lock_organization(organization_id)
    org = await Organization.get(id=organization_id)
    agent_ids = [
        user.id
        for user in await User.filter(organization_id=organization_id, role=Role.AGENT, active=True)
        .order_by("id")
        .only("id")
    ]
    if not agent_ids:
        raise Conflict("There is no active agent to assign to.")
    last = org.round_robin_user_id
    start = next((i for i, a in enumerate(agent_ids) if last is not None and a > last), 0)
    picked = [agent_ids[(start + i) % len(agent_ids)] for i in range(count)]
    await Organization.filter(id=organization_id).update(round_robin_user_id=picked[-1])
    return picked
