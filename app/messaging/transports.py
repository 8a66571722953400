"""Providers: SMTP (aiosmtplib, a pool of reused connections), Twilio's Messages API
(httpx), and the file outbox used when neither is configured.

    SendError                a provider did not take the message (``reason``: the slug
    │                        an enrollment it finishes records)
    ├── TransientError       worth retrying (SMTP 4xx, connection errors, HTTP 429/5xx)
    └── PermanentError       never retried; ``hard_bounce`` for SMTP 5.1.x at RCPT;
                             reason ``unsendable_address`` for an address no header
                             or command this provider offers can carry
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import aiosmtplib.email
import httpx
from aiosmtplib import SMTPStatus

from app import datadir


class SendError(Exception):
    reason = "send_failed"


class TransientError(SendError):
    pass


class PermanentError(SendError):
    def __init__(self, message: str, *, hard_bounce: bool = False, reason: str | None = None) -> None:
        super().__init__(message)
        self.hard_bounce = hard_bounce
        if reason is not None:
            self.reason = reason


UNSENDABLE_ADDRESS = "unsendable_address"


@dataclass(frozen=True)
class Email:
    sender: str
    recipient: str
    data: bytes
    message_id: str
    smtputf8: bool = False
    """An address is not ASCII (RFC 6531): the headers are UTF-8 and the server must offer SMTPUTF8."""


class EmailTransport(Protocol):
    async def send(self, email: Email) -> str: ...
    async def close(self) -> None: ...


class SmsTransport(Protocol):
    async def send(self, *, to: str, sender: str, body: str, reference: int) -> str: ...
    async def close(self) -> None: ...


TRANSACTION_SECONDS = 60
"""The most one message's MAIL, RCPT and DATA may take; past it the connection
is dropped (its replies can no longer be paired with commands) and the send is
a transient failure."""


def smtp_options(url: str) -> dict[str, object]:
    """aiosmtplib's connection options for an SMTP URL (SMTP_URL, a mailbox's
    smtpUrl): smtp://user:pass@host:port, smtps:// for TLS, ?starttls=1; ValueError
    for anything else."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or port == -1 or port == 0:
        raise ValueError("SMTP_URL must look like smtp://user:pass@host:port (smtps:// for TLS)")
    query = parse_qs(parts.query)
    return {
        "hostname": parts.hostname,
        "port": port or (465 if parts.scheme == "smtps" else 25),
        "use_tls": parts.scheme == "smtps",
        "start_tls": query.get("starttls", ["0"])[0] in ("1", "true") or None,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "timeout": 30,
    }


class SmtpTransport:
    """A pool of up to SMTP_CONNECTIONS connections, each reused for message after
    message and reopened when it drops; concurrent sends use different connections.
    The connection used last is used next, so a connection is opened only when that
    many sends run at once: sends one after another keep to one connection."""

    def __init__(self, url: str, connections: int) -> None:
        self._options = smtp_options(url)
        self.connections = connections
        # Last in, first out: connected clients above the unopened slots (None).
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP | None] = asyncio.LifoQueue()
        for _ in range(connections):
            self._idle.put_nowait(None)
        self._all: list[aiosmtplib.SMTP] = []

    async def _connected(self, client: aiosmtplib.SMTP | None) -> aiosmtplib.SMTP:
        if client is None or not client.is_connected:
            self._drop(client)
            client = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
            await client.connect()
            self._all.append(client)
        return client

    def _drop(self, client: aiosmtplib.SMTP | None) -> None:
        """Forgets a connection that failed (closed, if it is not already)."""
        if client is not None:
            client.close()
            with contextlib.suppress(ValueError):
                self._all.remove(client)

    async def send(self, email: Email) -> str:
        client = await self._idle.get()
        try:
            client = await self._connected(client)
            async with asyncio.timeout(TRANSACTION_SECONDS):
                await _transaction(client, email)
        except aiosmtplib.SMTPRecipientRefused as error:
            raise _classified(error.code, error.message, at_recipient=True) from None
        except aiosmtplib.SMTPResponseException as error:
            raise _classified(error.code, error.message, at_recipient=False) from None
        except ValueError as error:  # an address no SMTP command line can carry
            raise PermanentError(f"SMTP: {error}"[:500], reason=UNSENDABLE_ADDRESS) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            self._drop(client)
            client = None
            raise TransientError(f"SMTP connection: {type(error).__name__}") from None
        finally:
            self._idle.put_nowait(client)
        return email.message_id

    async def close(self) -> None:
        for client in self._all:
            if client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()
        self._all.clear()


async def _transaction(client: aiosmtplib.SMTP, email: Email) -> None:
    """MAIL, RCPT and DATA as aiosmtplib's ``sendmail`` sends them (SIZE when offered,
    RSET after a refusal, so the connection can go on), with each envelope address
    checked and quoted once: ``sendmail`` parses every address four times with
    email.utils, 40 % of its CPU a message (320 against 192 µs, measured). The
    commands wait without timers of their own: the caller's one deadline for the
    whole transaction replaces a timer (and a wait_for) per command."""
    sender, recipient = _quoted(email.sender, email.smtputf8), _quoted(email.recipient, email.smtputf8)
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()  # a server without ESMTP, as sendmail would
    options = [b"SIZE=%d" % len(email.data)] if client.supports_extension("size") else []
    if email.smtputf8:
        if not client.supports_extension("smtputf8"):  # before the envelope opens: the connection goes on
            address = email.sender if email.recipient.isascii() else email.recipient
            raise PermanentError(
                f"The SMTP server does not offer SMTPUTF8, which the address {address!r} needs.",
                reason=UNSENDABLE_ADDRESS,
            )
        options.append(b"SMTPUTF8")
        if client.supports_extension("8bitmime"):
            options.append(b"BODY=8BITMIME")
    try:
        reply = await client.execute_command(b"MAIL", b"FROM:" + sender, *options, timeout=None)
        if reply.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, email.sender)
        reply = await client.execute_command(b"RCPT", b"TO:" + recipient, timeout=None)
        if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
            raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, email.recipient)
        await client.data(email.data, timeout=None)
    except aiosmtplib.SMTPResponseException:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.rset(timeout=None)
        raise


_PLAIN_ADDRESS = re.compile(r"[^\s<>\"(),:;@\\\[\]]+@[^\s<>\"(),:;@\\\[\]]+")


@lru_cache(maxsize=1024)
def _parsed_and_quoted(address: str) -> str:
    return aiosmtplib.email.quote_address(address)


def _quoted(address: str, utf8: bool = False) -> bytes:
    """``<address>`` for the SMTP command line. A plain ASCII address (no display name,
    comment, quoting or whitespace) is its own parse; anything else goes through
    aiosmtplib's parser, which refuses what could inject a command; and what is not
    ASCII only in an SMTPUTF8 transaction (else UnicodeEncodeError, a ValueError)."""
    if address.isascii() and _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    return _parsed_and_quoted(address).encode("utf-8" if utf8 else "ascii")


def _classified(code: int, text: str, *, at_recipient: bool) -> SendError:
    summary = f"SMTP {code} {text}".strip()[:500]
    if 400 <= code < 500:
        return TransientError(summary)
    hard = at_recipient and code >= 500 and "5.1." in text
    return PermanentError(summary, hard_bounce=hard)


class TwilioTransport:
    """Twilio's Messages API over one reused HTTP client."""

    def __init__(self, api_url: str, account_sid: str, auth_token: str) -> None:
        self._url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._client = httpx.AsyncClient(auth=(account_sid, auth_token), timeout=30)

    async def send(self, *, to: str, sender: str, body: str, reference: int) -> str:
        try:
            response = await self._client.post(self._url, data={"To": to, "From": sender, "Body": body})
        except httpx.HTTPError as error:
            raise TransientError(f"Twilio connection: {type(error).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"Twilio HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(f"Twilio HTTP {response.status_code}: {response.text[:300]}")
        return str(response.json()["sid"])

    async def close(self) -> None:
        await self._client.aclose()


class FileOutbox:
    """Writes what would be sent into the data directory (a fresh install's default)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, email: Email) -> str:
        await asyncio.to_thread(self._write, f"{_safe(email.message_id)}.eml", email.data)
        return email.message_id

    async def send_sms(self, *, to: str, sender: str, body: str, reference: int) -> str:
        sid = f"outbox-{reference}"
        data = json.dumps({"to": to, "from": sender, "body": body, "sid": sid}, indent=2).encode()
        await asyncio.to_thread(self._write, f"sms-{reference}.json", data)
        return sid

    def _write(self, name: str, data: bytes) -> None:
        datadir.make_directory(self.directory)
        datadir.write_file(self.directory / name, data)

    async def close(self) -> None:
        return None


class OutboxSms:
    """The file outbox seen as an SMS transport."""

    def __init__(self, outbox: FileOutbox) -> None:
        self.outbox = outbox

    async def send(self, *, to: str, sender: str, body: str, reference: int) -> str:
        return await self.outbox.send_sms(to=to, sender=sender, body=body, reference=reference)

    async def close(self) -> None:
        return None


def _safe(message_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in message_id.strip("<>"))


MAX_SMTP_POOLS = 64
"""SMTP pools of mailboxes' own servers a worker keeps at most: past it, the pool
used least recently is closed (its sends in flight fail as transient errors and
are tried again) to make room."""
MAILBOX_SMTP_CONNECTIONS = 4
"""Connections each of those pools opens at most: one rep's mailbox sends a day's
few hundred emails, and its provider limits concurrent connections."""


class SmtpPools:
    """A pool per mailbox SMTP server (by URL), made on first use, at most
    MAX_SMTP_POOLS, all closed with the transports."""

    def __init__(self, connections: int = MAILBOX_SMTP_CONNECTIONS, most: int = MAX_SMTP_POOLS) -> None:
        self.connections = connections
        self.most = most
        self._pools: OrderedDict[str, SmtpTransport] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._pools)

    def for_url(self, url: str) -> SmtpTransport:
        """The pool for ``url`` (ValueError if it is no SMTP URL)."""
        pool = self._pools.get(url)
        if pool is None:
            pool = SmtpTransport(url, self.connections)
            while len(self._pools) >= self.most:
                _, evicted = self._pools.popitem(last=False)
                closing = asyncio.get_running_loop().create_task(evicted.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
            self._pools[url] = pool
        self._pools.move_to_end(url)
        return pool

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


@dataclass
class Transports:
    email: EmailTransport
    """SMTP_URL's pool, or the file outbox."""
    sms: SmsTransport
    mailbox_smtp: SmtpPools = field(default_factory=SmtpPools)
    """Pools of the mailboxes with an SMTP server of their own."""

    def email_for(self, smtp_url: str | None) -> EmailTransport:
        """The transport of a mailbox's own server (``smtp_url``), else ``email``."""
        return self.email if smtp_url is None else self.mailbox_smtp.for_url(smtp_url)

    async def close(self) -> None:
        await self.email.close()
        await self.mailbox_smtp.close()
        await self.sms.close()
