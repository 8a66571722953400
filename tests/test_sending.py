"""Sending: a real SMTP server on loopback, the send gate, retries, bounces, the file outbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import aiosmtplib
import pytest
from tortoise.transactions import in_transaction

from app import presets
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import compose, mail, sending, store, transports
from app.messaging.models import Direction, Message, MessageState
from app.messaging.transports import (
    Email,
    FileOutbox,
    OutboxSms,
    PermanentError,
    SmtpTransport,
    TransientError,
    Transports,
)
from app.messaging.unsubscribe import read_token
from app.prospects import service as prospects
from app.prospects.models import Channel, Prospect
from app.sequences import scheduler
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from tests.conftest import Org
from tests.smtp_sink import smtp_sink
from tests.test_scheduler import setup

EMAIL_STEP = [StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}", subject="Hi {{ first_name }}")]


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path / "data"), "PUBLIC_URL": "https://leads.example", **env}
    )


async def _queued(org: Org, clock: FrozenClock, steps: list[StepSpec] = EMAIL_STEP) -> tuple[Enrollment, int]:
    await Organization.filter(id=org.id).update(
        email_from="sales@acme.example", postal_address="1 Main St, Springfield"
    )
    [enrollment] = await setup(org, clock, steps=steps)
    [message_id] = (await scheduler.run_pass(clock)).queued
    return enrollment, message_id


async def test_an_email_step_reaches_a_real_smtp_server_with_its_headers(
    org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    _, message_id = await _queued(org, clock)
    with smtp_sink() as (sink, url):
        settings = settings_for(tmp_path, SMTP_URL=url)
        transports = sending.transports_for(settings)
        try:
            state = await sending.send(message_id, transports=transports, settings=settings, clock=clock)
            again = await sending.send(message_id, transports=transports, settings=settings, clock=clock)
        finally:
            await transports.close()
    assert (state, again) == ("SENT", None)
    [email] = sink.received
    message = await Message.get(id=message_id)
    assert sink.recipients == ["ada@client.example"]
    assert (email["From"], email["To"], email["Subject"]) == ("sales@acme.example", "ada@client.example", "Hi Ada")
    assert email["Message-ID"] == message.external_id and message.sent_at == clock.now() and message.attempts == 1
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = email["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://leads.example/u/")
    assert read_token(settings.secret_key, link.rsplit("/", 1)[1]) == (message.prospect_id, message.id)
    body = email.get_payload(decode=True).decode()
    assert body.startswith("Hello Ada") and link in body and "1 Main St, Springfield" in body


async def test_built_emails_survive_unusual_text(org: Org, tmp_path: Path) -> None:
    """Non-ASCII, very long and CR/LF-laden values (template output is prospect data)
    come out as well-formed headers: encoded, folded, never a header of their own."""
    organization = Organization(id=1, name="Acme", email_from="Équipe Acme <sales@acme.example>")
    subject = "Привет, Zoë\r\nBcc: victim@example.com " + "long " * 300
    message = Message(id=7, prospect_id=3, subject=subject, to_address="zoe@client.example", body="Grüße\nzweite Zeile")
    message.created_at = FrozenClock().now()
    email = mail.build_email(message, organization, settings_for(tmp_path))
    assert email.sender == "sales@acme.example" and email.recipient == "zoe@client.example"
    parsed = message_from_bytes(email.data, policy=policy.default)
    assert all(len(line) <= 998 for line in email.data.split(b"\r\n"))
    assert parsed["Bcc"] is None and parsed["Subject"] == " ".join(subject.splitlines())
    assert parsed["From"].addresses[0].display_name == "Équipe Acme"
    assert parsed["From"].addresses[0].addr_spec == "sales@acme.example"
    assert parsed.get_content().startswith("Grüße\nzweite Zeile\n\n--\nUnsubscribe: ")


async def test_transient_failures_are_retried_with_backoff_then_failed(
    org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    enrollment, message_id = await _queued(org, clock)
    waits = []
    with smtp_sink() as (sink, url):
        sink.rcpt_reply = "451 4.3.0 Try again later"
        settings = settings_for(tmp_path, SMTP_URL=url)
        transports = sending.transports_for(settings)
        try:
            for _ in range(5):
                state = await sending.send(message_id, transports=transports, settings=settings, clock=clock)
                message = await Message.get(id=message_id)
                if state == "QUEUED":
                    assert await sending.send(message_id, transports=transports, settings=settings, clock=clock) is None
                    assert message.next_attempt_at is not None
                    waits.append((message.next_attempt_at - clock.now()).total_seconds())
                    clock._now = message.next_attempt_at
        finally:
            await transports.close()
    message = await Message.get(id=message_id)
    assert (message.state, message.attempts, sink.rcpt_attempts) == ("FAILED", 5, 5)
    assert "451" in (message.error or "")
    assert len(waits) == 4 and all(0.75 * 30 * 2**i <= w <= 1.25 * 30 * 2**i for i, w in enumerate(waits))
    await enrollment.refresh_from_db()
    assert enrollment.stage == "FAILED"


async def test_a_5_1_1_refusal_is_a_hard_bounce(org: Org, clock: FrozenClock, tmp_path: Path) -> None:
    enrollment, message_id = await _queued(org, clock)
    with smtp_sink() as (sink, url):
        sink.rcpt_reply = "550 5.1.1 No such user"
        settings = settings_for(tmp_path, SMTP_URL=url)
        transports = sending.transports_for(settings)
        try:
            state = await sending.send(message_id, transports=transports, settings=settings, clock=clock)
        finally:
            await transports.close()
    message = await Message.get(id=message_id)
    prospect = await Prospect.get(id=message.prospect_id)
    await enrollment.refresh_from_db()
    assert (state, message.bounce_type, sink.rcpt_attempts) == ("BOUNCED", "HARD", 1)
    assert prospect.opted_out_channels == ["EMAIL"]
    assert enrollment.stage == "BOUNCED"
    change = await StageChange.filter(enrollment_id=enrollment.id).order_by("-id").first()
    assert change is not None and change.reason == "bounced_hard"


async def test_do_not_contact_between_queueing_and_sending_cancels(
    org: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    enrollment, message_id = await _queued(org, clock)
    prospect = await Prospect.get(id=enrollment.prospect_id)
    one_off = await compose.queue_message(prospect, Channel.EMAIL, "Hi", "A one-off", now=clock.now())

    await prospects.mark_do_not_contact(
        actor=org.actor(Role.AGENT, clock), prospect_id=prospect.id, do_not_contact=True
    )

    with smtp_sink() as (sink, url):
        settings = settings_for(tmp_path, SMTP_URL=url)
        transports = sending.transports_for(settings)
        try:
            step_state = await sending.send(message_id, transports=transports, settings=settings, clock=clock)
            one_off_state = await sending.send(one_off.id, transports=transports, settings=settings, clock=clock)
        finally:
            await transports.close()
    # The step's message was cancelled with its enrollment; the one-off, tied to no
    # enrollment, is stopped by the send gate right before the provider call.
    assert (step_state, one_off_state) == (None, "CANCELLED")
    assert sink.received == [] and sink.rcpt_attempts == 0
    assert [m.state for m in await Message.filter(prospect_id=prospect.id).order_by("id")] == ["CANCELLED", "CANCELLED"]
    await enrollment.refresh_from_db()
    assert enrollment.stage == "OPTED_OUT"


async def test_without_providers_messages_go_to_the_file_outbox(org: Org, clock: FrozenClock, tmp_path: Path) -> None:
    steps = [
        StepSpec(StepType.SMS, 0, body="Ping {{ first_name }}"),
        StepSpec(StepType.EMAIL, 60, body="b", subject="s"),
    ]
    _, sms_id = await _queued(org, clock, steps)
    settings = settings_for(tmp_path)
    transports = sending.transports_for(settings)
    assert await sending.send(sms_id, transports=transports, settings=settings, clock=clock) == "SENT"
    clock.advance(60)
    [email_id] = (await scheduler.run_pass(clock)).queued
    assert await sending.send(email_id, transports=transports, settings=settings, clock=clock) == "SENT"
    outbox = sorted(p.name for p in (settings.data_dir / "outbox").iterdir())
    assert outbox[0].endswith(".eml") and outbox[1] == f"sms-{sms_id}.json"
    assert '"body": "Ping Ada"' in (settings.data_dir / "outbox" / outbox[1]).read_text()


async def test_sms_waits_for_quiet_hours_to_end(org: Org, clock: FrozenClock, tmp_path: Path) -> None:
    _, sms_id = await _queued(org, clock, [StepSpec(StepType.SMS, 0, body="Ping")])
    clock.advance(13 * 3600)  # 22:00 UTC, the prospect's zone (the organization's: UTC)
    settings = settings_for(tmp_path)
    state = await sending.send(sms_id, transports=sending.transports_for(settings), settings=settings, clock=clock)
    message = await Message.get(id=sms_id)
    assert state == "QUEUED" and message.next_attempt_at == clock.now() + timedelta(hours=10)


class _ExplodesFor:
    """An email transport that delivers to the file outbox, except that one
    recipient makes it fail with an unexpected error (not a SendError)."""

    def __init__(self, outbox: FileOutbox, recipient: str) -> None:
        self.outbox, self.recipient = outbox, recipient

    async def send(self, email: Email) -> str:
        if email.recipient == self.recipient:
            raise RuntimeError("the provider client broke")
        return await self.outbox.send(email)

    async def close(self) -> None:
        return None


async def test_one_batch_settles_each_message_on_its_own(org: Org, clock: FrozenClock, tmp_path: Path) -> None:
    """A batch with a sendable message, one the gate stops, and one whose provider
    call fails unexpectedly: SENT, CANCELLED and UNCERTAIN (never resent), all
    written; the failure of one takes nothing from the others."""
    people = [{"first_name": name, "email": f"{name.lower()}@client.example"} for name in ("Ada", "Bob", "Cy")]
    await setup(org, clock, steps=EMAIL_STEP, people=people)
    queued = (await scheduler.run_pass(clock)).queued
    bob = await Prospect.get(email="bob@client.example")
    await Prospect.filter(id=bob.id).update(opted_out_channels=["EMAIL"])  # as an unsubscribe would, minus its effects
    settings = settings_for(tmp_path)
    outbox = FileOutbox(settings.data_dir / "outbox")
    transports = Transports(email=_ExplodesFor(outbox, "cy@client.example"), sms=OutboxSms(outbox))
    states = await sending.send_batch(queued, transports=transports, settings=settings, clock=clock)
    by_address = {m.to_address: m for m in await Message.filter(id__in=queued)}
    assert {address: m.state for address, m in by_address.items()} == {
        "ada@client.example": "SENT",
        "bob@client.example": "CANCELLED",
        "cy@client.example": "UNCERTAIN",
    }
    assert sorted(states.values()) == ["CANCELLED", "SENT", "UNCERTAIN"]
    assert by_address["cy@client.example"].error == "unexpected RuntimeError while sending; not resent"
    assert all(m.lease_until is None for m in by_address.values())
    assert await sending.send_batch(queued, transports=transports, settings=settings, clock=clock) == {}
    assert len(list((settings.data_dir / "outbox").iterdir())) == 1


async def test_one_smtp_connection_goes_on_after_refusals_and_unsendable_addresses() -> None:
    """A refused recipient resets the envelope and an address no SMTP command line can
    carry is refused before the envelope opens: either way the same connection sends
    the next message."""
    with smtp_sink() as (sink, url):
        transport = SmtpTransport(url, connections=1)
        try:
            sink.rcpt_reply = "550 5.1.1 No such user"
            with pytest.raises(PermanentError) as bounced:
                await transport.send(
                    Email("s@acme.example", "gone@client.example", b"Subject: 1\r\n\r\none\r\n", "<1>")
                )
            sink.rcpt_reply = None
            for unsendable in ("ad\u00e9@client.example", "a b@client.example"):
                with pytest.raises(PermanentError) as refused:
                    await transport.send(Email("s@acme.example", unsendable, b"Subject: 2\r\n\r\ntwo\r\n", "<2>"))
                assert not refused.value.hard_bounce
            sent = await transport.send(
                Email("Sales <s@acme.example>", "ok@client.example", b"Subject: 3\r\n\r\n3\r\n", "<3>")
            )
            assert len(transport._all) == 1  # one connection throughout
        finally:
            await transport.close()
    assert bounced.value.hard_bounce and sent == "<3>"
    assert sink.recipients == ["ok@client.example"] and [m["Subject"] for m in sink.received] == ["3"]


async def test_the_pool_opens_a_connection_only_for_sends_that_run_at_once() -> None:
    """The connection used last is used next: sends one after another keep to one
    connection, three at once open three, and after them one is enough again."""
    with smtp_sink() as (sink, url):
        sink.delay = 0.05  # each message takes a while, so concurrent sends overlap
        transport = SmtpTransport(url, connections=8)

        def email(n: int) -> Email:
            return Email("s@acme.example", f"{n}@client.example", f"Subject: {n}\r\n\r\n{n}\r\n".encode(), f"<{n}>")

        try:
            for n in range(3):
                await transport.send(email(n))
            assert len(transport._all) == 1
            await asyncio.gather(*(transport.send(email(n)) for n in range(3, 6)))
            assert len(transport._all) == 3
            first = transport._all[:]
            for n in range(6, 9):
                await transport.send(email(n))
            assert transport._all == first  # none opened, none dropped
        finally:
            await transport.close()
    assert sorted(sink.recipients) == sorted(f"{n}@client.example" for n in range(9))


async def test_a_server_without_esmtp_is_greeted_with_helo() -> None:
    """Over smtp:// aiosmtplib greets on connecting; a connection it has not greeted
    (as over smtps://) is greeted by the transaction, with HELO when EHLO is refused."""
    with smtp_sink(esmtp=False) as (sink, url):
        ungreeted = aiosmtplib.SMTP(hostname="127.0.0.1", port=int(url.rsplit(":", 1)[1]), start_tls=False)
        await ungreeted.connect()
        assert ungreeted.is_ehlo_or_helo_needed
        try:
            await transports._transaction(
                ungreeted, Email("s@acme.example", "ok@client.example", b"Subject: old\r\n\r\nhi\r\n", "<1>")
            )
            transport = SmtpTransport(url, connections=1)
            await transport.send(Email("s@acme.example", "ok@client.example", b"Subject: new\r\n\r\nhi\r\n", "<2>"))
            await transport.close()
        finally:
            await ungreeted.quit()
    assert [m["Subject"] for m in sink.received] == ["old", "new"]


async def test_a_transaction_past_its_deadline_is_transient_and_its_connection_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transports, "TRANSACTION_SECONDS", 0.2)
    with smtp_sink() as (sink, url):
        transport = SmtpTransport(url, connections=1)
        try:
            sink.delay = 1.0  # DATA is answered after a second
            with pytest.raises(TransientError):
                await transport.send(Email("s@acme.example", "a@client.example", b"Subject: 1\r\n\r\n1\r\n", "<1>"))
            assert transport._all == []  # its replies could no longer be paired with commands
            sink.delay = 0.0
            # A deadline a busy machine's connect cannot miss: the next send opens a new connection.
            monkeypatch.setattr(transports, "TRANSACTION_SECONDS", 30.0)
            await transport.send(Email("s@acme.example", "b@client.example", b"Subject: 2\r\n\r\n2\r\n", "<2>"))
        finally:
            await transport.close()
    assert sink.recipients[-1] == "b@client.example"


async def test_an_email_that_cannot_be_built_is_a_permanent_failure_not_an_uncertain_send(tmp_path: Path) -> None:
    """Nothing reached a provider: whatever stops the build is a PermanentError, so
    the message is FAILED (R5.2 keeps UNCERTAIN for what a provider may have taken)."""
    organization = Organization(id=1, name="Acme", email_from="sales@acme.example")
    message = Message(id=7, prospect_id=3, subject="Hi", to_address="zoe@client.example", body="a lone \ud800")
    message.created_at = FrozenClock().now()
    with pytest.raises(PermanentError, match="could not be built: UnicodeEncodeError") as error:
        sending._built(message, organization, settings_for(tmp_path))
    assert error.value.reason == "unsendable_message" and not error.value.hard_bounce


@pytest.mark.postgres
async def test_the_messages_still_leased_stay_locked_until_their_outcomes_are_written(
    org: Org, clock: FrozenClock
) -> None:
    """A retried recording reads which messages are still its own and locks them, so
    nothing (the lease sweep, another recording) changes them before it writes."""
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    [prospect], _ = await prospects.create_prospects(
        actor=admin, inputs=[{"first_name": "Ada", "email": "ada@client.example"}]
    )
    message = await Message.create(
        organization_id=org.id,
        prospect_id=prospect.id,
        channel=Channel.EMAIL,
        direction=Direction.OUTBOUND,
        state=MessageState.SENDING,
        body="Hi",
        created_at=clock.now(),
        claim_token=7,
        lease_until=clock.now() + timedelta(minutes=5),
    )
    held, go = asyncio.Event(), asyncio.Event()

    async def recording() -> None:
        async with in_transaction():
            assert await store.still_leased([message.id], token=7) == {message.id}
            held.set()
            await go.wait()

    task = asyncio.create_task(recording())
    await held.wait()

    async def sweeping_one() -> None:
        await Message.filter(id=message.id).update(state=MessageState.UNCERTAIN)

    sweeping = asyncio.create_task(sweeping_one())
    await asyncio.sleep(0.3)
    waited = not sweeping.done()
    go.set()
    await task
    await sweeping
    assert waited
