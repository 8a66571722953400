"""Unsubscribing by the link in every email (R6.3): tokens signed with SECRET_KEY
(HMAC-SHA256) and no expiry, so every link ever sent keeps working (R6.3 asks
for at least 30 days); the confirmation page's facts; the one-click unsubscribe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from app.accounts.actor import system_actor
from app.accounts.models import Organization
from app.clock import Clock
from app.messaging.models import Message
from app.prospects import consent
from app.prospects.models import ChangeCause, Channel, Prospect


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret_key: str, payload: str) -> str:
    return _b64(hmac.new(secret_key.encode(), b"unsubscribe:" + payload.encode(), hashlib.sha256).digest()[:18])


def make_token(secret_key: str, prospect_id: int, message_id: int) -> str:
    payload = _b64(f"{prospect_id}.{message_id}".encode())
    return f"{payload}.{_signature(secret_key, payload)}"


TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{24}")
"""What make_token makes: base64url of "prospect.message", a dot, 18 bytes of HMAC."""


def read_token(secret_key: str, token: str) -> tuple[int, int] | None:
    """(prospect id, message id) of a genuine token; None for anything forged or
    garbled, whatever its characters or length."""
    if TOKEN.fullmatch(token) is None:
        return None
    payload, _, signature = token.partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(secret_key, payload).encode()):
        return None
    try:
        prospect_id, message_id = _unb64(payload).decode().split(".")
        return int(prospect_id), int(message_id)
    except ValueError:
        return None


@dataclass(frozen=True)
class Subscriber:
    """Whom a genuine unsubscribe link speaks for."""

    email: str
    organization: str
    unsubscribed: bool


async def subscriber(secret_key: str, token: str) -> Subscriber | None:
    """The prospect a link was sent to; None for a forged token or a deleted prospect."""
    found = read_token(secret_key, token)
    if found is None:
        return None
    prospect_id, _ = await _whom(*found)
    prospect = await Prospect.get_or_none(id=prospect_id)
    if prospect is None:
        return None
    organization = await Organization.get(id=prospect.organization_id)
    return Subscriber(
        email=prospect.email or "",
        organization=organization.name,
        unsubscribed=Channel.EMAIL.value in prospect.opted_out_channels,
    )


async def unsubscribe(secret_key: str, token: str, clock: Clock) -> Subscriber | None:
    """One-click unsubscribe (RFC 8058): blocks EMAIL for the prospect, suppresses its
    address and the one the email went to, and finishes UNSUBSCRIBED the email
    enrollments of every record carrying them (``consent.unsubscribe``), in one
    transaction. Repeating it changes nothing."""
    found = read_token(secret_key, token)
    if found is None:
        return None
    async with in_transaction():
        prospect_id, sent_to = await _whom(*found)
        prospect = await Prospect.filter(id=prospect_id).select_for_update().first()
        if prospect is None:
            return None
        actor = system_actor(prospect.organization_id, clock)
        await consent.unsubscribe(prospect, actor=actor, cause=ChangeCause.INBOUND, also=sent_to)
    return await subscriber(secret_key, token)


async def _whom(prospect_id: int, message_id: int) -> tuple[int, str | None]:
    """The prospect a link speaks for now, and the address its email went to: the
    message's, whose prospect is the kept record once the one it was sent to has
    been merged into another; the token's prospect when the message is gone."""
    message = await Message.get_or_none(id=message_id).only("id", "prospect_id", "to_address")
    if message is None:
        return prospect_id, None
    return message.prospect_id, message.to_address
