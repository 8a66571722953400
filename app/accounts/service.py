"""Organizations, users and API tokens.

Invariants: a token is shown once (the return value of ``create_token``) and
stored only as its SHA-256; a revoked token never authenticates again; users
are never deleted, only deactivated, so history keeps its actors.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from tortoise.transactions import in_transaction

from app import caps, validation
from app.accounts import identities
from app.accounts.actor import Actor
from app.accounts.models import ApiToken, IdentityKind, Organization, Role, User
from app.clock import Clock
from app.config import Settings
from app.errors import Conflict, Field, InvalidInput, NotFound
from app.workflows.models import Status

TOKEN_PREFIX = "ll_"
LAST_USED_RESOLUTION = timedelta(seconds=60)
"""lastUsedAt is written at most once a minute per token: one write, not one per request."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewOrganization:
    organization: Organization
    admin: User
    token: str


async def create_organization(*, name: str, admin_email: str, admin_name: str | None, clock: Clock) -> NewOrganization:
    """A new organization with its first ADMIN and an API token for that admin."""
    org_name = validation.name(name, ("name",))
    email = validation.email(admin_email, ("admin_email",)).lower()
    now = clock.now()
    async with in_transaction():
        org = await Organization.create(name=org_name, created_at=now)
        admin = await User.create(
            organization=org,
            name=validation.name(admin_name or email.split("@")[0], ("admin_name",)),
            email=email,
            role=Role.ADMIN,
            created_at=now,
        )
        token, _ = await _new_token(org.id, admin.id, "admin", clock)
    return NewOrganization(org, admin, token)


async def _new_token(organization_id: int, user_id: int, name: str, clock: Clock) -> tuple[str, ApiToken]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await ApiToken.create(
        organization_id=organization_id,
        user_id=user_id,
        name=name,
        token_hash=hash_token(token),
        created_at=clock.now(),
    )
    return token, row


AUTHENTICATED_SECONDS = 1.0
"""How long an API process trusts a token it found valid without asking the database
again. Revoking a token or deactivating or demoting its user forgets it at once in
the process that did it and, through the revocation announcement on Redis, in those
holding websockets (app/accounts/sessions.py); a change this process does not hear
of (no websocket open, Redis away, a role changed elsewhere) holds within this time."""
AUTHENTICATED_MOST = 10_000
"""Tokens remembered at most (an API process serves a few): the oldest go first."""


@dataclass(frozen=True)
class _Known:
    until: float
    organization_id: int
    user: User
    token_id: int


_known: dict[str, _Known] = {}
"""Tokens found valid, by hash, until ``until`` (time.monotonic())."""


class _Forgetting:
    generation = 0
    """Counts the calls of forget_tokens: a look-up that one overlapped is not remembered."""


_forgetting = _Forgetting()


def forget_tokens(token_ids: Iterable[int] | None = None) -> None:
    """Forgets these valid tokens (all, when None): they are looked up again on next use."""
    _forgetting.generation += 1
    if token_ids is None:
        _known.clear()
        return
    gone = set(token_ids)
    for key in [key for key, known in _known.items() if known.token_id in gone]:
        del _known[key]


async def authenticate(token: str, clock: Clock) -> Actor | None:
    """The actor a bearer token stands for, or None (unknown, revoked, inactive user).
    A valid token is remembered for AUTHENTICATED_SECONDS: one look-up a second
    per token rather than one per request."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    key = hash_token(token)
    known = _known.get(key)
    if known is not None and known.until > time.monotonic():
        return _actor(known.organization_id, known.user, known.token_id, clock)
    looked_up, generation = time.monotonic(), _forgetting.generation
    row = await ApiToken.get_or_none(token_hash=key, revoked_at=None).select_related("user")
    if row is None or not row.user.active:
        _known.pop(key, None)
        return None
    now = clock.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        await ApiToken.filter(id=row.id).update(last_used_at=now)
    if generation == _forgetting.generation:  # else a revocation came meanwhile: not remembered
        _known.pop(key, None)
        while len(_known) >= AUTHENTICATED_MOST:
            del _known[next(iter(_known))]
        _known[key] = _Known(looked_up + AUTHENTICATED_SECONDS, row.organization_id, row.user, row.id)
    return _actor(row.organization_id, row.user, row.id, clock)


def _actor(organization_id: int, user: User, token_id: int, clock: Clock) -> Actor:
    return Actor(
        organization_id=organization_id, user_id=user.id, role=user.role, clock=clock, token_id=token_id, user=user
    )


async def get_user(actor: Actor, user_id: int, field: Field) -> User:
    user = await User.get_or_none(id=user_id, organization_id=actor.organization_id)
    if user is None:
        raise NotFound("User", field)
    return user


async def create_user(*, actor: Actor, name: str, email: str, role: Role) -> User:
    actor.require_admin()
    clean_name = validation.name(name, ("name",))
    clean_email = validation.email(email, ("email",)).lower()  # logins are case-blind
    async with in_transaction():
        if await User.filter(organization_id=actor.organization_id, email=clean_email).exists():
            raise Conflict("A user with this email already exists.", ("email",))
        await caps.room_for_user(actor.organization_id)
        return await User.create(
            organization_id=actor.organization_id,
            name=clean_name,
            email=clean_email,
            role=role,
            created_at=actor.now(),
        )


async def create_token(*, actor: Actor, name: str, user_id: int | None) -> tuple[str, ApiToken]:
    """A new token for ``user_id`` (default: the actor). The plain token is returned once."""
    actor.require_admin()
    clean_name = validation.name(name, ("name",))
    if user_id is not None:
        user = await get_user(actor, user_id, ("user_id",))
    elif actor.user_id is not None:
        user = await User.get(id=actor.user_id)
    else:
        raise InvalidInput("userId is required.", ("user_id",))
    if not user.active:
        raise InvalidInput("The user is not active.", ("user_id",))
    async with in_transaction():
        await caps.room_for_token(actor.organization_id)
        return await _new_token(actor.organization_id, user.id, clean_name, actor.clock)


async def revoke_token(*, actor: Actor, token_id: int) -> ApiToken:
    """Revokes a token; revoking it again changes nothing."""
    actor.require_admin()
    row = await ApiToken.get_or_none(id=token_id, organization_id=actor.organization_id)
    if row is None:
        raise NotFound("API token", ("token_id",))
    if row.revoked_at is None:
        row.revoked_at = actor.now()
        await ApiToken.filter(id=row.id, revoked_at=None).update(revoked_at=row.revoked_at)
    forget_tokens([row.id])
    return row


@dataclass(frozen=True)
class UserUpdate:
    user: User
    ended_token_ids: list[int]
    """The user's live tokens when it was deactivated: their sessions end now."""


async def update_user(
    *, actor: Actor, user_id: int, name: str | None = None, role: Role | None = None, active: bool | None = None
) -> UserUpdate:
    """Renames a user, changes its role, or deactivates it (its tokens stop
    authenticating) or reactivates it. The organization keeps at least one active
    ADMIN: demoting or deactivating the last one is CONFLICT."""
    actor.require_admin()
    async with in_transaction():
        user = await get_user(actor, user_id, ("user_id",))
        user = await User.filter(id=user.id).select_for_update().get()
        if name is not None:
            user.name = validation.name(name, ("name",))
        stays_admin = (role or user.role) is Role.ADMIN and (user.active if active is None else active)
        if user.role is Role.ADMIN and user.active and not stays_admin:
            admins = await User.filter(
                organization_id=actor.organization_id, role=Role.ADMIN, active=True
            ).select_for_update()
            if len(admins) <= 1:
                field = "active" if active is False else "role"
                raise Conflict("The organization's last active ADMIN cannot be demoted or deactivated.", (field,))
        was_active = user.active
        if role is not None:
            user.role = role
        if active is not None:
            user.active = active
        await user.save()
        ended: list[int] = []
        if was_active and not user.active:
            ended = await ApiToken.filter(user_id=user.id, revoked_at=None).values_list("id", flat=True)  # type: ignore[assignment]
    forget_tokens()  # committed: its tokens are looked up again, with the new name or role, or not at all
    return UserUpdate(user=user, ended_token_ids=ended)


@dataclass
class OrganizationChanges:
    name: str | None = None
    time_zone: str | None = None
    default_status_id: int | None = None
    pull_from_other_agents: bool | None = None
    email_from: str | None = None
    sms_from: str | None = None
    postal_address: str | None = None
    phone_region: str | None = None
    stage_names: Sequence[tuple[str, str]] | None = None
    """(stage, name) pairs replacing the whole list; stages are EnrollmentStage values."""


MAX_STAGE_NAME = 100


def stage_names(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The organization's stage names, stage → name: each stage at most once, each
    name trimmed, non-empty and at most MAX_STAGE_NAME characters. Several stages
    may share a name (seed 001 reads UNSUBSCRIBED and OPTED_OUT both "Opted out")."""
    names: dict[str, str] = {}
    for index, (stage, name) in enumerate(pairs):
        if stage in names:
            raise InvalidInput(
                f"{stage} is named twice: name each stage at most once.", ("stage_names", index, "stage")
            )
        names[stage] = validation.name(name, ("stage_names", index, "name"), max_length=MAX_STAGE_NAME)
    return names


async def update_organization(*, actor: Actor, changes: OrganizationChanges, settings: Settings) -> Organization:
    """Changes the organization's settings in one transaction. Its emailFrom and
    smsFrom are sending identities: one another organization holds is CONFLICT;
    an emailFrom at Leadline's own mail domain (``settings.sender_domain``) is
    INVALID_INPUT. ``stage_names`` replaces the whole list of stage names."""
    actor.require_admin()
    async with in_transaction():
        org = await Organization.filter(id=actor.organization_id).select_for_update().get()
        if changes.name is not None:
            org.name = validation.name(changes.name, ("name",))
        if changes.time_zone is not None:
            org.time_zone = validation.time_zone(changes.time_zone, ("time_zone",))
        if changes.phone_region is not None:
            org.phone_region = validation.region(changes.phone_region, ("phone_region",))
        if changes.default_status_id is not None:
            status = await Status.get_or_none(id=changes.default_status_id, organization_id=org.id, deleted_at=None)
            if status is None:
                raise NotFound("Status", ("default_status_id",))
            org.default_status_id = status.id
        if changes.pull_from_other_agents is not None:
            org.pull_from_other_agents = changes.pull_from_other_agents
        if changes.email_from is not None:
            email_field = ("email_from",)
            org.email_from = validation.email(changes.email_from, email_field) if changes.email_from else None
            if org.email_from is not None:
                identities.refuse_own_domain(org.email_from, own_domain=settings.sender_domain, field=email_field)
            await identities.claim(
                organization_id=org.id, kind=IdentityKind.EMAIL_FROM, address=org.email_from, field=email_field
            )
        if changes.sms_from is not None:
            sms_field = ("sms_from",)
            org.sms_from = validation.phone(changes.sms_from, org.phone_region, sms_field) if changes.sms_from else None
            await identities.claim(
                organization_id=org.id, kind=IdentityKind.SMS_FROM, address=org.sms_from, field=sms_field
            )
        if changes.postal_address is not None:
            org.postal_address = validation.optional_text(  # type: ignore[assignment]
                changes.postal_address, ("postal_address",), max_length=1000
            )
        if changes.stage_names is not None:
            org.stage_names = stage_names(changes.stage_names)
        await org.save()
    return org
