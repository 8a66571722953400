"""Raw inbound email (R6.1): what a message is.

``classify`` sorts a raw RFC 5322 message into

- a bounce: an RFC 3464 delivery status notification (5.x.x hard, 4.x.x or
  ``Action: delayed`` soft), the original found by the Message-ID in its
  returned message or headers (or its own In-Reply-To, References); or, for
  mailers that send no standard report, whatever flufl.bounce's detectors find
  in a message from a mailer daemon;
- an auto-reply (RFC 3834 ``Auto-Submitted`` other than ``no``, and the
  de-facto ``X-Autoreply``, ``X-Autorespond``, ``X-Auto-Response-Suppress``,
  ``Precedence: bulk | junk | auto_reply``, an empty return path);
- a reply asking to be unsubscribed (app.messaging.classify reads what its
  sender wrote above the quoted text);
- a reply: anything else;

with what routing needs: its sender, where it was sent (app/messaging/mime.py
reads the first 100 addresses of each field), the Message-IDs it names.
app/messaging/email_routing.py records it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.message import Message as MimeMessage
from email.utils import getaddresses, parseaddr
from enum import StrEnum

from flufl.bounce import all_failures

from app.accounts import identities
from app.messaging import mime
from app.messaging.classify import Kind, email_reply, html_reply
from app.messaging.models import BounceType

# No "@" in the left part (RFC 5322's id-left has none): with one, it backtracked quadratically.
MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s]+>")
# What a message row holds (Message.external_id, from_address, to_address): an
# email may say more, and a longer id matches nothing of ours.
ID_MAX = 255
ADDRESS_MAX = 320
STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
BOUNCE_BYTES = 256 * 1024
"""What flufl.bounce reads of a bounce: its report comes first, the returned original after."""


class EmailKind(StrEnum):
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    UNSUBSCRIBE_REQUEST = "unsubscribe_request"
    REPLY = "reply"


@dataclass
class Classified:
    kind: EmailKind
    message_id: str | None
    sender: str
    recipients: list[str]
    """Where the mail was sent (Delivered-To, X-Original-To, To, Cc), as sending
    identities (app.accounts.identities.email_key), in that order."""
    subject: str
    body: str
    answers: list[str] = field(default_factory=list)
    """Message-IDs this mail refers to: In-Reply-To and References, newest first;
    for a bounce, the returned original's."""
    bounced: list[str] = field(default_factory=list)
    """A bounce's failed recipients."""
    bounce_type: BounceType | None = None
    status: str | None = None


def classify(raw: bytes, *, cpu_seconds: float) -> Classified:
    """What ``raw`` is; mime.Unreadable if its parts nest too deep to read, or once
    reading it has taken ``cpu_seconds`` of this thread's CPU time. Its text comes
    without NUL characters, which PostgreSQL stores in no text column (an email
    may carry them, encoded or not)."""
    budget = mime.Budget(cpu_seconds)
    found = _classified(mime.parse(raw, budget=budget), raw, budget)
    return replace(
        found,
        message_id=found.message_id and _storable(found.message_id),
        sender=_storable(found.sender),
        recipients=[_storable(r) for r in found.recipients],
        subject=_storable(found.subject),
        body=_storable(found.body),
        answers=[_storable(a) for a in found.answers],
        bounced=[_storable(b) for b in found.bounced],
        status=found.status and _storable(found.status),
    )


def _storable(text: str) -> str:
    return text.replace("\x00", "")


def _classified(message: EmailMessage, raw: bytes, budget: mime.Budget) -> Classified:
    sender = parseaddr(str(message.get("From", "")))[1].lower()[:ADDRESS_MAX]
    found = Classified(
        kind=EmailKind.REPLY,
        message_id=_first_id(message.get("Message-ID")),
        sender=sender,
        recipients=_recipients(message),
        subject=" ".join(str(message.get("Subject", "")).split())[: mime.MAX_SUBJECT],
        body=mime.text(message),
    )
    threaded = [*_ids(message.get("In-Reply-To")), *reversed(_ids(message.get("References")))]
    budget.check()
    if _delivery_status(message, found) or _heuristic_bounce(raw, message, found, budget):
        found.kind = EmailKind.BOUNCE
        found.answers = list(dict.fromkeys([*found.answers, *threaded]))
        return found
    if _automatic(message):
        found.kind = EmailKind.AUTO_REPLY
    elif email_reply(_written(message, found.body), subject=found.subject) is Kind.UNSUBSCRIBE_REQUEST:
        found.kind = EmailKind.UNSUBSCRIBE_REQUEST
    budget.check()
    found.answers = list(dict.fromkeys(threaded))
    return found


def _written(message: EmailMessage, body: str) -> str:
    """The text the classifier reads: ``body`` (mime.text), or, when that came from
    an HTML part, that part read again keeping its lines and cut at its quote
    (app.messaging.classify.html_reply)."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except AttributeError:  # as mime.text: a multipart/related whose boundary is missing
        return body
    if part is None or part.get_content_subtype() != "html":
        return body
    try:
        return html_reply(str(part.get_content()))
    except (LookupError, ValueError):  # an unknown charset or a broken encoding: mime.text's reading
        return body


def _ids(value: object) -> list[str]:
    return [found for found in MESSAGE_ID.findall(str(value)) if len(found) <= ID_MAX] if value else []


def _first_id(value: object) -> str | None:
    found = _ids(value)
    return found[0] if found else None


def _recipients(message: EmailMessage) -> list[str]:
    """As identity keys, normalized here: off the event loop."""
    headers = [str(v) for name in ("Delivered-To", "X-Original-To", "To", "Cc") for v in message.get_all(name, [])]
    keys = (identities.email_key(address) for _, address in getaddresses(headers) if address)
    return [key for key in dict.fromkeys(keys) if key is not None]


def _delivery_status(message: EmailMessage, found: Classified) -> bool:
    """RFC 3464: multipart/report; report-type=delivery-status."""
    if message.get_content_type() != "multipart/report":
        return False
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return False
    codes: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for block in _status_blocks(part):
                recipient = parseaddr(block.get("final-recipient", "").partition(";")[2])[1].lower()
                status = STATUS.search(block.get("status", ""))
                if not recipient or status is None:
                    continue
                found.bounced.append(recipient[:ADDRESS_MAX])
                delayed = block.get("action", "").lower() == "delayed"  # still being tried: not final
                codes.append("4" + status.group(0)[1:] if delayed else status.group(0))
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            found.answers = found.answers or _returned_ids(part)
    if not codes:
        return False
    hard = [c for c in codes if c.startswith("5")]
    found.status = (hard or codes)[0]
    found.bounce_type = BounceType.HARD if hard else BounceType.SOFT
    return True


def _status_blocks(part: MimeMessage) -> list[dict[str, str]]:
    """The per-message and per-recipient field groups of a message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parsed each group as a message
        return [{k.lower(): str(v) for k, v in group.items()} for group in payload if isinstance(group, MimeMessage)]
    text = payload if isinstance(payload, str) else ""
    blocks = []
    for chunk in re.split(r"\r?\n\s*\r?\n", text):
        fields = {}
        for line in re.sub(r"\r?\n[ \t]+", " ", chunk).splitlines():
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        blocks.append(fields)
    return blocks


def _returned_ids(part: MimeMessage) -> list[str]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        original = payload[0]
        return _ids(original.get("Message-ID")) if isinstance(original, MimeMessage) else []
    text = payload if isinstance(payload, str) else str(payload)
    match = re.search(r"(?im)^message-id:\s*(<[^>\s]+>)", text)
    return [match.group(1)] if match else []


def _heuristic_bounce(raw: bytes, message: EmailMessage, found: Classified, budget: mime.Budget) -> bool:
    """A bounce without a standard report, from a mailer daemon: flufl.bounce's
    detectors, on its first BOUNCE_BYTES (they cost 0.5 s a MB of body)."""
    from_daemon = found.sender.partition("@")[0] in DAEMONS
    if not from_daemon and str(message.get("Return-Path", "")).strip() != "<>":
        return False
    legacy = mime.parse_legacy(raw[:BOUNCE_BYTES], budget=budget)  # flufl.bounce reads compat32 messages
    try:
        temporary, permanent = all_failures(legacy)
    except (IndexError, AttributeError, ValueError, TypeError, LookupError):  # its detectors', on malformed mail
        return False
    failed = [a.decode("utf-8", "replace").lower()[:ADDRESS_MAX] for a in (*permanent, *temporary)]
    if not failed:
        return False
    found.bounced = list(dict.fromkeys(failed))
    found.bounce_type = BounceType.HARD if permanent else BounceType.SOFT
    status = STATUS.search(found.body)
    found.status = status.group(0) if status else None
    match = re.search(r"(?im)^message-id:\s*(<[^>\s]+>)", found.body)
    found.answers = [match.group(1)] if match else []
    return True


def _automatic(message: EmailMessage) -> bool:
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if any(message.get(name) is not None for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        return True
    if str(message.get("Precedence", "")).strip().lower() in ("bulk", "junk", "auto_reply"):
        return True
    return str(message.get("Return-Path", "")).strip() == "<>"
