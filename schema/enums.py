"""The API's enums: the domain's own Python enums, registered under the contract's names.

``strawberry.enum`` marks a class and returns it unchanged, so the schema and
the services share one enum class each and nothing needs converting."""

from __future__ import annotations

import strawberry

from app.accounts.models import Role
from app.prospects.models import ChangeCause, Channel, TaskKind
from app.sequences.models import StepType
from app.sequences.state import Stage as EnrollmentStage
from app.workflows.models import Interaction, SystemStatus, TriggerEvent
from app.workflows.operations import OperationType

strawberry.enum(Role)
strawberry.enum(Channel)
strawberry.enum(Interaction, description="How a person interacted with a prospect when logging an activity.")
strawberry.enum(
    SystemStatus,
    description="Fixed categories that every configurable status maps to; used by reports and distribution.",
)
strawberry.enum(ChangeCause, description="What caused a change.")
strawberry.enum(OperationType)
strawberry.enum(TriggerEvent)
strawberry.enum(TaskKind)
strawberry.enum(
    EnrollmentStage, name="EnrollmentStage", description="Life-cycle stage of one prospect in one sequence."
)
strawberry.enum(StepType)

__all__ = [
    "ChangeCause",
    "Channel",
    "EnrollmentStage",
    "Interaction",
    "OperationType",
    "Role",
    "StepType",
    "SystemStatus",
    "TaskKind",
    "TriggerEvent",
]
