"""Domain errors name fields in the domain's words; the API shows them as input paths."""

from __future__ import annotations

from typing import Any

import pytest

from app import ids
from app.accounts.actor import Actor
from app.accounts.models import Role
from app.clock import FrozenClock
from app.errors import Code, InvalidInput, NotFound
from app.workflows import operations
from app.workflows.operations import OperationSpec, OperationType
from schema.context import input_path
from schema.errors import UserError
from schema.node import pk, pks
from tests.conftest import GraphQL, Org, mutate
from tests.factories import populate
from tests.test_sequences_api import make_prospects, make_sequence


def test_a_domain_field_becomes_the_input_path_clients_see() -> None:
    assert input_path(("prospect_ids", 3)) == ["input", "prospectIds", "3"]
    assert input_path(("steps", 0, "delay_seconds")) == ["input", "steps", "0", "delaySeconds"]
    assert input_path(("prospect_ids", 1), names={"prospect_ids": "ids"}) == ["input", "ids", "1"]
    assert input_path(("workflow_id",), under=()) == ["workflowId"]


def test_the_arguments_as_a_whole_and_no_argument_stay_apart() -> None:
    assert input_path(()) == ["input"]
    assert input_path(None) is None


def test_an_id_of_another_type_is_answered_like_an_unknown_one() -> None:
    assert pk("Prospect", ids.encode("Prospect", 7)) == 7
    unknown = pk("Prospect", "not an id")
    assert pk("Prospect", ids.encode("User", 7)) == unknown
    assert pks("Prospect", [ids.encode("Prospect", 1), "x"]) == [1, unknown]


def test_a_user_error_carries_the_domain_code_and_the_mapped_path() -> None:
    error = UserError.of(NotFound("Prospect", ("prospect_id",)), {"prospect_id": "id"})
    assert (error.code, error.message, error.field) == (Code.NOT_FOUND, "Prospect not found.", ["input", "id"])


@pytest.mark.parametrize(
    ("spec", "message", "path"),
    [
        (OperationSpec(OperationType.SET_STATUS), "SET_STATUS requires statusId.", "statusId"),
        (
            OperationSpec(OperationType.UNASSIGN, delay_seconds=5),
            "UNASSIGN does not take delaySeconds; it must be null.",
            "delaySeconds",
        ),
    ],
)
async def test_an_operation_fault_names_the_field_as_clients_write_it(
    spec: OperationSpec, message: str, path: str
) -> None:
    actor = Actor(organization_id=1, user_id=1, role=Role.ADMIN, clock=FrozenClock())
    with pytest.raises(InvalidInput) as error:
        await operations.validate(actor, [spec], ("operations",))
    assert error.value.message == message
    assert input_path(error.value.field) == ["input", "operations", "0", path]


async def test_the_enrollment_mutations_name_the_input_at_fault(gql: GraphQL, org: Org, clock: FrozenClock) -> None:
    await populate(org, clock)
    token = org.tokens[Role.MANAGER]
    sequence = await make_sequence(gql, org)
    [ada] = await make_prospects(gql, org, "Ada")

    def faults(payload: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
        return [(e["code"], e["message"], e["field"]) for e in payload["errors"]]

    enrolled = await mutate(
        gql, token, "enrollProspects", "enrollments { id }", sequenceId=sequence["id"], prospectIds=[ada, "nope"]
    )
    assert faults(enrolled) == [("NOT_FOUND", "Prospect not found.", ["input", "prospectIds", "1"])]
    no_sequence = await mutate(
        gql, token, "enrollProspects", "enrollments { id }", sequenceId=ids.encode("Sequence", 999), prospectIds=[ada]
    )
    assert faults(no_sequence) == [("NOT_FOUND", "Sequence not found.", ["input", "sequenceId"])]

    [enrollment] = enrolled["enrollments"]
    paused = await mutate(gql, token, "pauseEnrollments", "enrollments { id }", ids=["nope", ada, enrollment["id"]])
    assert faults(paused) == [
        ("NOT_FOUND", "Enrollment not found.", ["input", "ids", "0"]),
        ("NOT_FOUND", "Enrollment not found.", ["input", "ids", "1"]),  # a prospect's id
    ]
    jumped = await mutate(gql, token, "jumpEnrollments", "enrollments { id }", ids=[enrollment["id"]], position=9)
    assert faults(jumped) == [("INVALID_INPUT", "position must be between 1 and 3.", ["input", "position"])]
    activated = await mutate(gql, token, "setSequenceActive", "sequence { id }", id=ada, active=True)
    assert faults(activated) == [("NOT_FOUND", "Sequence not found.", ["input", "id"])]
