"""The API's enums: the domain's own Python enums, registered under the contract's names.

``strawberry.enum`` marks a class and returns it unchanged, so the schema and
the services share one enum class each and nothing needs converting."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

import strawberry
from strawberry.types.enum import has_enum_definition

from app.accounts.models import Role
from app.messaging.models import BounceType, Direction, MessageState
from app.prospects.models import ChangeCause, Channel, ConversationState, TaskKind
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
strawberry.enum(Direction)
strawberry.enum(MessageState)
strawberry.enum(BounceType)
strawberry.enum(ConversationState, description="Who sent the last message in the prospect's conversation.")


def _describe_values(enum: type[Enum], descriptions: Mapping[str, str]) -> None:
    """Gives values of an enum registered above the contract's descriptions (the
    domain's enum classes know nothing of GraphQL)."""
    assert has_enum_definition(enum)
    for value in enum.__strawberry_definition__.values:
        if value.name in descriptions:
            value.description = descriptions[value.name]


_describe_values(
    ChangeCause, {"OUT_OF_OFFICE": "An out-of-office reply paused or an expiring pause resumed the enrollment."}
)

__all__ = [
    "BounceType",
    "ChangeCause",
    "Channel",
    "ConversationState",
    "Direction",
    "EnrollmentStage",
    "Interaction",
    "MessageState",
    "OperationType",
    "Role",
    "StepType",
    "SystemStatus",
    "TaskKind",
    "TriggerEvent",
]
