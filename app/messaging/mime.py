"""Reading a raw email that anyone may have written, within bounds.

The standard library's parser recurses once per nested part and, for each
nested multipart, checks every later line against one more boundary: a message
nested 1,000 deep exhausts Python's stack, and a few hundred levels over many
lines cost minutes of CPU. Real mail nests a handful of levels (mixed, related,
alternative, a forwarded message and its own), so a message whose parts nest
deeper than MAX_DEPTH, or that has more than MAX_PARTS parts, is refused whole,
while it is being parsed. Within that, what the email package fails on (a
header it cannot parse, a multipart with no boundary) is read as far as it goes
instead of failing the whole message.

Its header parser costs time quadratic in a field's length (a Cc of 20,000
addresses takes 17 s), so each part's header section is read as a mail server
reads one (Postfix's header_size_limit and header_address_token_limit discard
the excess, the message goes on): an address field up to its first 100
addresses (repeated fields of one name share them), any field up to 8 KiB
(Content-Type and Content-Disposition 2 KiB), the section up to 64 KiB; the
rest is dropped (app/messaging/mime_headers.py). A reply copied to 5,000 people
is read, its first hundred recipients with it.

Reading stops with Unreadable once it has taken its Budget of the thread's CPU
time (checked between chunks of input and before each header is read), since
even within these bounds a 25 MB message of short lines nested 20 deep costs
tens of seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email import feedparser, policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.message import Message as MimeMessage
from typing import Any, cast

from app.messaging import mime_headers

MAX_DEPTH = 20
MAX_PARTS = 1000
MAX_TEXT = 100_000
MAX_SUBJECT = 998
"""RFC 5322's line limit: a subject longer than a header line is no subject a mail client wrote."""
CHUNK = 64 * 1024
"""Characters fed to the parser between two looks at the budget (~0.1 s at worst)."""


class Unreadable(ValueError):
    """An email Leadline will not read."""


class Budget:
    """A share of the calling thread's CPU time; ``check`` raises Unreadable once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.thread_time() + seconds

    def check(self) -> None:
        if time.thread_time() > self.ends:
            raise Unreadable(f"Reading the email took more than {self.seconds:g} s of CPU time.")


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


class _LenientParams:
    """A message whose parameters the email package fails to decode (TypeError on a
    continuation without a number, "charset*0*=x; charset*", even as it looks for a
    multipart's boundary) reads as a header without parameters."""

    def _get_params_preserve(self, failobj: object, header: str) -> Any:
        try:
            return super()._get_params_preserve(failobj, header)  # type: ignore[misc]  # private, not in typeshed
        except TypeError:
            return []


class _Message(_LenientParams, EmailMessage):
    pass


class _LegacyMessage(_LenientParams, MimeMessage):
    pass


class _Budgeted:
    """A policy that looks at its budget before it parses a header."""

    budget: Budget | None = None

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if self.budget is not None:
            self.budget.check()
        return super().header_fetch_parse(name, value)  # type: ignore[misc]  # the policy's own


class _Policy(_Budgeted, policy.EmailPolicy):
    pass


class _LegacyPolicy(_Budgeted, policy.Compat32):
    pass


POLICY = _Policy(header_factory=_LenientHeaders(), message_factory=_Message)
LEGACY = _LegacyPolicy(message_factory=_LegacyMessage)
"""compat32, the email package's old policy, that flufl.bounce reads."""


class _BoundedInput(feedparser.BufferedSubFile):  # type: ignore[name-defined,misc]  # not in typeshed
    """The parser's input: each multipart pushes its boundary here, so the count of
    boundaries is the nesting of multiparts, refused past MAX_DEPTH before the next
    line is read."""

    def push_eof_matcher(self, pred: Callable[[str], object]) -> None:
        if len(self._eofstack) >= MAX_DEPTH:
            raise Unreadable(f"The email's parts nest more than {MAX_DEPTH} deep.")
        super().push_eof_matcher(pred)


class _BoundedParser(feedparser.FeedParser):
    """The parser, reading through _BoundedInput, each part's header section bounded."""

    def __init__(self, policy: Any) -> None:
        super().__init__(policy=policy)
        self._input = _BoundedInput()  # the parser reads only through it
        self.parts = 0

    def _parse_headers(self, lines: list[str]) -> None:  # called once per part
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise Unreadable(f"The email has more than {MAX_PARTS} parts.")
        super()._parse_headers(mime_headers.bounded(lines))  # type: ignore[misc]  # private, not in typeshed


def parse(raw: bytes, *, budget: Budget) -> EmailMessage:
    """``raw`` parsed as email.message_from_bytes(raw, policy=policy.default)
    would, headers bounded as the module says and those it cannot parse kept as
    text; Unreadable if its parts (multiparts, attached messages) nest more than
    MAX_DEPTH deep or number more than MAX_PARTS, or once reading it, now or later
    through the message's headers, spends ``budget``."""
    return cast(EmailMessage, _parse(raw, budget, POLICY))


def parse_legacy(raw: bytes, *, budget: Budget) -> MimeMessage:
    """``raw`` read as ``parse`` reads it, into the compat32 message flufl.bounce reads."""
    return _parse(raw, budget, LEGACY)


def _parse(raw: bytes, budget: Budget, base: policy.Policy) -> MimeMessage:
    parser = _BoundedParser(cast(Any, base).clone(budget=budget))  # typeshed knows no attribute of ours
    text = raw.decode("ascii", "surrogateescape")
    try:
        for start in range(0, len(text), CHUNK):
            parser.feed(text[start : start + CHUNK])
            budget.check()
        message = parser.close()
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
        content = _html_text(content)
    return content.strip()[:MAX_TEXT]


_HIDDEN = re.compile(r"<(style|script)\b", re.IGNORECASE)
_CLOSING = {tag: re.compile(f"</{tag}", re.IGNORECASE) for tag in ("style", "script")}
_TAG = re.compile(r"<[^<>]*>")  # not [^>]: a "<" never closed would make each later "<" scan to the end


def _html_text(html: str) -> str:
    """The text of an HTML part: tags, styles and scripts gone, in time linear in its
    length (a lazy regex to each closing tag takes 11 s for 20,000 unclosed <style>)."""
    kept = []
    start = 0
    while (hidden := _HIDDEN.search(html, start)) is not None:
        kept.append(html[start : hidden.start()])
        close = _CLOSING[hidden.group(1).lower()].search(html, hidden.end())
        if close is None:  # unclosed: a browser hides the rest too
            start = len(html)
            break
        end = html.find(">", close.end())
        start = len(html) if end < 0 else end + 1
    kept.append(html[start:])
    return re.sub(r"[ \t]+", " ", _TAG.sub(" ", "".join(kept)))
