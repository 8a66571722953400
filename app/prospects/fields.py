"""Validation of a prospect's own fields (R3.1), shared by the API, bulk creation and CSV import."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from app import validation
from app.errors import Field, InvalidInput

TEXT_FIELDS = ("first_name", "last_name", "company", "title")
EDITABLE = (*TEXT_FIELDS, "email", "external_id", "phone", "time_zone", "custom_fields")
KEYS = ("email", "external_id")
"""The fields no two prospects of an organization share (R12.2)."""
MAX_CUSTOM_FIELDS_BYTES = 16_384
MAX_CUSTOM_FIELDS_DEPTH = 5
"""Objects and lists in customFields, the outer object counted: deep enough for
an address or a list of tags, shallow enough for any JSON encoder's stack."""
MAX_CUSTOM_FIELDS_INTEGER = 2**63 - 1
"""The largest integer customFields hold (and its negative, less one): what the
stored JSON's encoder (orjson) and most JSON readers take as an integer."""


def clean(values: Mapping[str, Any], *, region: str, field: Field) -> dict[str, Any]:
    """Validated, normalized column values for the keys present in ``values``
    (snake_case keys; None clears). Raises InvalidInput naming the field."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in TEXT_FIELDS:
            out[key] = validation.optional_text(value, (*field, key))
        elif key == "email":
            # Lower-cased, so the stored address is its own key (unique, matched exactly).
            out[key] = validation.email(value, (*field, key)).lower() if value and value.strip() else None
        elif key == "external_id":
            out[key] = validation.optional_text(value, (*field, key))
        elif key == "phone":
            out[key] = validation.phone(value, region, (*field, key)) if value and value.strip() else None
        elif key == "time_zone":
            out[key] = validation.time_zone(value.strip(), (*field, key)) if value and value.strip() else None
        elif key == "custom_fields":
            out[key] = custom_fields(value, (*field, key))
        else:
            raise KeyError(key)
    return out


def custom_fields(value: Any, field: Field) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("customFields must be a JSON object.", field)
    if _depth(value) > MAX_CUSTOM_FIELDS_DEPTH:
        raise InvalidInput(f"customFields may nest objects and lists at most {MAX_CUSTOM_FIELDS_DEPTH} deep.", field)
    if not _numbers_hold(value):
        raise InvalidInput(
            f"customFields numbers must be finite, and integers within ±{MAX_CUSTOM_FIELDS_INTEGER:,}.", field
        )
    if len(json.dumps(value)) > MAX_CUSTOM_FIELDS_BYTES:
        raise InvalidInput(f"customFields must be at most {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON.", field)
    return value


def _depth(value: object) -> int:
    """How deep objects and lists nest in ``value``, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        inner = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if inner is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in inner)
    return deepest


def _numbers_hold(value: object) -> bool:
    """Whether every number in ``value`` is one JSON can carry and orjson store: a
    GraphQL literal (``1e400``, or 30 digits) reaches here as inf or a long int."""
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float | int) and not _storable(item):
            return False
    return True


def _storable(number: float) -> bool:
    if isinstance(number, float):
        return math.isfinite(number)
    return -MAX_CUSTOM_FIELDS_INTEGER - 1 <= number <= MAX_CUSTOM_FIELDS_INTEGER


SEARCHED = ("first_name", "last_name", "email", "phone", "company")


def search_text(row: Mapping[str, Any]) -> str:
    """What ProspectFilter.search matches: name, email, phone and company, lower-cased."""
    parts = (row.get(key) for key in SEARCHED)
    return " ".join(p for p in parts if p).lower()
