"""Domain errors name fields in the domain's words; the API shows them as input paths."""

from __future__ import annotations

from app import ids
from app.errors import Code, NotFound
from schema.context import input_path
from schema.relay import UserError, pk, pks


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
