"""Webhook signing secrets at rest: sealed (app.sealing: AES-256-GCM under a key
derived from SECRET_KEY by HKDF-SHA256, with this module's own label), and stored as
``enc1:`` and the base64 of nonce, ciphertext and tag (93 characters for a
``whsec_`` secret, within the column's 100). The endpoint's id and the column
(``secret`` or ``previous_secret``) are the associated data: a sealed value
opens only where it was sealed, so one copied to another endpoint's row, or from
the previous column to the current one, signs nothing there. A value without the
prefix is a secret stored plain before sealing (migration 0015 seals those) and
reads as it is. ``signing_secrets`` is the one reader of the stored secrets.

A copy of the database alone signs nothing: it takes SECRET_KEY too. Changing SECRET_KEY makes the sealed secrets unreadable: each endpoint's
secret is then rotated (``rotateWebhookSecret``)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Literal

from app import sealing
from app.sealing import PREFIX, UnreadableSecret
from app.webhooks.models import WebhookEndpoint

__all__ = ["PREFIX", "UnreadableSecret", "is_sealed", "rotate", "seal", "signing_secrets", "unseal"]

_INFO = b"leadline/webhook-signing-secrets/v1"
"""HKDF's label: the key serves this and nothing else SECRET_KEY keys."""

Column = Literal["secret", "previous_secret"]


def _associated(endpoint_id: int, column: Column) -> bytes:
    return f"webhook_endpoint/{endpoint_id}/{column}".encode()


def seal(secret: str, *, secret_key: str, endpoint_id: int, column: Column) -> str:
    return sealing.seal(secret, secret_key=secret_key, label=_INFO, associated=_associated(endpoint_id, column))


def is_sealed(stored: str) -> bool:
    return sealing.is_sealed(stored)


def unseal(stored: str, *, secret_key: str, endpoint_id: int, column: Column) -> str:
    if not is_sealed(stored):
        return stored
    try:
        return sealing.unseal(stored, secret_key=secret_key, label=_INFO, associated=_associated(endpoint_id, column))
    except UnreadableSecret as error:
        raise UnreadableSecret("The endpoint's secret does not open with this SECRET_KEY; rotate it.") from error


def signing_secrets(endpoint: WebhookEndpoint, now: datetime, *, secret_key: str) -> list[str]:
    """The current secret, and the previous one for 24 hours after a rotation
    (left out when it does not open: rotated after SECRET_KEY changed)."""
    secrets = [unseal(endpoint.secret, secret_key=secret_key, endpoint_id=endpoint.id, column="secret")]
    previous, expires = endpoint.previous_secret, endpoint.previous_secret_expires_at
    if previous and expires and expires > now:
        with contextlib.suppress(UnreadableSecret):
            secrets.append(unseal(previous, secret_key=secret_key, endpoint_id=endpoint.id, column="previous_secret"))
    return secrets


def rotate(endpoint: WebhookEndpoint, new_secret: str, *, secret_key: str) -> None:
    """Sets ``new_secret`` as the endpoint's current secret and the current one as
    its previous (sealed again for that column; none when it does not open, as it
    would sign nothing)."""
    try:
        current = unseal(endpoint.secret, secret_key=secret_key, endpoint_id=endpoint.id, column="secret")
    except UnreadableSecret:
        endpoint.previous_secret = None
    else:
        endpoint.previous_secret = seal(
            current, secret_key=secret_key, endpoint_id=endpoint.id, column="previous_secret"
        )
    endpoint.secret = seal(new_secret, secret_key=secret_key, endpoint_id=endpoint.id, column="secret")
