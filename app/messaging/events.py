"""The event payloads of messages: sent, received, bounced (R10.1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.events.log import event, gid
from app.events.models import EventType
from app.messaging.models import Message


def message_event(type_: EventType, message: Message, at: datetime) -> dict[str, Any]:
    data = {
        "message": {
            "id": gid("Message", message.id),
            "channel": message.channel.value,
            "direction": message.direction.value,
            "state": message.state.value,
            "enrollmentId": gid("Enrollment", message.enrollment_id),
            "autoReply": message.auto_reply,
            "bounceType": message.bounce_type.value if message.bounce_type else None,
        }
    }
    return event(type_, message.organization_id, at, message.prospect_id, data, message_id=message.id)
