"""Unsubscribe tokens: signed with SECRET_KEY (HMAC-SHA256), no expiry, so every
link ever sent keeps working (R6.3 asks for at least 30 days)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret_key: str, payload: str) -> str:
    return _b64(hmac.new(secret_key.encode(), b"unsubscribe:" + payload.encode(), hashlib.sha256).digest()[:18])


def make_token(secret_key: str, prospect_id: int, message_id: int) -> str:
    payload = _b64(f"{prospect_id}.{message_id}".encode())
    return f"{payload}.{_signature(secret_key, payload)}"


def read_token(secret_key: str, token: str) -> tuple[int, int] | None:
    """(prospect id, message id) of a genuine token; None for anything forged or garbled."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(signature, _signature(secret_key, payload)):
        return None
    try:
        prospect_id, message_id = _unb64(payload).decode().split(".")
        return int(prospect_id), int(message_id)
    except ValueError:
        return None
