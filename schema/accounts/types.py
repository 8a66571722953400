"""Organization, user and API token types."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.accounts import models as accounts
from app.sequences import stage_names
from schema.context import Info
from schema.enums import EnrollmentStage, Role
from schema.node import Node, global_id, lazy_type

if TYPE_CHECKING:
    from schema.workflows.types import Status

# A type above this module (it imports this one): named here, resolved when first used.
_WORKFLOWS = "schema.workflows.types"


@strawberry.type(
    description="An organization's own name for an enrollment stage, e.g. Upscale's 'Finished (Replied)' for REPLIED."
)
class StageName:
    stage: EnrollmentStage
    name: str


@strawberry.type
class Organization(Node):
    row: strawberry.Private[accounts.Organization]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Organization", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def time_zone(self) -> str:
        return self.row.time_zone

    @strawberry.field(description="Region for reading national phone numbers (ISO 3166 alpha-2).")
    def phone_region(self) -> str:
        return self.row.phone_region

    @strawberry.field
    async def default_status(self, info: Info) -> Annotated[Status, strawberry.lazy(_WORKFLOWS)] | None:
        if self.row.default_status_id is None:
            return None
        status_type: type[Status] = lazy_type(_WORKFLOWS, "Status")
        return status_type.wrap(await info.context.loaders.status.load(self.row.default_status_id))

    @strawberry.field
    def pull_from_other_agents(self) -> bool:
        return self.row.pull_from_other_agents

    @strawberry.field
    def email_from(self) -> str | None:
        return self.row.email_from

    @strawberry.field
    def sms_from(self) -> str | None:
        return self.row.sms_from

    @strawberry.field
    def postal_address(self) -> str | None:
        return self.row.postal_address

    @strawberry.field(
        description="The organization's names for enrollment stages (a preset sets them); stages not listed keep their own name."
    )
    def stage_names(self) -> list[StageName]:
        return [StageName(stage=stage, name=name) for stage, name in stage_names.listed(self.row.stage_names)]


@strawberry.type
class User(Node):
    row: strawberry.Private[accounts.User]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("User", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def email(self) -> str:
        return self.row.email

    @strawberry.field
    def role(self) -> Role:
        return self.row.role

    @strawberry.field
    def active(self) -> bool:
        return self.row.active

    @staticmethod
    def wrap(row: accounts.User | None) -> User | None:
        return User(row=row) if row is not None else None


async def load_user(info: Info, user_id: int | None) -> User | None:
    return None if user_id is None else User.wrap(await info.context.loaders.user.load(user_id))


@strawberry.type
class ApiToken(Node):
    row: strawberry.Private[accounts.ApiToken]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("ApiToken", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    async def user(self, info: Info) -> User:
        user = await load_user(info, self.row.user_id)
        assert user is not None
        return user

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def last_used_at(self) -> datetime | None:
        return self.row.last_used_at

    @strawberry.field
    def revoked_at(self) -> datetime | None:
        return self.row.revoked_at
