"""Reading a raw email that anyone may have written, within bounds.

The standard library's parser recurses once per nested part and, for each
nested multipart, checks every later line against one more boundary: a message
nested 1,000 deep exhausts Python's stack, and a few hundred levels over many
lines cost minutes of CPU. Real mail nests a handful of levels (mixed, related,
alternative, a forwarded message and its own), so a message whose parts nest
deeper than MAX_DEPTH is refused whole, while it is being parsed. Within that,
what the email package fails on (a header it cannot parse, a multipart with no
boundary) is read as far as it goes instead of failing the whole message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email import feedparser, policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.message import Message as MimeMessage
from typing import cast

MAX_DEPTH = 20
MAX_TEXT = 100_000


class _LenientHeaders(HeaderRegistry):
    """Headers parsed as the standard policy parses them, except one its parser
    fails on (it raises IndexError on an address cut short, "From: Ada <", or a
    lone "<" for a Message-ID): that one is kept as plain text."""

    def __call__(self, name: str, value: str) -> BaseHeader:
        try:
            return super().__call__(name, value)
        except (IndexError, ValueError, TypeError, AttributeError):
            plain = type("_UnstructuredHeader", (UnstructuredHeader, self.base_class), {})
            return cast(BaseHeader, plain(name, value))


POLICY = policy.default.clone(header_factory=_LenientHeaders())


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
    would (headers it cannot parse kept as text), or Unreadable if its parts
    (multiparts, attached messages) nest more than MAX_DEPTH deep."""
    parser = feedparser.FeedParser(policy=POLICY)
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
        if part.is_multipart() and depth <= MAX_DEPTH:  # parts, and an attached message's one
            pending.extend((child, depth + 1) for child in part.get_payload() if isinstance(child, MimeMessage))
    return deepest


def text(message: EmailMessage) -> str:
    """The human-readable text: the plain part if there is one, else the HTML part's text."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except AttributeError:  # the email package's, on a multipart/related whose boundary is missing
        part = None
    if part is None:
        return ""
    try:
        content = str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if part.get_content_subtype() == "html":
        content = re.sub(r"(?s)<(style|script)\b.*?</\1>|<[^>]+>", " ", content)
        content = re.sub(r"[ \t]+", " ", content)
    return content.strip()[:MAX_TEXT]
