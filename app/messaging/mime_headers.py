"""A part's header section cut to what Leadline reads, before the email package
parses it (app/messaging/mime.py says why and how much)."""

from __future__ import annotations

import re

ADDRESS_FIELDS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "delivered-to",
        "x-original-to",
    }
)
"""The fields holding address lists: the email package's address headers, and the
envelope recipients a receiving server adds."""

MAX_SECTION_CHARS = 64 * 1024
"""A part's header section at most: a real one is a few KB (Received lines, DKIM, ARC)."""
MAX_FIELD_CHARS = 8 * 1024
"""A field at most: parsing one costs up to 0.07 s at 8 KiB, 0.17 s at 16 KiB."""
MAX_MIME_FIELD_CHARS = 2 * 1024
"""A Content-Type or Content-Disposition at most: read a dozen times per part, and
a long file name encoded (RFC 2231) is a few hundred characters."""
MAX_ADDRESSES = 100
"""The addresses read of each address field's name: routing needs the first few."""
MIME_FIELDS = frozenset({"content-type", "content-disposition"})

_SPECIAL = re.compile(r'[\\"()<>\[\],]')


def bounded(lines: list[str]) -> list[str]:
    """The header lines of one part (as the parser collected them, each with its
    line ending) with each address field cut after the first MAX_ADDRESSES
    addresses its name has had, each field cut to MAX_FIELD_CHARS (MIME_FIELDS to
    MAX_MIME_FIELD_CHARS) and the fields after the first MAX_SECTION_CHARS
    characters dropped. A field kept whole keeps its lines; a cut one becomes one
    line (the parser joins a field's lines anyway)."""
    kept: list[str] = []
    total = 0
    read: dict[str, int] = {}
    for field in _fields(lines):
        text = "".join(field)
        name, colon, _ = text.partition(":")
        name = name.strip().lower()
        if colon and name in ADDRESS_FIELDS:
            left = MAX_ADDRESSES - read.get(name, 0)
            if left <= 0:
                continue  # its name has had all its addresses
            cut, count = _first_addresses(text, text.index(":") + 1, most=left, chars=MAX_FIELD_CHARS)
            read[name] = read.get(name, 0) + count
        else:
            cut = text[: MAX_MIME_FIELD_CHARS if name in MIME_FIELDS else MAX_FIELD_CHARS]
        total += len(cut)
        if total > MAX_SECTION_CHARS:
            break
        if len(cut) == len(text):
            kept.extend(field)
        else:
            kept.append(cut.rstrip("\r\n") + "\n")
    return kept


def _fields(lines: list[str]) -> list[list[str]]:
    """The lines grouped by field: a field's first line and its continuation lines."""
    fields: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    return fields


def _first_addresses(field: str, start: int, *, most: int, chars: int) -> tuple[str, int]:
    """``field`` (its value from ``start``) cut before its (``most`` + 1)th address,
    and else to ``chars`` characters at its last address separator within them (or
    within an address when there is none); with how many addresses it keeps.
    Separators are the commas outside quoted strings, comments, angle brackets and
    domain literals (RFC 5322 3.4); only the first ``chars`` characters are read."""
    separators = 0
    last = -1
    quoted = angle = literal = False
    comment = 0
    escaped_until = -1
    for match in _SPECIAL.finditer(field, start, min(len(field), chars)):
        at, char = match.start(), match.group()
        if at < escaped_until:
            continue
        if char == "\\":
            if quoted or comment or literal:
                escaped_until = at + 2
        elif quoted:
            quoted = char != '"'
        elif comment:
            comment += {"(": 1, ")": -1}.get(char, 0)
        elif literal:
            literal = char != "]"
        elif angle:
            angle = char != ">"
        elif char == ",":
            separators += 1
            last = at
            if separators == most:
                return field[:at], most
        else:
            quoted, angle, literal = char == '"', char == "<", char == "["
            comment = 1 if char == "(" else 0
    if len(field) <= chars:
        return field, separators + (1 if field[max(last + 1, start) :].strip() else 0)
    if last >= 0:
        return field[:last], separators
    return field[:chars], 1
