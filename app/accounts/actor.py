"""Who is acting: the organization, the user (None for the system) and the role.

Every service takes an Actor; it is the only way a service knows the
organization, so every query it makes is scoped by ``actor.organization_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.accounts.models import Role, User
from app.clock import Clock
from app.errors import Forbidden


@dataclass(frozen=True)
class Actor:
    organization_id: int
    user_id: int | None
    """None when the system acts (worker, CLI, automation started by them)."""
    role: Role
    clock: Clock
    token_id: int | None = None
    """The API token it authenticated with (None for the system)."""
    user: User | None = field(default=None, compare=False, repr=False)
    """The user's row as the token's look-up read it (at most AUTHENTICATED_SECONDS
    old, like the role), shared by the requests of that time: read it, never change it."""

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def is_agent(self) -> bool:
        return self.role is Role.AGENT

    def require_admin(self) -> None:
        """Organization settings, users and tokens (R1.3)."""
        if self.role is not Role.ADMIN:
            raise Forbidden("Only an ADMIN may do this.")

    def require_manager(self) -> None:
        """Configuration: workflows, statuses, actions, rules, sequences (R1.3)."""
        if self.role is Role.AGENT:
            raise Forbidden("Only a MANAGER or ADMIN may change configuration.")

    def may_work(self, owner_id: int | None) -> bool:
        """An AGENT reads and works only its own prospects and unassigned ones."""
        return not self.is_agent or owner_id is None or owner_id == self.user_id


def system_actor(organization_id: int, clock: Clock) -> Actor:
    return Actor(organization_id=organization_id, user_id=None, role=Role.ADMIN, clock=clock)
