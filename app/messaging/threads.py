"""Email threads: what makes an email a reply to an earlier one (RFC 5322 3.6.4).

A reply's subject is ``Re: `` and the earlier one's, never ``Re: Re:``; its
In-Reply-To names the earlier message's Message-ID, and its References carry
the thread's Message-IDs, oldest first, ending with that one. ``reply_headers``
is the one place that rule lives (sendMessage's replies; a step threaded with
the enrollment's previous email follows it alike)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.messaging.models import Message

MAX_REFERENCES = 20
"""Message-IDs a References header carries at most: the thread's first and its
latest ones (RFC 5322 lets a long thread's be trimmed so)."""
MAX_DEPTH = 50
"""Earlier messages followed back at most to gather a thread's ids."""
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|antw|r|ref)\s*:\s*", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s]+>")


@dataclass(frozen=True)
class ReplyHeaders:
    subject: str
    in_reply_to: str | None
    """None when the earlier message has no Message-ID (it was never sent)."""
    references: str | None


def reply_subject(subject: str | None) -> str:
    """``Re: `` and the subject without the reply prefixes it already has."""
    bare = (subject or "").strip()
    while (match := _REPLY_PREFIX.match(bare)) is not None:
        bare = bare[match.end() :]
    return f"Re: {bare}" if bare else "Re:"


def reply_headers(previous: Message, thread_ids: list[str]) -> ReplyHeaders:
    """The subject, In-Reply-To and References of a reply to ``previous``, whose
    thread before it had ``thread_ids`` (its References, oldest first)."""
    own = previous.external_id if previous.external_id and _MESSAGE_ID.fullmatch(previous.external_id) else None
    ids = [i for i in dict.fromkeys([*thread_ids, *([own] if own else [])]) if _MESSAGE_ID.fullmatch(i)]
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return ReplyHeaders(
        subject=reply_subject(previous.subject),
        in_reply_to=own,
        references=" ".join(ids) if ids else None,
    )


async def thread_before(previous: Message) -> list[str]:
    """The Message-IDs of the messages ``previous`` answers, back to the thread's
    first (following Message.in_reply_to), oldest first."""
    ids: list[str] = []
    seen = {previous.id}
    parent_id = previous.in_reply_to_id
    while parent_id is not None and parent_id not in seen and len(seen) < MAX_DEPTH:
        seen.add(parent_id)
        parent = await Message.get_or_none(id=parent_id)
        if parent is None:
            break
        if parent.external_id:
            ids.append(parent.external_id)
        parent_id = parent.in_reply_to_id
    return list(reversed(ids))
