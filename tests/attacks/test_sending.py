"""Sending: messages whose addresses not every path can carry.

Each case is a recipient (as stored: validation let ``kofi.müller@example.com``
through, and older rows may hold worse), the organization's sender, the way out
(an SMTP server offering SMTPUTF8, one that does not, or the file outbox), and
what becomes of the message. An address with a non-ASCII local part goes with
SMTPUTF8 where the server offers it; an international domain goes in its ASCII
(IDNA) form anywhere. What cannot go is FAILED before any provider took it, with
a readable error and the enrollment FAILED (R4.2) with the reason on its stage
change: never UNCERTAIN, which is for a message a provider may have taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.accounts.models import Organization
from app.clock import FrozenClock
from app.messaging import sending
from app.messaging.models import Message
from app.prospects.models import Prospect
from app.sequences import scheduler
from app.sequences.models import StageChange
from tests.conftest import Org
from tests.smtp_sink import Sink, smtp_sink
from tests.test_scheduler import setup
from tests.test_sending import EMAIL_STEP, settings_for

KOFI = "kofi.m\u00fcller@example.com"
SALES = "sales@acme.example"


@dataclass(frozen=True)
class Sent:
    envelope: str
    """The recipient the server saw."""
    header: str
    """The To header as sent."""


@dataclass(frozen=True)
class Failed:
    reason: str
    error: str


# One case a line:
# fmt: off
CASES = [
    pytest.param(KOFI, SALES, "smtputf8", Sent(KOFI, KOFI), id="utf8-local-part-smtputf8"),
    pytest.param(KOFI, SALES, "ascii", Failed("unsendable_address", "does not offer SMTPUTF8"), id="no-smtputf8"),
    pytest.param(KOFI, SALES, "outbox", Sent(KOFI, KOFI), id="utf8-local-part-outbox"),
    pytest.param("kofi@m\u00fcller.example", SALES, "ascii", Sent(*["kofi@xn--mller-kva.example"] * 2), id="idn-domain"),
    pytest.param(KOFI, "\u00e9quipe@acme.example", "ascii", Failed("unsendable_address", "SMTPUTF8"), id="utf8-sender"),
    pytest.param("k\u00f6 fi@example.com", SALES, "smtputf8", Failed("unsendable_address", "is not an address"), id="bad"),
    pytest.param("k\u00f6fi@@example.com", SALES, "outbox", Failed("unsendable_address", "is not an"), id="bad-outbox"),
]
# fmt: on


@pytest.mark.parametrize(("address", "sender", "way", "outcome"), CASES)
async def test_a_message_goes_with_smtputf8_or_fails_before_any_provider(
    org: Org, clock: FrozenClock, tmp_path: Path, address: str, sender: str, way: str, outcome: Sent | Failed
) -> None:
    await Organization.filter(id=org.id).update(email_from=sender)
    [enrollment] = await setup(org, clock, steps=EMAIL_STEP, people=[{"first_name": "Kofi", "email": "k@x.example"}])
    await Prospect.filter(id=enrollment.prospect_id).update(email=address)  # as stored, unchecked
    [message_id] = (await scheduler.run_pass(clock)).queued
    with _way_out(way, tmp_path) as (sink, settings):
        transports = sending.transports_for(settings)
        try:
            state = await sending.send(message_id, transports=transports, settings=settings, clock=clock)
        finally:
            await transports.close()
    message = await Message.get(id=message_id)
    await enrollment.refresh_from_db()
    if isinstance(outcome, Sent):
        assert (state, message.error) == ("SENT", None)
        raw = sink.raw[0] if sink else _outbox(settings.data_dir)
        assert f"\r\nTo: {outcome.header}\r\n".encode() in raw
        assert sink is None or sink.recipients == [outcome.envelope]
        return
    change: Any = await StageChange.filter(enrollment_id=enrollment.id).order_by("-id").first()
    assert (state, enrollment.stage, change.reason) == ("FAILED", "FAILED", outcome.reason)
    assert outcome.error in (message.error or ""), message.error
    assert sink is None or sink.rcpt_attempts == 0


@contextmanager
def _way_out(way: str, tmp_path: Path) -> Iterator[tuple[Sink | None, Any]]:
    if way == "outbox":
        yield None, settings_for(tmp_path)
        return
    with smtp_sink(smtputf8=way == "smtputf8") as (sink, url):
        yield sink, settings_for(tmp_path, SMTP_URL=url)


def _outbox(data_dir: Path) -> bytes:
    [eml] = (data_dir / "outbox").iterdir()
    return eml.read_bytes()


async def test_an_unsendable_message_fails_alone_and_the_connection_goes_on(
    org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    """In one batch over one connection to a server without SMTPUTF8: the message
    that needs it FAILED, the others SENT."""
    people = [{"first_name": n, "email": f"{n.lower()}@client.example"} for n in ("Ada", "Kofi", "Bob")]
    enrolled = await setup(org, clock, steps=EMAIL_STEP, people=people)
    await Prospect.filter(id__in=[e.prospect_id for e in enrolled], first_name="Kofi").update(email=KOFI)
    queued = (await scheduler.run_pass(clock)).queued
    with smtp_sink(smtputf8=False) as (sink, url):
        settings = settings_for(tmp_path, SMTP_URL=url, SMTP_CONNECTIONS="1")
        transports = sending.transports_for(settings)
        try:
            states = await sending.send_batch(queued, transports=transports, settings=settings, clock=clock)
        finally:
            await transports.close()
    by_address = {m.to_address: m.state for m in await Message.filter(id__in=queued)}
    assert by_address == {"ada@client.example": "SENT", KOFI: "FAILED", "bob@client.example": "SENT"}
    assert sorted(states.values()) == ["FAILED", "SENT", "SENT"]
    assert sorted(sink.recipients) == ["ada@client.example", "bob@client.example"]
