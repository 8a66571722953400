"""R6.2: Twilio's webhooks over real HTTP: signatures, STOP and START, replies,
concurrent duplicates, delivery status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from app.accounts import service as accounts
from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import classify, sending, twilio
from app.messaging.classify import Kind
from app.messaging.models import Message
from app.prospects.models import Prospect
from app.sequences import scheduler
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from tests.conftest import Org
from tests.test_scheduler import setup

AUTH_TOKEN = "twilio-auth-token-for-tests"
OUR_NUMBER = "+12025550100"
ADA = "+12025550143"  # the phone setup() gives Ada
STEPS = [StepSpec(StepType.SMS, 0, body="Hi {{ first_name }}"), StepSpec(StepType.SMS, 0, body="Still there?")]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "PUBLIC_URL": "https://leads.example",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
    )


def test_the_signature_matches_twilios_published_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio.signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("stop", Kind.OPT_OUT),
        (" Stop.", Kind.OPT_OUT),
        ("STOPALL", Kind.OPT_OUT),
        ("OPT OUT", Kind.OPT_OUT),
        ("opt-out", Kind.OPT_OUT),
        ("optout", Kind.OPT_OUT),
        ("unsubscribe", Kind.OPT_OUT),
        ("REVOKE", Kind.OPT_OUT),
        ("Cancel!", Kind.OPT_OUT),
        ("end", Kind.OPT_OUT),
        ("Quit", Kind.OPT_OUT),
        ("\uff33\uff34\uff2f\uff30", Kind.OPT_OUT),  # full-width STOP
        ("START", Kind.OPT_IN),
        ("unstop", Kind.OPT_IN),
        ("Yes", Kind.OPT_IN),
        ("please stop", Kind.REPLY),
        ("stop it", Kind.REPLY),
        ("", Kind.REPLY),
    ],
)
def test_keywords(body: str, kind: Kind) -> None:
    assert classify.keyword(body) == kind


class Twilio:
    """Posts forms the way Twilio does: signed for PUBLIC_URL + path."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http, self.settings = http, settings

    async def post(self, path: str, form: dict[str, str], *, token: str = AUTH_TOKEN) -> httpx.Response:
        signature = twilio.signature(token, self.settings.public_url + path, form.items())
        return await self.http.post(path, data=form, headers={"X-Twilio-Signature": signature})

    async def sms(self, sid: str, body: str, **extra: str) -> httpx.Response:
        form = {"MessageSid": sid, "AccountSid": "AC1", "From": ADA, "To": OUR_NUMBER, "Body": body, **extra}
        return await self.post("/webhooks/twilio/sms", form)


async def _first_sms_sent(org: Org, clock: FrozenClock, settings: Settings) -> tuple[Enrollment, int]:
    """The first step sent, the second queued (not yet sent)."""
    changes = accounts.OrganizationChanges(sms_from=OUR_NUMBER)
    await accounts.update_organization(actor=org.actor(Role.ADMIN, clock), changes=changes, settings=settings)
    [enrollment] = await setup(org, clock, steps=STEPS)
    transports = sending.transports_for(settings)
    [first] = (await scheduler.run_pass(clock)).queued
    assert await sending.send(first, transports=transports, settings=settings, clock=clock) == "SENT"
    [second] = (await scheduler.run_pass(clock)).queued
    return enrollment, second


async def test_stop_opts_out_and_nothing_queued_goes_out_then_start_opts_back_in(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, queued = await _first_sms_sent(org, clock, settings)
    async with httpx.AsyncClient(base_url=live_server) as http:
        answer = await Twilio(http, settings).sms("SM-stop", " Stop.")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/xml")
        assert answer.text == twilio_empty()
        prospect = await Prospect.get(phone=ADA)
        await enrollment.refresh_from_db()
        assert prospect.opted_out_channels == ["SMS"] and enrollment.stage == "OPTED_OUT"
        assert prospect.conversation_state == "AWAITING_REPLY"  # a keyword is not a reply
        transports = sending.transports_for(settings)
        assert await sending.send(queued, transports=transports, settings=settings, clock=clock) is None
        assert (await Message.get(id=queued)).state == "CANCELLED"

        await Twilio(http, settings).sms("SM-start", "START")
    prospect = await Prospect.get(phone=ADA)
    await enrollment.refresh_from_db()
    assert prospect.opted_out_channels == [] and enrollment.stage == "OPTED_OUT"  # finished stays finished
    assert await Message.filter(direction="INBOUND").count() == 2


async def test_please_stop_is_a_reply_recorded_for_review(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, queued = await _first_sms_sent(org, clock, settings)
    async with httpx.AsyncClient(base_url=live_server) as http:
        await Twilio(http, settings).sms("SM-please", "please stop")
    prospect = await Prospect.get(phone=ADA)
    await enrollment.refresh_from_db()
    [received] = await Message.filter(direction="INBOUND")
    assert (received.body, received.external_id, received.state) == ("please stop", "SM-please", "RECEIVED")
    assert prospect.conversation_state == "REPLY_NEEDED" and prospect.opted_out_channels == []
    assert enrollment.stage == "REPLIED" and (await Message.get(id=queued)).state == "CANCELLED"


async def test_one_message_sid_five_times_at_once_is_one_message_and_one_transition(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, _ = await _first_sms_sent(org, clock, settings)
    async with httpx.AsyncClient(base_url=live_server) as http:
        twilio_client = Twilio(http, settings)
        answers = await asyncio.gather(*(twilio_client.sms("SM-same", "STOP") for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert await Message.filter(direction="INBOUND").count() == 1
    assert await StageChange.filter(enrollment_id=enrollment.id, to_stage="OPTED_OUT").count() == 1


async def test_a_bad_signature_is_403_and_changes_nothing(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrollment, _ = await _first_sms_sent(org, clock, settings)
    form = {"MessageSid": "SM-forged", "From": ADA, "To": OUR_NUMBER, "Body": "STOP"}
    async with httpx.AsyncClient(base_url=live_server) as http:
        forged = await Twilio(http, settings).post("/webhooks/twilio/sms", form, token="not-the-token")
        unsigned = await http.post("/webhooks/twilio/sms", data=form)
        # Signed for another URL than PUBLIC_URL + path: refused too.
        other = twilio.signature(AUTH_TOKEN, live_server + "/webhooks/twilio/sms", form.items())
        elsewhere = await http.post("/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": other})
    assert [r.status_code for r in (forged, unsigned, elsewhere)] == [403, 403, 403]
    await enrollment.refresh_from_db()
    assert enrollment.stage == "APPROACHING" and await Message.filter(direction="INBOUND").count() == 0
    assert (await Prospect.get(phone=ADA)).opted_out_channels == []


async def test_delivery_status_callbacks(org: Org, clock: FrozenClock, settings: Settings, live_server: str) -> None:
    await _first_sms_sent(org, clock, settings)
    sent = await Message.get(direction="OUTBOUND", state="SENT")
    async with httpx.AsyncClient(base_url=live_server) as http:
        client = Twilio(http, settings)
        status = "/webhooks/twilio/status"
        delivered = await client.post(status, {"MessageSid": sent.external_id or "", "MessageStatus": "delivered"})
        late = await client.post(status, {"MessageSid": sent.external_id or "", "MessageStatus": "sent"})
    assert (delivered.status_code, late.status_code) == (204, 204)
    assert (await Message.get(id=sent.id)).state == "DELIVERED"  # a late "sent" never goes back


def twilio_empty() -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@pytest.mark.parametrize(
    "body", ["stop", " Stop.", "STOPALL", "OPT OUT", "unsubscribe", "REVOKE", "\uff33\uff34\uff2f\uff30"]
)
async def test_each_stop_variant_opts_out_and_finishes_opted_out(
    org: Org, clock: FrozenClock, settings: Settings, body: str
) -> None:
    enrollment, queued = await _first_sms_sent(org, clock, settings)
    outcome = await twilio.receive_sms(sid=f"SM-{body!r}", to=OUR_NUMBER, sender=ADA, body=body, clock=clock)
    await enrollment.refresh_from_db()
    assert outcome is twilio.Received.RECORDED and enrollment.stage == "OPTED_OUT"
    assert (await Prospect.get(phone=ADA)).opted_out_channels == ["SMS"]
    assert (await Message.get(id=queued)).state == "CANCELLED"
