from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry

from app.workflows import service
from app.workflows.operations import OperationSpec
from schema.context import Info
from schema.enums import Channel, EnrollmentStage, Interaction, OperationType, SystemStatus, TriggerEvent
from schema.errors import UserError, guarded
from schema.node import global_id, optional_pk, pk, pks
from schema.workflows import types


@strawberry.input(
    description="Fields that an operation type does not use must be null; missing required ones are INVALID_INPUT."
)
class OperationInput:
    type: OperationType
    status_id: strawberry.ID | None = None
    user_id: strawberry.ID | None = None
    delay_seconds: int | None = None
    sequence_id: strawberry.ID | None = None
    outcome: EnrollmentStage | None = None
    channel: Channel | None = None
    subject: str | None = None
    body: str | None = None


def _specs(inputs: list[OperationInput] | None) -> list[OperationSpec] | None:
    if inputs is None:
        return None
    return [
        OperationSpec(
            type=op.type,
            status_id=optional_pk("Status", op.status_id),
            user_id=optional_pk("User", op.user_id),
            delay_seconds=op.delay_seconds,
            sequence_id=optional_pk("Sequence", op.sequence_id),
            outcome=op.outcome,
            channel=op.channel,
            subject=op.subject,
            body=op.body,
        )
        for op in inputs
    ]


@strawberry.input
class CreateWorkflowInput:
    name: str
    position: int | None = None


@strawberry.type
class CreateWorkflowPayload:
    workflow: types.Workflow | None = None
    errors: list[UserError]


@strawberry.input
class UpdateWorkflowInput:
    id: strawberry.ID
    name: str | None = None
    position: int | None = None


@strawberry.type
class UpdateWorkflowPayload:
    workflow: types.Workflow | None = None
    errors: list[UserError]


@strawberry.input(description="Fails with CONFLICT while its statuses hold prospects unless moveToStatusId is given.")
class DeleteWorkflowInput:
    id: strawberry.ID
    move_to_status_id: strawberry.ID | None = strawberry.field(
        default=None, description="A status in another workflow that receives the prospects."
    )


@strawberry.type
class DeleteWorkflowPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.input
class CreateStatusInput:
    workflow_id: strawberry.ID
    name: str
    system_status: SystemStatus
    pipeline_percent: int | None = None
    max_assignment_seconds: int | None = None
    position: int | None = None
    enrollment_outcome: EnrollmentStage | None = None


@strawberry.type
class CreateStatusPayload:
    status: types.Status | None = None
    errors: list[UserError]


@strawberry.input
class UpdateStatusInput:
    id: strawberry.ID
    name: str | None = None
    workflow_id: strawberry.ID | None = None
    system_status: SystemStatus | None = None
    pipeline_percent: int | None = None
    max_assignment_seconds: int | None = strawberry.field(
        default=strawberry.UNSET, description="Null removes the limit."
    )
    position: int | None = None
    enrollment_outcome: EnrollmentStage | None = strawberry.field(
        default=strawberry.UNSET, description="Null removes the outcome."
    )


@strawberry.type
class UpdateStatusPayload:
    status: types.Status | None = None
    errors: list[UserError]


@strawberry.input(description="Fails with CONFLICT while prospects are in the status unless moveToStatusId is given.")
class DeleteStatusInput:
    id: strawberry.ID
    move_to_status_id: strawberry.ID | None = None


@strawberry.type
class DeleteStatusPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.input
class CreateActionCategoryInput:
    name: str


@strawberry.type
class CreateActionCategoryPayload:
    action_category: types.ActionCategory | None = None
    errors: list[UserError]


@strawberry.input
class CreateActionInput:
    name: str
    category_id: strawberry.ID | None = None
    interactions: list[Interaction] | None = None
    available_in_status_ids: list[strawberry.ID] | None = None
    operations: list[OperationInput]


@strawberry.type
class CreateActionPayload:
    action: types.Action | None = None
    errors: list[UserError]


@strawberry.input
class UpdateActionInput:
    id: strawberry.ID
    name: str | None = None
    category_id: strawberry.ID | None = strawberry.field(default=strawberry.UNSET, description="Null: no category.")
    interactions: list[Interaction] | None = None
    available_in_status_ids: list[strawberry.ID] | None = None
    operations: list[OperationInput] | None = None


@strawberry.type
class UpdateActionPayload:
    action: types.Action | None = None
    errors: list[UserError]


@strawberry.input
class DeleteActionInput:
    id: strawberry.ID


@strawberry.type
class DeleteActionPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.input
class CreateAutomationRuleInput:
    name: str
    event: TriggerEvent
    status_id: strawberry.ID | None = None
    operations: list[OperationInput]
    enabled: bool | None = None
    channel: Channel | None = None
    stage: EnrollmentStage | None = None
    only_in_status_ids: list[strawberry.ID] | None = None


@strawberry.type
class CreateAutomationRulePayload:
    automation_rule: types.AutomationRule | None = None
    errors: list[UserError]


@strawberry.input
class UpdateAutomationRuleInput:
    id: strawberry.ID
    name: str | None = None
    enabled: bool | None = None
    status_id: strawberry.ID | None = None
    operations: list[OperationInput] | None = None
    channel: Channel | None = strawberry.field(default=strawberry.UNSET, description="Null removes the filter.")
    stage: EnrollmentStage | None = strawberry.field(default=strawberry.UNSET, description="Null removes the filter.")
    only_in_status_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="[] removes the condition."
    )


@strawberry.type
class UpdateAutomationRulePayload:
    automation_rule: types.AutomationRule | None = None
    errors: list[UserError]


@strawberry.input
class DeleteAutomationRuleInput:
    id: strawberry.ID


@strawberry.type
class DeleteAutomationRulePayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


def _deleted(type_name: str, pk: int) -> dict[str, Any]:
    return {"deleted_id": global_id(type_name, pk)}


def _unset_to(value: Any, default: Any, convert: Callable[[Any], Any] = lambda value: value) -> Any:
    return default if value is strawberry.UNSET else convert(value)


def _status_pks(status_ids: list[strawberry.ID] | None) -> list[int] | None:
    return None if status_ids is None else pks("Status", status_ids)


@strawberry.type
class WorkflowMutations:
    @strawberry.mutation
    async def create_workflow(self, info: Info, input: CreateWorkflowInput) -> CreateWorkflowPayload:
        async def run() -> dict[str, Any]:
            row = await service.create_workflow(actor=info.context.actor, name=input.name, position=input.position)
            return {"workflow": types.Workflow(row=row)}

        return await guarded(info, CreateWorkflowPayload, run)

    @strawberry.mutation
    async def update_workflow(self, info: Info, input: UpdateWorkflowInput) -> UpdateWorkflowPayload:
        async def run() -> dict[str, Any]:
            row = await service.update_workflow(
                actor=info.context.actor, workflow_id=pk("Workflow", input.id), name=input.name, position=input.position
            )
            return {"workflow": types.Workflow(row=row)}

        return await guarded(info, UpdateWorkflowPayload, run, {"workflow_id": "id"})

    @strawberry.mutation
    async def delete_workflow(self, info: Info, input: DeleteWorkflowInput) -> DeleteWorkflowPayload:
        async def run() -> dict[str, Any]:
            deleted = await service.delete_workflow(
                actor=info.context.actor,
                workflow_id=pk("Workflow", input.id),
                move_to_status_id=optional_pk("Status", input.move_to_status_id),
            )
            return _deleted("Workflow", deleted)

        # A status of the workflow that cannot go is named by the workflow's id.
        return await guarded(info, DeleteWorkflowPayload, run, {"workflow_id": "id", "status_id": "id"})

    @strawberry.mutation
    async def create_status(self, info: Info, input: CreateStatusInput) -> CreateStatusPayload:
        async def run() -> dict[str, Any]:
            row = await service.create_status(
                actor=info.context.actor,
                workflow_id=pk("Workflow", input.workflow_id),
                name=input.name,
                system_status=input.system_status,
                pipeline_percent=input.pipeline_percent,
                max_assignment_seconds=input.max_assignment_seconds,
                position=input.position,
                enrollment_outcome=input.enrollment_outcome,
            )
            return {"status": types.Status(row=row)}

        return await guarded(info, CreateStatusPayload, run)

    @strawberry.mutation
    async def update_status(self, info: Info, input: UpdateStatusInput) -> UpdateStatusPayload:
        async def run() -> dict[str, Any]:
            row = await service.update_status(
                actor=info.context.actor,
                status_id=pk("Status", input.id),
                name=input.name,
                workflow_id=optional_pk("Workflow", input.workflow_id),
                system_status=input.system_status,
                pipeline_percent=input.pipeline_percent,
                position=input.position,
                max_assignment_seconds=_unset_to(input.max_assignment_seconds, service.UNCHANGED),
                enrollment_outcome=_unset_to(input.enrollment_outcome, service.UNCHANGED),
            )
            return {"status": types.Status(row=row)}

        return await guarded(info, UpdateStatusPayload, run, {"status_id": "id"})

    @strawberry.mutation
    async def delete_status(self, info: Info, input: DeleteStatusInput) -> DeleteStatusPayload:
        async def run() -> dict[str, Any]:
            deleted = await service.delete_status(
                actor=info.context.actor,
                status_id=pk("Status", input.id),
                move_to_status_id=optional_pk("Status", input.move_to_status_id),
            )
            return _deleted("Status", deleted)

        return await guarded(info, DeleteStatusPayload, run, {"status_id": "id"})

    @strawberry.mutation
    async def create_action_category(self, info: Info, input: CreateActionCategoryInput) -> CreateActionCategoryPayload:
        async def run() -> dict[str, Any]:
            row = await service.create_category(actor=info.context.actor, name=input.name)
            return {"action_category": types.ActionCategory(row=row)}

        return await guarded(info, CreateActionCategoryPayload, run)

    @strawberry.mutation
    async def create_action(self, info: Info, input: CreateActionInput) -> CreateActionPayload:
        async def run() -> dict[str, Any]:
            row = await service.create_action(
                actor=info.context.actor,
                fields=service.ActionFields(
                    name=input.name,
                    category_id=optional_pk("ActionCategory", input.category_id),
                    interactions=input.interactions,
                    available_in_status_ids=_status_pks(input.available_in_status_ids),
                    operations=_specs(input.operations),
                ),
            )
            return {"action": types.Action(row=row)}

        return await guarded(info, CreateActionPayload, run)

    @strawberry.mutation
    async def update_action(self, info: Info, input: UpdateActionInput) -> UpdateActionPayload:
        async def run() -> dict[str, Any]:
            row = await service.update_action(
                actor=info.context.actor,
                action_id=pk("Action", input.id),
                fields=service.ActionFields(
                    name=input.name,
                    category_id=_unset_to(
                        input.category_id, service.UNCHANGED, lambda id: optional_pk("ActionCategory", id)
                    ),
                    interactions=input.interactions,
                    available_in_status_ids=_status_pks(input.available_in_status_ids),
                    operations=_specs(input.operations),
                ),
            )
            return {"action": types.Action(row=row)}

        return await guarded(info, UpdateActionPayload, run, {"action_id": "id"})

    @strawberry.mutation
    async def delete_action(self, info: Info, input: DeleteActionInput) -> DeleteActionPayload:
        async def run() -> dict[str, Any]:
            deleted = await service.delete_action(actor=info.context.actor, action_id=pk("Action", input.id))
            return _deleted("Action", deleted)

        return await guarded(info, DeleteActionPayload, run, {"action_id": "id"})

    @strawberry.mutation
    async def create_automation_rule(self, info: Info, input: CreateAutomationRuleInput) -> CreateAutomationRulePayload:
        async def run() -> dict[str, Any]:
            row = await service.create_rule(
                actor=info.context.actor,
                name=input.name,
                event=input.event,
                status_id=optional_pk("Status", input.status_id),
                operations=_specs(input.operations) or [],
                enabled=input.enabled,
                channel=_unset_to(input.channel, service.UNCHANGED),
                stage=_unset_to(input.stage, service.UNCHANGED),
                only_in_status_ids=_status_pks(input.only_in_status_ids) or [],
            )
            return {"automation_rule": types.AutomationRule(row=row)}

        return await guarded(info, CreateAutomationRulePayload, run)

    @strawberry.mutation
    async def update_automation_rule(self, info: Info, input: UpdateAutomationRuleInput) -> UpdateAutomationRulePayload:
        async def run() -> dict[str, Any]:
            row = await service.update_rule(
                actor=info.context.actor,
                rule_id=pk("AutomationRule", input.id),
                name=input.name,
                enabled=input.enabled,
                status_id=optional_pk("Status", input.status_id),
                operations=_specs(input.operations),
                channel=_unset_to(input.channel, service.UNCHANGED),
                stage=_unset_to(input.stage, service.UNCHANGED),
                only_in_status_ids=_status_pks(input.only_in_status_ids),
            )
            return {"automation_rule": types.AutomationRule(row=row)}

        return await guarded(info, UpdateAutomationRulePayload, run, {"rule_id": "id"})

    @strawberry.mutation
    async def delete_automation_rule(self, info: Info, input: DeleteAutomationRuleInput) -> DeleteAutomationRulePayload:
        async def run() -> dict[str, Any]:
            deleted = await service.delete_rule(actor=info.context.actor, rule_id=pk("AutomationRule", input.id))
            return _deleted("AutomationRule", deleted)

        return await guarded(info, DeleteAutomationRulePayload, run, {"rule_id": "id"})
