"""Stored operations parse once into typed operations, one class per type."""

from __future__ import annotations

from app.automation.operations import KINDS, Assign, FinishEnrollments, SendMessage, SetStatus, Unassign, parse
from app.prospects.models import Channel
from app.sequences.state import Stage
from app.workflows.operations import OperationType

NO_FIELDS = {"status_id": None, "user_id": None, "delay_seconds": None, "sequence_id": None, "outcome": None}


def test_every_operation_type_has_a_typed_operation() -> None:
    assert set(KINDS) == set(OperationType)


def test_the_stored_form_parses_into_typed_values() -> None:
    stored = [
        NO_FIELDS | {"type": "SET_STATUS", "status_id": 3},
        NO_FIELDS | {"type": "ASSIGN"},
        NO_FIELDS | {"type": "UNASSIGN"},
        NO_FIELDS | {"type": "FINISH_ENROLLMENTS", "outcome": "SUCCESS"},
        NO_FIELDS | {"type": "SEND_MESSAGE", "channel": "SMS", "subject": None, "body": "Hi {{ first_name }}"},
    ]

    parsed = parse(stored)

    assert parsed == [
        SetStatus(3),
        Assign(None),
        Unassign(),
        FinishEnrollments(Stage.SUCCESS),
        SendMessage(Channel.SMS, None, "Hi {{ first_name }}"),
    ]
    finish, send = parsed[3], parsed[4]
    assert isinstance(finish, FinishEnrollments) and finish.outcome is Stage.SUCCESS
    assert isinstance(send, SendMessage) and send.channel is Channel.SMS
