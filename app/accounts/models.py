from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    ADMIN = "ADMIN"
    MANAGER = "MANAGER"
    AGENT = "AGENT"


class Organization(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    time_zone = fields.CharField(max_length=64, default="UTC")
    phone_region = fields.CharField(max_length=2, default="US")
    # The Status new prospects get. A plain column, not a foreign key: a key would
    # make organization and status reference each other. Statuses are only ever
    # soft-deleted, and deleting the default one moves it (app.workflows.service).
    default_status_id = fields.IntField(null=True)
    pull_from_other_agents = fields.BooleanField(default=False)
    email_from = fields.CharField(max_length=320, null=True)
    sms_from = fields.CharField(max_length=32, null=True)
    postal_address = fields.TextField(null=True)
    # The last agent that round robin gave a prospect to: the rotation's place.
    round_robin_user_id = fields.IntField(null=True)
    # Its own names for enrollment stages, stage value → name (app.sequences.stage_names).
    # The database default fills the rows that were there before the column.
    stage_names: dict[str, str] = fields.JSONField(default=dict, db_default={})  # type: ignore[assignment]
    created_at = fields.DatetimeField()

    class Meta:
        table = "organization"


class IdentityKind(StrEnum):
    """What an organization sends from: its emailFrom, its smsFrom, a mailbox's
    address (MAILBOX also when that address is the emailFrom as well)."""

    EMAIL_FROM = "EMAIL_FROM"
    SMS_FROM = "SMS_FROM"
    MAILBOX = "MAILBOX"


class SendingIdentity(Model):
    """An address an organization sends from, held by that organization alone:
    ``address`` (an E.164 number, or a bare email address lower-cased) is unique
    across all organizations, so a reply, a STOP or a bounce sent to it has one
    organization to go to (app.accounts.identities)."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    kind = fields.CharEnumField(IdentityKind, max_length=16)
    address = fields.CharField(max_length=320, unique=True)

    organization_id: int

    class Meta:
        table = "sending_identity"


class User(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=320)
    role = fields.CharEnumField(Role, max_length=16)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    organization_id: int

    class Meta:
        table = "user"
        unique_together = (("organization", "email"),)


class ApiToken(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", on_delete=fields.CASCADE, related_name=False
    )
    name = fields.CharField(max_length=200)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    organization_id: int
    user_id: int

    class Meta:
        table = "api_token"
