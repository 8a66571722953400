"""Operations: the steps an action or an automation rule performs, validated when saved.

Stored form (Action.operations, AutomationRule.operations): a list of dicts
``{"type", "status_id", "user_id", "delay_seconds"}`` with primary keys of the
same organization. They are run by app.automation.operations.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tortoise.models import Model

from app.accounts.actor import Actor
from app.accounts.models import User
from app.errors import Field, InvalidInput, NotFound
from app.prospects.models import Channel
from app.sequences import templates
from app.sequences.models import Sequence
from app.sequences.state import OUTCOMES, Stage
from app.workflows.models import Status

MAX_OPERATIONS = 20
MAX_DELAY_SECONDS = 366 * 24 * 3600


class OperationType(StrEnum):
    SET_STATUS = "SET_STATUS"
    MARK_CONTACT_ATTEMPTED = "MARK_CONTACT_ATTEMPTED"
    MARK_CONTACT_MADE = "MARK_CONTACT_MADE"
    SCHEDULE_CALLBACK = "SCHEDULE_CALLBACK"
    MARK_DO_NOT_CONTACT = "MARK_DO_NOT_CONTACT"
    ASSIGN = "ASSIGN"
    UNASSIGN = "UNASSIGN"
    ENROLL_IN_SEQUENCE = "ENROLL_IN_SEQUENCE"
    FINISH_ENROLLMENTS = "FINISH_ENROLLMENTS"
    PAUSE_ENROLLMENTS = "PAUSE_ENROLLMENTS"
    RESUME_ENROLLMENTS = "RESUME_ENROLLMENTS"
    SEND_MESSAGE = "SEND_MESSAGE"


# Which fields each type takes, and which it requires.
_ACCEPTS: dict[OperationType, tuple[set[str], set[str]]] = {
    OperationType.SET_STATUS: ({"status_id"}, {"status_id"}),
    OperationType.MARK_CONTACT_ATTEMPTED: (set(), set()),
    OperationType.MARK_CONTACT_MADE: (set(), set()),
    OperationType.SCHEDULE_CALLBACK: ({"delay_seconds"}, {"delay_seconds"}),
    OperationType.MARK_DO_NOT_CONTACT: (set(), set()),
    OperationType.ASSIGN: ({"user_id"}, set()),
    OperationType.UNASSIGN: (set(), set()),
    OperationType.ENROLL_IN_SEQUENCE: ({"sequence_id"}, {"sequence_id"}),
    OperationType.FINISH_ENROLLMENTS: ({"outcome"}, {"outcome"}),
    OperationType.PAUSE_ENROLLMENTS: (set(), set()),
    OperationType.RESUME_ENROLLMENTS: (set(), set()),
    OperationType.SEND_MESSAGE: ({"channel", "subject", "body"}, {"channel", "body"}),
}
_FIELDS = ("status_id", "user_id", "delay_seconds", "sequence_id", "outcome", "channel", "subject", "body")
_SPOKEN = {"status_id": "statusId", "user_id": "userId", "delay_seconds": "delaySeconds", "sequence_id": "sequenceId"}
"""A field as the messages name it: as clients write it."""
_REFERENCES: tuple[tuple[str, type[Model], dict[str, Any]], ...] = (
    ("status_id", Status, {"deleted_at": None}),
    ("user_id", User, {}),
    ("sequence_id", Sequence, {}),
)
"""The fields that reference a row of the organization, checked in this order."""


@dataclass(frozen=True)
class OperationSpec:
    """An operation as it is given, ids as primary keys."""

    type: OperationType
    status_id: int | None = None
    user_id: int | None = None
    delay_seconds: int | None = None
    sequence_id: int | None = None
    outcome: Stage | None = None
    channel: Channel | None = None
    subject: str | None = None
    body: str | None = None


async def validate(actor: Actor, specs: Seq[OperationSpec], field: Field) -> list[dict[str, Any]]:
    """The stored form of ``specs``; InvalidInput / NotFound naming the first fault."""
    if len(specs) > MAX_OPERATIONS:
        raise InvalidInput(f"At most {MAX_OPERATIONS} operations.", field)
    stored = []
    for index, spec in enumerate(specs):
        at = (*field, index)
        accepts, requires = _ACCEPTS[spec.type]
        given = {name for name in _FIELDS if getattr(spec, name) is not None}
        for name in sorted(given - accepts):
            raise InvalidInput(
                f"{spec.type.value} does not take {_SPOKEN.get(name, name)}; it must be null.", (*at, name)
            )
        for name in sorted(requires - given):
            raise InvalidInput(f"{spec.type.value} requires {_SPOKEN.get(name, name)}.", (*at, name))
        for name, model, scope in _REFERENCES:
            pk = getattr(spec, name)
            if (
                pk is not None
                and not await model.filter(id=pk, organization_id=actor.organization_id, **scope).exists()
            ):
                raise NotFound(model.__name__, (*at, name))
        if spec.outcome is not None and spec.outcome not in OUTCOMES:
            names = ", ".join(sorted(OUTCOMES))
            raise InvalidInput(f"An enrollment outcome is one of {names}.", (*at, "outcome"))
        if spec.delay_seconds is not None and not 0 <= spec.delay_seconds <= MAX_DELAY_SECONDS:
            raise InvalidInput(f"delaySeconds must be between 0 and {MAX_DELAY_SECONDS}.", (*at, "delay_seconds"))
        stored.append(
            {
                "type": spec.type.value,
                "status_id": spec.status_id,
                "user_id": spec.user_id,
                "delay_seconds": spec.delay_seconds,
                "sequence_id": spec.sequence_id,
                "outcome": spec.outcome.value if spec.outcome else None,
                **_message(spec, at),
            }
        )
    return stored


def _message(spec: OperationSpec, at: Field) -> dict[str, Any]:
    """SEND_MESSAGE's channel and templates, checked like a step's (R4.1)."""
    if spec.type is not OperationType.SEND_MESSAGE:
        return {}
    if spec.channel not in (Channel.EMAIL, Channel.SMS):
        raise InvalidInput("SEND_MESSAGE sends by EMAIL or SMS.", (*at, "channel"))
    if spec.channel is Channel.EMAIL and not (spec.subject or "").strip():
        raise InvalidInput("An email needs a subject.", (*at, "subject"))
    if spec.channel is Channel.SMS and spec.subject is not None:
        raise InvalidInput("An SMS has no subject; it must be null.", (*at, "subject"))
    if not (spec.body or "").strip():
        raise InvalidInput("The body must not be empty.", (*at, "body"))
    return {
        "channel": spec.channel.value,
        "subject": templates.check(spec.subject, (*at, "subject")) if spec.subject else None,
        "body": templates.check(spec.body or "", (*at, "body")),
    }


def referenced_status_ids(operations: Seq[dict[str, Any]]) -> set[int]:
    return {op["status_id"] for op in operations if op.get("status_id") is not None}
