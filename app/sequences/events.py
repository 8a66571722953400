"""The event payloads of enrollments' stage changes (R10.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.events.log import event, gid
from app.events.models import EventType
from app.sequences.models import StageChange

STAGE_CHANGE_FIELDS = ("id", "organization_id", "enrollment_id", "from_stage", "to_stage", "cause", "reason", "at")


def stage_changed(change: StageChange, prospect_id: int, sequence_id: int) -> dict[str, Any]:
    return stage_changed_row({name: getattr(change, name) for name in STAGE_CHANGE_FIELDS}, prospect_id, sequence_id)


def stage_changed_row(change: Mapping[str, Any], prospect_id: int, sequence_id: int) -> dict[str, Any]:
    """The STAGE_CHANGED event of a stage change given as a row (STAGE_CHANGE_FIELDS)."""
    from_stage = change["from_stage"]
    data = {
        "stageChange": {
            "id": gid("StageChange", change["id"]),
            "enrollmentId": gid("Enrollment", change["enrollment_id"]),
            "sequenceId": gid("Sequence", sequence_id),
            "fromStage": from_stage.value if from_stage else None,
            "toStage": change["to_stage"].value,
            "cause": str(change["cause"]),
            "reason": change["reason"],
        }
    }
    return event(
        EventType.STAGE_CHANGED,
        change["organization_id"],
        change["at"],
        prospect_id,
        data,
        stage_change_id=change["id"],
    )
