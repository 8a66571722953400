"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives,
and can refuse recipients with a given reply."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass
class Sink:
    raw: list[bytes] = field(default_factory=list)
    """What arrived, as sent: parsing waits until a test looks (the benchmark never does)."""
    _parsed: list[Message] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    rcpt_reply: str | None = None
    """E.g. "451 4.3.0 Try again later" or "550 5.1.1 No such user"; None accepts."""
    rcpt_attempts: int = 0
    delay: float = 0.0
    """Seconds each message takes to accept: a slow server, so sending lasts."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        self.rcpt_attempts += 1
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.raw.append(envelope.content)
        self.recipients.extend(envelope.rcpt_tos)
        return "250 Message accepted"

    @property
    def received(self) -> list[Message]:
        """The messages received so far, parsed (each once)."""
        arrived = self.raw[:]
        self._parsed.extend(message_from_bytes(data) for data in arrived[len(self._parsed) :])
        return self._parsed[: len(arrived)]


class _WithoutEsmtp(SMTP):
    """A server of before ESMTP: EHLO is an unknown command, HELO works."""

    async def smtp_EHLO(self, hostname: str) -> None:
        await self.push("502 5.5.1 Command not implemented")


class _WithoutEsmtpController(Controller):
    def factory(self) -> SMTP:
        return _WithoutEsmtp(self.handler, **self.SMTP_kwargs)


@contextmanager
def smtp_sink(*, esmtp: bool = True, smtputf8: bool = True) -> Iterator[tuple[Sink, str]]:
    """(the sink, an SMTP_URL for it); ``esmtp=False``: a server that knows only HELO;
    ``smtputf8=False``: one that does not offer SMTPUTF8 (RFC 6531; aiosmtpd's
    Controller does by default)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = Sink()
    controller = (Controller if esmtp else _WithoutEsmtpController)(
        sink, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8
    )
    controller.start()
    try:
        yield sink, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
