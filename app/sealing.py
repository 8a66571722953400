"""Secrets at rest: sealed with AES-256-GCM (the `cryptography` package) under a
key derived from SECRET_KEY by HKDF-SHA256 with a label naming what it seals, and
stored as ``enc1:`` and the base64 of nonce, ciphertext and tag. Each use passes
its own label (its key serves it alone) and associated data naming the row and
column it was sealed for, so a sealed value copied elsewhere opens nowhere.

    UnreadableSecret    a sealed value SECRET_KEY does not open (the key changed,
                        or the value was copied from another row or column)

Webhook signing secrets (app.webhooks.sealing) and mailbox SMTP URLs
(app.messaging.mailboxes) are sealed here."""

from __future__ import annotations

import base64
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc1:"
_NONCE = 12


class UnreadableSecret(Exception):
    """A sealed value that SECRET_KEY does not open."""


@lru_cache(maxsize=8)
def _cipher(secret_key: str, label: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret_key.encode())
    return AESGCM(key)


def seal(value: str, *, secret_key: str, label: bytes, associated: bytes) -> str:
    nonce = os.urandom(_NONCE)
    sealed = nonce + _cipher(secret_key, label).encrypt(nonce, value.encode(), associated)
    return PREFIX + base64.urlsafe_b64encode(sealed).decode()


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def unseal(stored: str, *, secret_key: str, label: bytes, associated: bytes) -> str:
    """The value sealed in ``stored``; UnreadableSecret when it does not open."""
    try:
        sealed = base64.urlsafe_b64decode(stored.removeprefix(PREFIX))
        return _cipher(secret_key, label).decrypt(sealed[:_NONCE], sealed[_NONCE:], associated).decode()
    except (InvalidTag, ValueError) as error:
        raise UnreadableSecret("The sealed value does not open with this SECRET_KEY.") from error
