"""Walks the served schema's inputs: which fields take ids, and valid sample inputs."""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    get_named_type,
)

from app import ids
from schema.build import build_schema

SCHEMA = build_schema()._schema
MUTATIONS = SCHEMA.mutation_type.fields  # type: ignore[union-attr]
SPECIAL_TYPES = {
    "owner": "User",
    "assignee": "User",
    "category": "ActionCategory",
    "availableInStatus": "Status",
    "keep": "Prospect",
    "merge": "Prospect",
    "inReplyTo": "Message",
}
UNKNOWN = {
    type_name: ids.encode(type_name, 987654)
    for type_name in (
        "Organization",
        "User",
        "ApiToken",
        "Sequence",
        "SequenceStep",
        "Enrollment",
        "StageChange",
        "Message",
        "Workflow",
        "Status",
        "ActionCategory",
        "Action",
        "AutomationRule",
        "Prospect",
        "Activity",
        "StatusChange",
        "Task",
        "Event",
        "WebhookEndpoint",
        "WebhookDelivery",
        "Suppression",
        "Mailbox",
    )
}


ID_OVERRIDES = {
    ("updateSequenceStep", "id"): "SequenceStep",
    ("removeSequenceStep", "id"): "SequenceStep",
    ("assignProspects", "ids"): "Prospect",
    ("unassignProspects", "ids"): "Prospect",
    ("pullProspect", "id"): "Prospect",
    ("removeSuppression", "id"): "Suppression",
    ("createAutomationRule", "onlyInStatusIds"): "Status",
    ("updateAutomationRule", "onlyInStatusIds"): "Status",
}


def id_type(field_name: str, mutation: str) -> str:
    """The entity type an ID input field names."""
    if (mutation, field_name) in ID_OVERRIDES:
        return ID_OVERRIDES[mutation, field_name]
    if field_name == "ids":
        return "Enrollment"
    if field_name == "id":
        if mutation.startswith("delete"):
            return mutation.removeprefix("delete")
        payload = get_named_type(MUTATIONS[mutation].type)
        entity = next(n for n in payload.fields if n not in ("errors", "token"))  # type: ignore[attr-defined]
        return entity[0].upper() + entity[1:]
    stem = field_name.removesuffix("Ids").removesuffix("Id")
    for prefix in ("moveTo", "default"):
        stem = stem.removeprefix(prefix)
    stem = stem[0].lower() + stem[1:]
    return SPECIAL_TYPES.get(stem, stem[0].upper() + stem[1:])


def unwrap(t: GraphQLInputType) -> tuple[GraphQLInputType, bool]:
    is_list = False
    while isinstance(t, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(t, GraphQLList)
        t = t.of_type
    return t, is_list


def sample(
    t: GraphQLInputType,
    mutation: str,
    name: str,
    own: dict[str, str],
    path: list[str],
    target: list[str],
    foreign: dict[str, str],
) -> Any:
    """A valid value for an input of type ``t``; the ID at ``target`` is the foreign one."""
    named, is_list = unwrap(t)
    if isinstance(named, GraphQLInputObjectType):
        value = _object(named, mutation, own, path + (["0"] if is_list else []), target, foreign)
    elif isinstance(named, GraphQLEnumType):
        value = next(iter(named.values))
    elif isinstance(named, GraphQLScalarType) and named.name == "ID":
        kind = id_type(name, mutation)
        value = (foreign if path + (["0"] if is_list else []) == target else own)[kind]
    else:
        # DateTime: after the frozen clock's now, as a time to pause until or call back at must be.
        value = {"String": "Sample", "Int": 1, "Boolean": True, "JSON": {}, "DateTime": "2026-02-01T00:00:00Z"}[
            named.name
        ]
        if name == "email":
            value = "sample@client.example"
        if name == "timeZone":
            value = "Europe/Paris"
        if name == "address":
            value = "sample@acme-sample.example"
        if name == "role":
            value = "AGENT"
    return [value] if is_list else value


def _object(
    t: GraphQLInputObjectType,
    mutation: str,
    own: dict[str, str],
    path: list[str],
    target: list[str],
    foreign: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in t.fields.items():
        here = [*path, name]
        holds_target = target[: len(here)] == here
        if isinstance(field.type, GraphQLNonNull) or holds_target:
            out[name] = sample(field.type, mutation, name, own, here, target, foreign)
    if t.name == "OperationInput":
        out["type"] = (
            "SET_STATUS"
            if "statusId" in out
            else "ASSIGN"
            if "userId" in out
            else "ENROLL_IN_SEQUENCE"
            if "sequenceId" in out
            else "MARK_CONTACT_MADE"
        )
        if out["type"] == "SET_STATUS" and "statusId" not in out:
            out["statusId"] = own["Status"]
    if t.name == "SequenceStepInput":
        out["type"] = "SMS"
    if t.name == "SendMessageInput":
        out["subject"] = "Sample"
    if t.name == "CreateAutomationRuleInput" and "statusId" in out:
        out["event"] = "STATUS_ENTERED"
    return out


def id_paths(t: GraphQLInputType, path: list[str]) -> list[list[str]]:
    named, is_list = unwrap(t)
    here = path + (["0"] if is_list else [])
    if isinstance(named, GraphQLInputObjectType):
        return [p for name, f in named.fields.items() for p in id_paths(f.type, [*here, name])]
    if isinstance(named, GraphQLScalarType) and named.name == "ID":
        return [here]
    return []
