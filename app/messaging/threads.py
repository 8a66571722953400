"""Threads (contract part 60): the one rule for what a reply carries, for a
sequence's threaded step (app.sequences.scheduler) and a rep's reply alike.

- Subject: ``Re: `` and the parent's subject without its own reply prefixes
  (``Re:``, ``RE:``, ``Re[2]:``, ``Aw:``, ``Sv:``, ``Antw:``, ``Vs:``, repeated,
  in any case, with any spaces), so never ``Re: Re:``. A forward's ``Fwd:`` is
  kept, as mail clients keep it (``Re: Fwd: …``).
- Headers (RFC 5322 3.6.4): ``In-Reply-To`` the parent's Message-ID and
  ``References`` the parent's References followed by the parent's Message-ID.
  A message stores its References (``Message.references_header``) when it is
  queued, whose last id is its In-Reply-To, so the sender derives both headers
  from the row it holds, with no read.

An inbound parent stores no References of its own: a reply to it references
its Message-ID alone (3.6.4 allows that; threading clients match on it).
"""

from __future__ import annotations

import re
from typing import Protocol

from app.messaging.models import MessageState

_REPLY_PREFIXES = re.compile(r"^(?:\s*(?:re|aw|sv|vs|antw)\s*(?:\[\d+\])?\s*:)+\s*", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,253}>")
FOLD_AFTER = 900
"""Header characters at most on one line before References is folded (RFC 5322's limit is 998)."""

SENT = frozenset({MessageState.SENT, MessageState.DELIVERED})
"""What a thread may follow: an email a provider took and that did not bounce."""
ON_ITS_WAY = frozenset({MessageState.QUEUED, MessageState.SENDING})
"""An email whose Message-ID is not known yet: what follows it waits for it."""


class Parent(Protocol):
    """What a reply reads of the message it answers (a Message, or a row of its columns)."""

    @property
    def id(self) -> int: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def external_id(self) -> str | None: ...
    @property
    def references_header(self) -> str | None: ...


def reply_subject(subject: str | None) -> str:
    """``Re: `` and ``subject`` without its reply prefixes: "Re: RE:Hello" → "Re: Hello"."""
    return f"Re: {_REPLY_PREFIXES.sub('', subject or '').strip()}".rstrip()


def references(parent: Parent) -> str | None:
    """The References a reply to ``parent`` carries (its own References, then its
    Message-ID), space-separated, oldest first; None when ``parent`` has no
    Message-ID a header may carry (an SMS, an email never sent)."""
    own = parent.external_id or ""
    if not _MESSAGE_ID.fullmatch(own):
        return None
    before = [i for i in (parent.references_header or "").split() if _MESSAGE_ID.fullmatch(i)]
    return " ".join([*before, own])


def reply_columns(parent: Parent) -> dict[str, object]:
    """A reply's Message columns that threading sets: its subject, the parent it
    answers and its References; empty when ``parent`` cannot be answered in a
    thread (``references`` is None)."""
    chain = references(parent)
    if chain is None:
        return {}
    return {"subject": reply_subject(parent.subject), "in_reply_to_id": parent.id, "references_header": chain}


def reply_headers(references_header: str | None) -> tuple[tuple[str, str], ...]:
    """The In-Reply-To and References header fields of a message whose stored
    References is ``references_header`` (none without); a long References is
    folded between ids."""
    ids = (references_header or "").split()
    if not ids:
        return ()
    chain = " ".join(ids)
    if len(chain) > FOLD_AFTER:
        chain = "\r\n ".join(ids)
    return (("In-Reply-To", ids[-1]), ("References", chain))
