"""Reading a raw email that anyone may have written, within bounds.

The standard library's parser recurses once per nested part and, for each
nested multipart, checks every later line against one more boundary: a message
nested 1,000 deep exhausts Python's stack, and a few hundred levels over many
lines cost minutes of CPU. Real mail nests a handful of levels (mixed, related,
alternative, a forwarded message and its own), so a message whose parts nest
deeper than MAX_DEPTH is refused whole, while it is being parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from email import feedparser, policy
from email.message import EmailMessage
from email.message import Message as MimeMessage
from typing import cast

MAX_DEPTH = 20


class Unreadable(ValueError):
    """An email Leadline will not read."""


class _BoundedInput(feedparser.BufferedSubFile):  # type: ignore[name-defined,misc]  # not in typeshed
    """The parser's input: each multipart pushes its boundary here, so the count of
    boundaries is the nesting of multiparts, refused past MAX_DEPTH before the next
    line is read."""

    def push_eof_matcher(self, pred: Callable[[str], object]) -> None:
        if len(self._eofstack) >= MAX_DEPTH:
            raise Unreadable(f"The email's parts nest more than {MAX_DEPTH} deep.")
        super().push_eof_matcher(pred)


def parse(raw: bytes) -> EmailMessage:
    """``raw`` parsed as email.message_from_bytes(raw, policy=policy.default)
    would, or Unreadable if its parts (multiparts, attached messages) nest more
    than MAX_DEPTH deep."""
    parser = feedparser.FeedParser(policy=policy.default)
    parser._input = _BoundedInput()  # type: ignore[attr-defined]  # the parser reads only through it
    try:
        parser.feed(raw.decode("ascii", "surrogateescape"))
        message = cast(EmailMessage, parser.close())
    except RecursionError:  # attached messages nested ~1,000 deep: no boundary to count
        raise Unreadable(f"The email's parts nest more than {MAX_DEPTH} deep.") from None
    if _depth(message) > MAX_DEPTH:
        raise Unreadable(f"The email's parts nest more than {MAX_DEPTH} deep.")
    return message


def _depth(message: MimeMessage) -> int:
    """How deep the parts nest, counted without recursion."""
    deepest = 0
    pending = [(message, 1)]
    while pending:
        part, depth = pending.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload()
        if isinstance(payload, list) and depth <= MAX_DEPTH:
            pending.extend((child, depth + 1) for child in payload if isinstance(child, MimeMessage))
    return deepest
