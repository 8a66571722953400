"""Global ids: opaque, typed, Relay-style. ``encode("Prospect", 7)`` → "UHJvc3BlY3Q6Nw"."""

from __future__ import annotations

import base64
import binascii


def encode(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode(global_id: str) -> tuple[str, int] | None:
    """(type name, primary key), or None for anything that is not one of our ids."""
    if not isinstance(global_id, str) or len(global_id) > 100:
        return None
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, sep, pk = raw.partition(":")
    if not sep or not pk.isdigit() or len(pk) > 18 or pk != str(int(pk)):
        return None
    return type_name, int(pk)


def decode_as(type_name: str, global_id: str) -> int | None:
    """The primary key if ``global_id`` is an id of ``type_name``, else None."""
    decoded = decode(global_id)
    if decoded is None or decoded[0] != type_name:
        return None
    return decoded[1]
