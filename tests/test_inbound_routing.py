"""Issue 21, item 3: no reply is credited to the wrong person. Routing prefers the
thread (In-Reply-To / References; for an SMS, the prospect our latest SMS to the
number went to), then the one prospect carrying the address; several carrying
it and no thread deciding is an error on the API and unrouted on the webhooks,
but for an SMS STOP or START, which speaks for the number on both
(inbound.for_the_number)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import ids
from app.accounts import service as accounts
from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.events.models import Event
from app.messaging import sending, twilio
from app.messaging.models import Message
from app.prospects import suppressions
from app.prospects.models import Channel, Prospect, Suppression
from app.prospects.service import create_prospect
from app.sequences import scheduler
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from tests import test_email_webhook as email_webhook
from tests import test_twilio_webhooks as twilio_webhook
from tests.conftest import GraphQL, Org, mutate
from tests.test_scheduler import setup

SHARED = "+12025550143"  # a household's or a switchboard's number, on two records
OUR_NUMBER = twilio_webhook.OUR_NUMBER
SMS_STEPS = [StepSpec(StepType.SMS, 0, body="Hi {{ first_name }}"), StepSpec(StepType.SMS, 3600, body="Still there?")]
EMAIL_STEPS = [
    StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi Ada"),
    StepSpec(StepType.EMAIL, 3600, body="b", subject="s"),
]
PEOPLE = [
    {"first_name": "Ada", "last_name": "King", "email": "ada@client.example", "phone": SHARED},
    {"first_name": "Bob", "last_name": "King", "email": "bob@client.example", "phone": SHARED},
]
RECORDED = "message { body } prospect { firstName conversationState }"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "PUBLIC_URL": "https://leads.example",
            "TWILIO_AUTH_TOKEN": twilio_webhook.AUTH_TOKEN,
            "INBOUND_EMAIL_TOKEN": email_webhook.TOKEN,
        }
    )


async def _enrolled(
    org: Org, clock: FrozenClock, settings: Settings, steps: list[StepSpec]
) -> dict[str, tuple[Enrollment, int]]:
    """Ada and Bob enrolled, each first message queued (not sent), by first name."""
    changes = accounts.OrganizationChanges(sms_from=OUR_NUMBER, email_from="sales@acme.example")
    await accounts.update_organization(actor=org.actor(Role.ADMIN, clock), changes=changes, settings=settings)
    enrollments = await setup(org, clock, steps=steps, people=[dict(p) for p in PEOPLE])
    queued = (await scheduler.run_pass(clock)).queued
    by_prospect = {m.prospect_id: m.id for m in await Message.filter(id__in=queued)}
    names = {p.id: p.first_name for p in await Prospect.filter(organization_id=org.id)}
    return {names[e.prospect_id]: (e, by_prospect[e.prospect_id]) for e in enrollments}


async def _send(message_id: int, settings: Settings, clock: FrozenClock) -> Message:
    transports = sending.transports_for(settings)
    try:
        assert await sending.send(message_id, transports=transports, settings=settings, clock=clock) == "SENT"
    finally:
        await transports.close()
    return await Message.get(id=message_id)


async def _stages(enrolled: dict[str, tuple[Enrollment, int]]) -> dict[str, str]:
    return {name: (await Enrollment.get(id=e.id)).stage for name, (e, _) in enrolled.items()}


async def _record(gql: GraphQL, org: Org, role: Role = Role.ADMIN, **input_: str) -> dict[str, object]:
    return await mutate(gql, org.tokens[role], "recordInboundMessage", RECORDED, **input_)


async def _events(org: Org) -> Counter[tuple[str, int | None]]:
    """The organization's events by type and prospect."""
    return Counter((str(e.type), e.prospect_id) for e in await Event.filter(organization_id=org.id))


async def _opted_out(name: str) -> list[str]:
    return (await Prospect.get(first_name=name)).opted_out_channels


async def _sms_entries(org: Org) -> list[tuple[str, str, int | None]]:
    rows = await Suppression.filter(organization_id=org.id, channel="SMS").order_by("id")
    return [(r.address, r.reason, r.prospect_id) for r in rows]


# recordInboundMessage


async def test_a_shared_number_with_no_thread_is_refused_naming_sender_and_in_reply_to(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    before = await _stages(enrolled)

    answer = await _record(gql, org, channel="SMS", body="Call me", **{"from": "(202) 555-0143"})

    [error] = answer["errors"]  # type: ignore[misc]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", ["input", "from"])
    assert "2 prospects have this number" in error["message"] and "inReplyTo" in error["message"]
    assert answer["message"] is None and await Message.filter(direction="INBOUND").count() == 0
    assert await _stages(enrolled) == before


async def test_stop_and_start_from_a_shared_number_speak_for_it_through_the_api_too(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    """As on the Twilio webhook: with no thread to say who texted, STOP opts out
    every record carrying the number and START opts each back in; the message is
    credited to none, so the payload names no message and no prospect."""
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    ada, bob = enrolled["Ada"][0].prospect_id, enrolled["Bob"][0].prospect_id
    before = await _events(org)

    stop = await _record(gql, org, channel="SMS", body="STOP", **{"from": "(202) 555-0143"})

    assert stop == {"message": None, "prospect": None, "errors": []}
    assert (await _opted_out("Ada"), await _opted_out("Bob")) == (["SMS"], ["SMS"])
    assert await _stages(enrolled) == {"Ada": "OPTED_OUT", "Bob": "OPTED_OUT"}
    assert await _sms_entries(org) == [(SHARED, "OPTED_OUT", ada)]
    assert await Message.filter(direction="INBOUND").count() == 0
    stopped = await _events(org) - before  # each change once, and no MESSAGE_RECEIVED
    assert stopped == Counter(
        {
            ("PROSPECT_UPDATED", ada): 1,
            ("PROSPECT_UPDATED", bob): 1,
            ("STAGE_CHANGED", ada): 1,
            ("STAGE_CHANGED", bob): 1,
        }
    )

    start = await _record(gql, org, channel="SMS", body="Start", **{"from": SHARED})

    assert start == {"message": None, "prospect": None, "errors": []}
    assert (await _opted_out("Ada"), await _opted_out("Bob")) == ([], [])
    assert await _sms_entries(org) == []  # the entry the STOP made, which no person added
    assert await _stages(enrolled) == {"Ada": "OPTED_OUT", "Bob": "OPTED_OUT"}  # finished stays finished
    assert await _events(org) - before - stopped == Counter(
        {("PROSPECT_UPDATED", ada): 1, ("PROSPECT_UPDATED", bob): 1}
    )
    assert await Message.filter(direction="INBOUND").count() == 0


async def test_start_from_a_shared_number_leaves_an_opt_out_a_person_recorded(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    bob = enrolled["Bob"][0].prospect_id
    opted = await mutate(
        gql,
        org.tokens[Role.MANAGER],
        "optOutProspect",
        "prospect { id }",
        id=ids.encode("Prospect", bob),
        channel="SMS",
    )
    assert opted["errors"] == []

    start = await _record(gql, org, channel="SMS", body="START", **{"from": SHARED})

    assert start["errors"] == [] and start["message"] is None
    assert (await _opted_out("Ada"), await _opted_out("Bob")) == ([], [])
    assert await _sms_entries(org) == [(SHARED, "OPTED_OUT", bob)]  # a person's: START does not take it back
    for name in ("Ada", "Bob"):
        assert await suppressions.blocked_channels(await Prospect.get(first_name=name)) == {Channel.SMS}


async def test_yes_from_a_shared_number_nobody_opted_out_is_an_ordinary_text(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    """An opt-in keyword with nothing to opt back into answers us: who wrote it is unknown."""
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    before = await _events(org)

    answer = await _record(gql, org, channel="SMS", body="Yes", **{"from": SHARED})

    [error] = answer["errors"]  # type: ignore[misc]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", ["input", "from"])
    assert await _events(org) == before and await _stages(enrolled) == {"Ada": "APPROACHING", "Bob": "APPROACHING"}
    assert await twilio.receive_sms(sid="SM-yes", to=OUR_NUMBER, sender=SHARED, body="Yes", clock=clock) == (
        twilio.Received.UNROUTED
    )
    assert await _events(org) == before


async def test_an_agent_speaks_for_the_number_only_through_the_records_it_may_see(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    """An AGENT's STOP reaches the prospects it may work: with one of them carrying
    the number it is that one's, as before; the number's entry, which every STOP
    writes, blocks the other record too (R12.1), but its flags stay the owner's."""
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    await Prospect.filter(first_name="Bob").update(owner_id=org.users[Role.MANAGER].id)

    stop = await _record(gql, org, Role.AGENT, channel="SMS", body="STOP", **{"from": SHARED})

    assert stop["errors"] == [] and stop["prospect"] == {"firstName": "Ada", "conversationState": "NEW"}
    assert (await _opted_out("Ada"), await _opted_out("Bob")) == (["SMS"], [])
    assert await _stages(enrolled) == {"Ada": "OPTED_OUT", "Bob": "OPTED_OUT"}
    await Prospect.filter(first_name="Bob").update(owner_id=org.users[Role.AGENT].id)  # now the AGENT sees both

    start = await _record(gql, org, Role.AGENT, channel="SMS", body="START", **{"from": SHARED})

    assert start == {"message": None, "prospect": None, "errors": []}
    assert (await _opted_out("Ada"), await _opted_out("Bob")) == ([], [])
    assert await _sms_entries(org) == []


async def test_a_shared_number_goes_to_whom_we_texted_last(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    await _send(enrolled["Bob"][1], settings, clock)
    clock.advance(60)
    await _send(enrolled["Ada"][1], settings, clock)  # Ada's record is the older: by id, Bob's would win

    answer = await _record(gql, org, channel="SMS", body="Who is this?", **{"from": SHARED})

    assert answer["errors"] == [] and answer["prospect"] == {"firstName": "Ada", "conversationState": "REPLY_NEEDED"}
    assert await _stages(enrolled) == {"Ada": "REPLIED", "Bob": "APPROACHING"}


async def test_in_reply_to_says_which_of_a_shared_number(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    to_ada = await _send(enrolled["Ada"][1], settings, clock)
    clock.advance(60)
    await _send(enrolled["Bob"][1], settings, clock)

    answer = await _record(gql, org, channel="SMS", body="STOP", inReplyTo=to_ada.external_id or "", **{"from": SHARED})

    assert answer["errors"] == [] and answer["prospect"] == {"firstName": "Ada", "conversationState": "AWAITING_REPLY"}
    ada, bob = await Prospect.get(first_name="Ada"), await Prospect.get(first_name="Bob")
    assert (ada.opted_out_channels, bob.opted_out_channels) == (["SMS"], [])  # Ada's STOP, credited to Ada
    # ... and the number is suppressed, whichever record carries it (R12.1).
    assert await _stages(enrolled) == {"Ada": "OPTED_OUT", "Bob": "OPTED_OUT"}


async def test_our_last_sms_to_someone_who_since_changed_number_decides_nothing(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    await _send(enrolled["Bob"][1], settings, clock)
    await Prospect.filter(first_name="Bob").update(phone="+12025550199")

    answer = await _record(gql, org, channel="SMS", body="Sounds good", **{"from": SHARED})

    assert answer["prospect"] == {"firstName": "Ada", "conversationState": "REPLY_NEEDED"}  # the only one carrying it
    assert await _stages(enrolled) == {"Ada": "REPLIED", "Bob": "APPROACHING"}


async def test_an_email_thread_beats_the_address_and_a_colleagues_unsubscribe_is_a_reply(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    enrolled = await _enrolled(org, clock, settings, EMAIL_STEPS)
    to_ada = await _send(enrolled["Ada"][1], settings, clock)

    # Bob, himself a prospect, answers in Ada's thread: the conversation is Ada's.
    answer = await _record(
        gql,
        org,
        channel="EMAIL",
        body="Please remove me from your list.",
        inReplyTo=to_ada.external_id or "",
        **{"from": "bob@client.example"},
    )

    assert answer["prospect"] == {"firstName": "Ada", "conversationState": "REPLY_NEEDED"}
    assert await _stages(enrolled) == {"Ada": "REPLIED", "Bob": "APPROACHING"}
    ada, bob = await Prospect.get(first_name="Ada"), await Prospect.get(first_name="Bob")
    assert (ada.opted_out_channels, bob.opted_out_channels) == ([], [])  # Bob asked, not Ada; his link serves him


async def test_an_email_address_finds_its_one_prospect_in_any_case(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    enrolled = await _enrolled(org, clock, settings, EMAIL_STEPS)

    answer = await _record(gql, org, channel="EMAIL", body="Unsubscribe", **{"from": "Bob@Client.Example"})

    assert answer["prospect"] == {"firstName": "Bob", "conversationState": "REPLY_NEEDED"}
    assert await _stages(enrolled) == {"Ada": "APPROACHING", "Bob": "OPTED_OUT"}


# Webhooks


async def test_twilio_leaves_a_shared_number_unrouted_until_we_texted_one(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    async with httpx.AsyncClient(base_url=live_server) as http:
        client = twilio_webhook.Twilio(http, settings)
        first = await client.sms("SM-ambiguous", "Who is this?")
        assert first.status_code == 200
        assert await Message.filter(direction="INBOUND").count() == 0
        assert await _stages(enrolled) == {"Ada": "APPROACHING", "Bob": "APPROACHING"}

        await _send(enrolled["Ada"][1], settings, clock)
        await client.sms("SM-routed", "Who is this?")

    [received] = await Message.filter(direction="INBOUND")
    assert (received.external_id, received.prospect_id) == ("SM-routed", enrolled["Ada"][0].prospect_id)
    assert await _stages(enrolled) == {"Ada": "REPLIED", "Bob": "APPROACHING"}


async def test_twilio_stop_from_a_shared_number_opts_out_each_record(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    """STOP speaks for the number: with nothing to say who texted it, every record
    carrying the number is opted out of SMS, and the message is credited to none."""
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    async with httpx.AsyncClient(base_url=live_server) as http:
        client = twilio_webhook.Twilio(http, settings)
        stop = await client.sms("SM-stop", "STOP")
        assert stop.status_code == 200
        again = await client.sms("SM-stop", "STOP")  # Twilio's retry
        assert again.status_code == 200

    assert await Message.filter(direction="INBOUND").count() == 0
    assert await _stages(enrolled) == {"Ada": "OPTED_OUT", "Bob": "OPTED_OUT"}
    for name in ("Ada", "Bob"):
        assert (await Prospect.get(first_name=name)).opted_out_channels == ["SMS"]


@pytest.mark.parametrize("body", ["STOP", "START"])
async def test_twilio_keyword_from_a_shared_number_writes_the_numbers_entry_once_per_carrier(
    org: Org, clock: FrozenClock, settings: Settings, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    """consent writes (or withdraws) the number's entry for each record carrying
    it; the keyword writes no entry of its own for a number someone has."""
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    carriers = {e.prospect_id for e, _ in enrolled.values()}
    if body == "START":
        await twilio.receive_sms(sid="SM-stop", to=OUR_NUMBER, sender=SHARED, body="STOP", clock=clock)
    written: list[int | None] = []
    withdrawn: list[str | None] = []
    record, withdraw = suppressions.record, suppressions.withdraw_opt_out

    async def counting_record(organization_id: int, entries: Any, **kwargs: Any) -> Any:
        if any(e.address == SHARED for e in entries):
            written.append(kwargs.get("prospect_id"))
        return await record(organization_id, entries, **kwargs)

    async def counting_withdraw(organization_id: int, channel: Channel, address: str | None) -> int:
        withdrawn.append(address)
        return await withdraw(organization_id, channel, address)

    monkeypatch.setattr(suppressions, "record", counting_record)
    monkeypatch.setattr(suppressions, "withdraw_opt_out", counting_withdraw)

    answer = await twilio.receive_sms(sid=f"SM-{body}", to=OUR_NUMBER, sender=SHARED, body=body, clock=clock)

    assert answer == twilio.Received.RECORDED
    if body == "STOP":
        assert Counter(written) == Counter(carriers) and withdrawn == []  # each carrier's, none the keyword's own
        assert await Suppression.filter(organization_id=org.id, address=SHARED).count() == 1
    else:
        assert written == [] and withdrawn == [SHARED, SHARED]
        assert await Suppression.filter(organization_id=org.id, address=SHARED).count() == 0
    expected = ["SMS"] if body == "STOP" else []
    assert [p.opted_out_channels for p in await Prospect.filter(id__in=carriers)] == [expected, expected]


async def test_twilio_start_from_a_number_no_prospect_has_withdraws_its_stop(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    unknown = "+12025550199"
    await _enrolled(org, clock, settings, SMS_STEPS)
    stop = await twilio.receive_sms(sid="SM-1", to=OUR_NUMBER, sender=unknown, body="STOP", clock=clock)
    assert stop == twilio.Received.RECORDED
    assert await _sms_entries(org) == [(unknown, "OPTED_OUT", None)]
    start = await twilio.receive_sms(sid="SM-2", to=OUR_NUMBER, sender=unknown, body="START", clock=clock)
    assert start == twilio.Received.RECORDED and await _sms_entries(org) == []
    again = await twilio.receive_sms(sid="SM-3", to=OUR_NUMBER, sender=unknown, body="START", clock=clock)
    assert again == twilio.Received.UNROUTED  # nothing to opt into, from no one we know


async def test_twilio_outcomes_for_a_shared_number(org: Org, clock: FrozenClock, settings: Settings) -> None:
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    ambiguous = await twilio.receive_sms(sid="SM-1", to=OUR_NUMBER, sender=SHARED, body="hi", clock=clock)
    await _send(enrolled["Bob"][1], settings, clock)
    routed = await twilio.receive_sms(sid="SM-2", to=OUR_NUMBER, sender=SHARED, body="hi", clock=clock)
    assert (ambiguous, routed) == (twilio.Received.UNROUTED, twilio.Received.RECORDED)
    assert await _stages(enrolled) == {"Ada": "APPROACHING", "Bob": "REPLIED"}


async def test_the_email_webhook_prefers_the_thread_then_the_address(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrolled = await _enrolled(org, clock, settings, EMAIL_STEPS)
    to_ada = await _send(enrolled["Ada"][1], settings, clock)
    threaded = email_webhook._answering("reply_threaded_quoted.eml", to_ada).replace(
        b"ada@client.example", b"bob@client.example"
    )
    unthreaded = (email_webhook.CORPUS / "reply_unthreaded_new_subject.eml").read_bytes()
    unthreaded = unthreaded.replace(b"ada@client.example", b"BOB@client.example")
    async with httpx.AsyncClient(base_url=live_server) as http:
        by_thread = await email_webhook._post(http, threaded)
        assert by_thread.json() == {"result": "recorded", "kind": "reply"}
        assert await _stages(enrolled) == {"Ada": "REPLIED", "Bob": "APPROACHING"}  # Bob wrote, in Ada's thread

        by_address = await email_webhook._post(http, unthreaded)
    assert by_address.json() == {"result": "recorded", "kind": "reply"}
    assert await _stages(enrolled) == {"Ada": "REPLIED", "Bob": "REPLIED"}
    received = await Message.filter(direction="INBOUND").order_by("id")
    assert [m.prospect_id for m in received] == [enrolled["Ada"][0].prospect_id, enrolled["Bob"][0].prospect_id]


async def test_the_email_webhook_records_a_colleagues_unsubscribe_in_a_thread_as_a_reply(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    enrolled = await _enrolled(org, clock, settings, EMAIL_STEPS)
    to_ada = await _send(enrolled["Ada"][1], settings, clock)
    raw = email_webhook._answering("reply_please_stop.eml", to_ada).replace(
        b"ada@client.example", b"bob@client.example"
    )
    async with httpx.AsyncClient(base_url=live_server) as http:
        answer = await email_webhook._post(http, raw)
    assert answer.json() == {"result": "recorded", "kind": "unsubscribe_request"}
    assert await _stages(enrolled) == {"Ada": "REPLIED", "Bob": "APPROACHING"}
    assert [p.opted_out_channels for p in await Prospect.all().order_by("id")] == [[], []]


async def test_yes_from_someone_who_never_opted_out_is_a_reply(
    gql: GraphQL, org: Org, clock: FrozenClock, settings: Settings
) -> None:
    """YES opts back in only someone who opted out; to anyone else it answers us."""
    enrolled = await _enrolled(org, clock, settings, SMS_STEPS)
    to_ada = await _send(enrolled["Ada"][1], settings, clock)

    answer = await _record(gql, org, channel="SMS", body="Yes", inReplyTo=to_ada.external_id or "", **{"from": SHARED})

    assert answer["errors"] == [] and answer["prospect"] == {"firstName": "Ada", "conversationState": "REPLY_NEEDED"}
    assert await _stages(enrolled) == {"Ada": "REPLIED", "Bob": "APPROACHING"}


async def test_twilio_stop_from_a_number_no_prospect_has_suppresses_it(
    org: Org, clock: FrozenClock, settings: Settings, live_server: str
) -> None:
    """The person may be imported later: their STOP is kept for the number."""
    unknown = "+12025550199"
    await _enrolled(org, clock, settings, SMS_STEPS)  # the organization sends SMS from OUR_NUMBER
    async with httpx.AsyncClient(base_url=live_server) as http:
        client = twilio_webhook.Twilio(http, settings)
        assert (await client.sms("SM-stranger", "STOP", From=unknown)).status_code == 200
    assert await Suppression.filter(organization_id=org.id, channel="SMS", address=unknown).count() == 1
    admin = org.actor(Role.ADMIN, clock)
    later = await create_prospect(actor=admin, values={"first_name": "Cy", "phone": unknown})
    assert await suppressions.blocked_channels(later) == {Channel.SMS}
    assert await Message.filter(direction="INBOUND").count() == 0
