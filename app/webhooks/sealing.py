"""Webhook signing secrets at rest: sealed with AES-256-GCM (the `cryptography`
package) under a key derived from SECRET_KEY by HKDF-SHA256, and stored as
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

import base64
import contextlib
import os
from datetime import datetime
from functools import lru_cache
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.webhooks.models import WebhookEndpoint

PREFIX = "enc1:"
_INFO = b"leadline/webhook-signing-secrets/v1"
"""HKDF's label: the key serves this and nothing else SECRET_KEY keys."""
_NONCE = 12

Column = Literal["secret", "previous_secret"]


class UnreadableSecret(Exception):
    """A sealed secret that SECRET_KEY does not open (the key changed)."""


@lru_cache(maxsize=4)
def _cipher(secret_key: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return AESGCM(key)


def _associated(endpoint_id: int, column: Column) -> bytes:
    return f"webhook_endpoint/{endpoint_id}/{column}".encode()


def seal(secret: str, *, secret_key: str, endpoint_id: int, column: Column) -> str:
    nonce = os.urandom(_NONCE)
    sealed = nonce + _cipher(secret_key).encrypt(nonce, secret.encode(), _associated(endpoint_id, column))
    return PREFIX + base64.urlsafe_b64encode(sealed).decode()


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def unseal(stored: str, *, secret_key: str, endpoint_id: int, column: Column) -> str:
    if not is_sealed(stored):
        return stored
    try:
        sealed = base64.urlsafe_b64decode(stored.removeprefix(PREFIX))
        opened = _cipher(secret_key).decrypt(sealed[:_NONCE], sealed[_NONCE:], _associated(endpoint_id, column))
        return opened.decode()
    except (InvalidTag, ValueError) as error:
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
