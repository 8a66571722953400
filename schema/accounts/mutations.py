from __future__ import annotations

from typing import Any

import strawberry

from app import presets
from app.accounts import service, sessions
from app.accounts.models import Role
from schema.accounts import types
from schema.context import Info
from schema.enums import EnrollmentStage
from schema.errors import UserError, guarded
from schema.node import optional_pk, pk
from schema.workflows.types import Workflow


@strawberry.input
class StageNameInput:
    stage: EnrollmentStage
    name: str


@strawberry.input
class UpdateOrganizationInput:
    name: str | None = None
    time_zone: str | None = None
    default_status_id: strawberry.ID | None = None
    pull_from_other_agents: bool | None = None
    email_from: str | None = None
    sms_from: str | None = None
    postal_address: str | None = None
    phone_region: str | None = strawberry.field(
        default=None, description="Region for reading national phone numbers (ISO 3166 alpha-2)."
    )
    stage_names: list[StageNameInput] | None = strawberry.field(
        default=None, description="Replaces the whole list; [] clears it."
    )


@strawberry.type
class UpdateOrganizationPayload:
    organization: types.Organization | None = None
    errors: list[UserError]


@strawberry.input
class CreateUserInput:
    name: str
    email: str
    role: Role


@strawberry.type
class CreateUserPayload:
    user: types.User | None = None
    errors: list[UserError]


@strawberry.input(
    description="Changes a user (ADMIN). `active: false` deactivates it: its tokens stop "
    "authenticating and its open websockets close with 4403. The last active ADMIN stays one."
)
class UpdateUserInput:
    user_id: strawberry.ID
    name: str | None = None
    role: Role | None = None
    active: bool | None = None


@strawberry.type
class UpdateUserPayload:
    user: types.User | None = None
    errors: list[UserError]


@strawberry.input
class CreateApiTokenInput:
    name: str
    user_id: strawberry.ID | None = None


@strawberry.type(description="`token` is shown once, here, and never again.")
class CreateApiTokenPayload:
    api_token: types.ApiToken | None = None
    token: str | None = None
    errors: list[UserError]


@strawberry.input
class RevokeApiTokenInput:
    id: strawberry.ID


@strawberry.type
class RevokeApiTokenPayload:
    api_token: types.ApiToken | None = None
    errors: list[UserError]


@strawberry.input(
    description="Loads a named, ready-made configuration (workflows, statuses, actions, rules; sequences once they exist)."
)
class ApplyPresetInput:
    name: str


@strawberry.type
class ApplyPresetPayload:
    workflows: list[Workflow] = strawberry.field(default_factory=list)
    errors: list[UserError]


@strawberry.type
class AccountMutations:
    @strawberry.mutation
    async def update_organization(self, info: Info, input: UpdateOrganizationInput) -> UpdateOrganizationPayload:
        async def run() -> dict[str, Any]:
            org = await service.update_organization(
                actor=info.context.actor,
                changes=service.OrganizationChanges(
                    name=input.name,
                    time_zone=input.time_zone,
                    default_status_id=optional_pk("Status", input.default_status_id),
                    pull_from_other_agents=input.pull_from_other_agents,
                    email_from=input.email_from,
                    sms_from=input.sms_from,
                    postal_address=input.postal_address,
                    phone_region=input.phone_region,
                    stage_names=None
                    if input.stage_names is None
                    else [(entry.stage.value, entry.name) for entry in input.stage_names],
                ),
                settings=info.context.settings,
            )
            return {"organization": types.Organization(row=org)}

        return await guarded(info, UpdateOrganizationPayload, run)

    @strawberry.mutation
    async def create_user(self, info: Info, input: CreateUserInput) -> CreateUserPayload:
        async def run() -> dict[str, Any]:
            user = await service.create_user(
                actor=info.context.actor, name=input.name, email=input.email, role=input.role
            )
            return {"user": types.User(row=user)}

        return await guarded(info, CreateUserPayload, run)

    @strawberry.mutation
    async def update_user(self, info: Info, input: UpdateUserInput) -> UpdateUserPayload:
        async def run() -> dict[str, Any]:
            update = await service.update_user(
                actor=info.context.actor,
                user_id=pk("User", input.user_id),
                name=input.name,
                role=input.role,
                active=input.active,
            )
            if update.ended_token_ids:  # committed: every API process closes their websockets
                await sessions.announce(info.context.state.redis, token_ids=update.ended_token_ids)
            return {"user": types.User(row=update.user)}

        return await guarded(info, UpdateUserPayload, run)

    @strawberry.mutation
    async def create_api_token(self, info: Info, input: CreateApiTokenInput) -> CreateApiTokenPayload:
        async def run() -> dict[str, Any]:
            token, row = await service.create_token(
                actor=info.context.actor, name=input.name, user_id=optional_pk("User", input.user_id)
            )
            return {"api_token": types.ApiToken(row=row), "token": token}

        return await guarded(info, CreateApiTokenPayload, run)

    @strawberry.mutation
    async def revoke_api_token(self, info: Info, input: RevokeApiTokenInput) -> RevokeApiTokenPayload:
        async def run() -> dict[str, Any]:
            row = await service.revoke_token(actor=info.context.actor, token_id=pk("ApiToken", input.id))
            # Committed: every API process now closes the token's websockets.
            await sessions.announce(info.context.state.redis, token_ids=[row.id])
            return {"api_token": types.ApiToken(row=row)}

        return await guarded(info, RevokeApiTokenPayload, run, {"token_id": "id"})

    @strawberry.mutation
    async def apply_preset(self, info: Info, input: ApplyPresetInput) -> ApplyPresetPayload:
        async def run() -> dict[str, Any]:
            rows = await presets.apply(actor=info.context.actor, name=input.name)
            return {"workflows": [Workflow(row=w) for w in rows]}

        return await guarded(info, ApplyPresetPayload, run)
