"""R12.1: every opt-out path writes the organization's suppression list, so the
address stays blocked whichever record carries it: a second record's enrollments
finish, the send gate cancels what was queued for it before the opt-out, and
enrolling it is refused. Also: START withdraws only its own entry,
``blockedChannels`` is the union of causes, NO_ADDRESS at enrollment, and
``suppressions.record`` keeps what exists."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app import ids, presets
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.errors import DoNotContact, NoAddress
from app.messaging import compose, sending, twilio
from app.messaging.models import Message
from app.messaging.unsubscribe import make_token
from app.prospects import service as prospects
from app.prospects import suppressions
from app.prospects.models import ChangeCause, Channel, Prospect, Suppression, SuppressionReason
from app.sequences import enrollments, lifecycle, scheduler
from app.sequences import service as sequences
from app.sequences.models import Enrollment, Sequence, StageChange, StepType
from app.sequences.service import StepSpec
from app.sequences.state import Stage
from app.workflows import service as workflows
from app.workflows.models import SystemStatus, TriggerEvent
from app.workflows.operations import OperationSpec, OperationType
from app.workflows.service import ActionFields
from tests.conftest import GraphQL, Org, QueryCounter, mutate

AUTH_TOKEN = "twilio-auth-token-for-tests"
OUR_NUMBER = "+12025550100"
PHONE = "+12025550143"
EMAIL = "ada@client.example"
SMS_STEPS = [StepSpec(StepType.SMS, 0, body="Hi {{ first_name }}"), StepSpec(StepType.SMS, 3600, body="Still there?")]
EMAIL_STEPS = [
    StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi"),
    StepSpec(StepType.EMAIL, 3600, body="Again", subject="Re"),
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
            "PUBLIC_URL": "https://leads.example",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
    )


@dataclass
class World:
    """An organization ready to text and email, with consent statuses and actions."""

    org: Org
    clock: FrozenClock
    settings: Settings
    gql: GraphQL
    client: httpx.AsyncClient
    statuses: dict[Stage, int]
    actions: dict[str, int]
    sent: dict[int, int]
    """A sent message's id by prospect id (what a link or a bounce names)."""

    @property
    def admin(self) -> Actor:
        return self.org.actor(Role.ADMIN, self.clock)

    async def sequence(self, name: str, steps: list[StepSpec]) -> Sequence:
        return await sequences.create_sequence(
            actor=self.admin,
            name=name,
            stop_on_reply=None,
            unresponsive_after_seconds=None,
            send_window=None,
            steps=steps,
            active=True,
        )

    async def person(self, name: str, **values: str) -> Prospect:
        created, errors = await prospects.create_prospects(actor=self.admin, inputs=[{"first_name": name, **values}])
        assert not errors
        return created[0]

    async def enroll(self, sequence: Sequence, *people: Prospect) -> tuple[list[Enrollment], list[str]]:
        done, errors = await enrollments.enroll(
            actor=self.admin, sequence_id=sequence.id, prospect_ids=[p.id for p in people], activate=None
        )
        return done, [e.code.value for e in errors]

    async def send(self, message_ids: list[int]) -> dict[int, str]:
        transports = sending.transports_for(self.settings)
        states = await sending.send_batch(message_ids, transports=transports, settings=self.settings, clock=self.clock)
        return {pk: str(state) for pk, state in states.items()}

    async def one_off(self, prospect: Prospect, channel: Channel) -> int:
        """A message queued outside any sequence (as SEND_MESSAGE queued it before the opt-out)."""
        await prospect.refresh_from_db()
        subject = "Hi" if channel is Channel.EMAIL else None
        return (await compose.queue_message(prospect, channel, subject, "A one-off", now=self.clock.now())).id

    def outbox(self) -> list[str]:
        box = self.settings.data_dir / "outbox"
        return sorted(p.name for p in box.iterdir()) if box.exists() else []

    async def blocked(self, prospect: Prospect) -> list[str]:
        body = await self.gql(
            self.org.tokens[Role.MANAGER],
            "query($id: ID!) { node(id: $id) { ... on Prospect { blockedChannels } } }",
            id=ids.encode("Prospect", prospect.id),
        )
        channels: list[str] = body["data"]["node"]["blockedChannels"]
        return channels


@pytest.fixture
async def world(org: Org, clock: FrozenClock, settings: Settings, gql: GraphQL, client: httpx.AsyncClient) -> World:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example", postal_address="1 Main St")
    admin = org.actor(Role.ADMIN, clock)
    changes = accounts.OrganizationChanges(sms_from=OUR_NUMBER)
    await accounts.update_organization(actor=admin, changes=changes, settings=settings)
    await presets.apply(actor=admin, name="lead-workflow")
    workflow = await workflows.create_workflow(actor=admin, name="Consent", position=None)
    statuses = {}
    for outcome in (Stage.OPTED_OUT, Stage.UNSUBSCRIBED, Stage.BOUNCED):
        status = await workflows.create_status(
            actor=admin,
            workflow_id=workflow.id,
            name=outcome.value.title(),
            system_status=SystemStatus.DO_NOT_CONTACT,
            pipeline_percent=None,
            max_assignment_seconds=None,
            position=None,
            enrollment_outcome=outcome,
        )
        statuses[outcome] = status.id
    actions = {}
    for name, operation in (
        ("Do not contact", OperationSpec(type=OperationType.MARK_DO_NOT_CONTACT)),
        ("Opted out", OperationSpec(type=OperationType.SET_STATUS, status_id=statuses[Stage.OPTED_OUT])),
    ):
        action = await workflows.create_action(actor=admin, fields=ActionFields(name=name, operations=[operation]))
        actions[name] = action.id
    return World(org, clock, settings, gql, client, statuses, actions, {})


# ---- the opt-out paths: each opts out the first record, as the API or a provider would ----

Path_ = Callable[[World, Prospect], Awaitable[None]]


async def _link(w: World, p: Prospect) -> None:
    token = make_token(w.settings.secret_key, p.id, w.sent[p.id])
    answer = await w.client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")
    assert answer.status_code == 200


async def _twilio_stop(w: World, p: Prospect) -> None:
    form = {"MessageSid": "SM-stop", "AccountSid": "AC1", "From": PHONE, "To": OUR_NUMBER, "Body": "Stop"}
    path = "/webhooks/twilio/sms"
    signature = twilio.signature(AUTH_TOKEN, w.settings.public_url + path, form.items())
    answer = await w.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200


async def _inbound_stop(w: World, p: Prospect) -> None:
    # Through the API, as an integration records it: several records carry the
    # number and none was texted, so the STOP speaks for the number.
    done = await mutate(
        w.gql,
        w.org.tokens[Role.AGENT],
        "recordInboundMessage",
        "message { id } prospect { id }",
        channel="SMS",
        body="STOP",
        **{"from": p.phone or ""},
    )
    assert done == {"message": None, "prospect": None, "errors": []}


def _opt_out_prospect(channel: Channel) -> Path_:
    async def run(w: World, p: Prospect) -> None:
        done = await mutate(
            w.gql,
            w.org.tokens[Role.AGENT],
            "optOutProspect",
            "prospect { id }",
            id=ids.encode("Prospect", p.id),
            channel=channel.value,
        )
        assert done["errors"] == []

    return run


async def _mark_do_not_contact(w: World, p: Prospect) -> None:
    done = await mutate(
        w.gql,
        w.org.tokens[Role.AGENT],
        "markDoNotContact",
        "prospect { id }",
        id=ids.encode("Prospect", p.id),
        doNotContact=True,
    )
    assert done["errors"] == []


async def _record_bounce(w: World, p: Prospect) -> None:
    done = await mutate(
        w.gql,
        w.org.tokens[Role.MANAGER],
        "recordBounce",
        "message { state }",
        messageId=ids.encode("Message", w.sent[p.id]),
        type="HARD",
        reason="5.1.1",
    )
    assert done["errors"] == []


def _status(outcome: Stage) -> Path_:
    async def run(w: World, p: Prospect) -> None:
        done = await mutate(
            w.gql,
            w.org.tokens[Role.AGENT],
            "setProspectStatus",
            "prospect { id }",
            id=ids.encode("Prospect", p.id),
            statusId=ids.encode("Status", w.statuses[outcome]),
        )
        assert done["errors"] == []

    return run


def _action(name: str) -> Path_:
    async def run(w: World, p: Prospect) -> None:
        done = await mutate(
            w.gql,
            w.org.tokens[Role.AGENT],
            "logActivity",
            "activity { id }",
            prospectId=ids.encode("Prospect", p.id),
            interaction="CALL",
            actionId=ids.encode("Action", w.actions[name]),
        )
        assert done["errors"] == []

    return run


DNC, OPTED, UNSUB, BOUNCE = (
    SuppressionReason.DO_NOT_CONTACT,
    SuppressionReason.OPTED_OUT,
    SuppressionReason.UNSUBSCRIBED,
    SuppressionReason.HARD_BOUNCE,
)
SMS_PATHS: dict[str, tuple[Path_, SuppressionReason]] = {
    "twilio STOP": (_twilio_stop, OPTED),
    "recordInboundMessage STOP": (_inbound_stop, OPTED),
    "optOutProspect": (_opt_out_prospect(Channel.SMS), OPTED),
    "markDoNotContact": (_mark_do_not_contact, DNC),
    "status Opted Out by hand": (_status(Stage.OPTED_OUT), OPTED),
    "action MARK_DO_NOT_CONTACT": (_action("Do not contact"), DNC),
    "action SET_STATUS Opted Out": (_action("Opted out"), OPTED),
}
EMAIL_PATHS: dict[str, tuple[Path_, SuppressionReason, Stage]] = {
    "unsubscribe link": (_link, UNSUB, Stage.UNSUBSCRIBED),
    "optOutProspect": (_opt_out_prospect(Channel.EMAIL), OPTED, Stage.OPTED_OUT),
    "markDoNotContact": (_mark_do_not_contact, DNC, Stage.OPTED_OUT),
    "recordBounce HARD": (_record_bounce, BOUNCE, Stage.BOUNCED),
    "status Opted Out by hand": (_status(Stage.OPTED_OUT), OPTED, Stage.OPTED_OUT),
    "status Unsubscribed by hand": (_status(Stage.UNSUBSCRIBED), UNSUB, Stage.UNSUBSCRIBED),
    "status Bounced by hand": (_status(Stage.BOUNCED), BOUNCE, Stage.BOUNCED),
    "action MARK_DO_NOT_CONTACT": (_action("Do not contact"), DNC, Stage.OPTED_OUT),
}


async def _entries(org: Org) -> set[tuple[str, str, str]]:
    rows = await Suppression.filter(organization_id=org.id).values_list("channel", "address", "reason")
    return {(str(c), str(a), str(r)) for c, a, r in rows}


@pytest.mark.parametrize("path", list(SMS_PATHS))
async def test_an_sms_opt_out_stops_every_record_carrying_the_phone(world: World, path: str) -> None:
    run, reason = SMS_PATHS[path]
    outreach = await world.sequence("Outreach", SMS_STEPS)
    first = await world.person("Ada", email=EMAIL, phone=PHONE)
    second = await world.person("Ada again", phone=PHONE)  # a duplicate row: phones may be shared
    (first_enrollment, second_enrollment), errors = await world.enroll(outreach, first, second)
    assert errors == []
    queued = (await scheduler.run_pass(world.clock)).queued
    one_offs = [await world.one_off(first, Channel.SMS), await world.one_off(second, Channel.SMS)]
    assert len(queued) == 2

    await run(world, first)

    assert (Channel.SMS.value, PHONE, reason.value) in await _entries(world.org)
    for enrollment in (first_enrollment, second_enrollment):
        await enrollment.refresh_from_db()
        assert enrollment.stage == "OPTED_OUT"
    states = await world.send(queued + one_offs)
    assert set(states.values()) <= {"CANCELLED"} and world.outbox() == []
    assert {m.state for m in await Message.filter(id__in=queued + one_offs)} == {"CANCELLED"}
    again = await world.sequence("Again", [StepSpec(StepType.SMS, 0, body="Hello?")])
    assert (await world.enroll(again, second))[1] == ["DO_NOT_CONTACT"]
    assert "SMS" in await world.blocked(second)


@pytest.mark.parametrize("path", list(EMAIL_PATHS))
@pytest.mark.parametrize("second_record", ["re-created", "email changed"])
async def test_an_email_opt_out_stops_a_second_record_with_the_address(
    world: World, path: str, second_record: str
) -> None:
    run, reason, stage = EMAIL_PATHS[path]
    outreach = await world.sequence("Outreach", EMAIL_STEPS)
    first = await world.person("Ada", email=EMAIL)
    other = await world.person("Bea", email="bea@client.example")
    (first_enrollment, other_enrollment), _ = await world.enroll(outreach, first, other)
    for message_id in (await scheduler.run_pass(world.clock)).queued:
        assert await world.send([message_id]) == {message_id: "SENT"}
        world.sent[(await Message.get(id=message_id)).prospect_id] = message_id
    world.clock.advance(3600)
    queued = (await scheduler.run_pass(world.clock)).queued  # the second steps, queued before the opt-out
    one_off = await world.one_off(other, Channel.EMAIL)
    assert len(queued) == 2
    others = [m for m in queued if (await Message.get(id=m)).prospect_id == other.id] + [one_off]

    await run(world, first)

    assert (Channel.EMAIL.value, EMAIL, reason.value) in await _entries(world.org)
    await first_enrollment.refresh_from_db()
    assert first_enrollment.stage == stage
    await prospects.delete_prospect(actor=world.admin, prospect_id=first.id)
    again = await world.sequence("Again", [StepSpec(StepType.EMAIL, 0, body="Hello?", subject="?")])
    if second_record == "re-created":
        second = await world.person("Ada", email="Ada@Client.example")
        stray = await world.one_off(second, Channel.EMAIL)  # as if queued by a path without the gate's care
        assert await world.send([stray]) == {stray: "CANCELLED"}
    else:
        # Bea takes the address: what was queued for her old one is refused at send time,
        # for the prospect's current address, and her enrollment finishes as blocked.
        await prospects.update_prospect(actor=world.admin, prospect_id=other.id, changes={"email": EMAIL})
        second = other
        states = await world.send(others)
        assert set(states.values()) == {"CANCELLED"}
        await other_enrollment.refresh_from_db()
        change = await StageChange.filter(enrollment_id=other_enrollment.id).order_by("-id").first()
        assert other_enrollment.stage == "OPTED_OUT" and change is not None and change.reason == "channel_blocked"
    assert (await world.enroll(again, second))[1] == ["DO_NOT_CONTACT"]
    assert "EMAIL" in await world.blocked(second)
    assert len(world.outbox()) == 2  # only the first steps, before the opt-out


async def test_the_gate_refuses_the_message_address_and_the_current_one(world: World) -> None:
    """A message goes nowhere when its own address is suppressed though the prospect
    has another now, or when the prospect's current address is (one read a chunk)."""
    old = await world.person("Ada", email=EMAIL)
    new = await world.person("Bea", email="bea@client.example")
    to_old = await world.one_off(old, Channel.EMAIL)
    to_new = await world.one_off(new, Channel.EMAIL)
    fine = await world.one_off(await world.person("Cy", email="cy@client.example"), Channel.EMAIL)
    await prospects.update_prospect(actor=world.admin, prospect_id=old.id, changes={"email": "ada@elsewhere.example"})
    entries = [suppressions.Entry(Channel.EMAIL, a, SuppressionReason.MANUAL) for a in (EMAIL, "bea@client.example")]
    await suppressions.record(
        world.org.id, entries, actor=world.admin, cause=ChangeCause.USER, enrollment_reason="suppressed"
    )
    reads = _ReadsOf("suppression")
    logging.getLogger("tortoise.db_client").addHandler(reads)
    level = logging.getLogger("tortoise.db_client").level
    logging.getLogger("tortoise.db_client").setLevel(logging.DEBUG)
    try:
        states = await world.send([to_old, to_new, fine])
    finally:
        logging.getLogger("tortoise.db_client").removeHandler(reads)
        logging.getLogger("tortoise.db_client").setLevel(level)
    assert states == {to_old: "CANCELLED", to_new: "CANCELLED", fine: "SENT"}
    assert reads.count == 1  # one read for the chunk, not one a message


class _ReadsOf(logging.Handler):
    """Counts the SQL statements that name a table."""

    def __init__(self, table: str) -> None:
        super().__init__(logging.DEBUG)
        self.table, self.count = f'"{table}"', 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += self.table in record.getMessage()


async def test_the_send_message_operation_refuses_a_suppressed_address(world: World) -> None:
    first = await world.person("Ada", phone=PHONE)
    second = await world.person("Ada again", phone=PHONE)
    await _opt_out_prospect(Channel.SMS)(world, first)
    admin = world.admin
    action = await workflows.create_action(
        actor=admin,
        fields=ActionFields(
            name="Text them",
            operations=[OperationSpec(type=OperationType.SEND_MESSAGE, channel=Channel.SMS, body="Hi")],
        ),
    )
    world.actions["Text them"] = action.id
    await _action("Text them")(world, second)
    await _action("Text them")(world, first)
    assert await Message.filter(direction="OUTBOUND").count() == 0
    third = await world.person("Cy", phone="+12025550144")
    await _action("Text them")(world, third)
    assert await Message.filter(direction="OUTBOUND", prospect_id=third.id).count() == 1


async def test_start_withdraws_only_the_opt_out_that_stop_made(world: World) -> None:
    first = await world.person("Ada", email=EMAIL, phone=PHONE)
    second = await world.person("Ada again", phone="+12025550144")
    await _twilio_stop(world, first)
    manual = suppressions.Entry(Channel.SMS, PHONE, SuppressionReason.MANUAL)
    await suppressions.record(
        world.org.id, [manual], actor=world.admin, cause=ChangeCause.USER, enrollment_reason="suppressed"
    )
    await _mark_do_not_contact(world, second)  # another number's entries stay whatever START does
    form = {"MessageSid": "SM-start", "AccountSid": "AC1", "From": PHONE, "To": OUR_NUMBER, "Body": "START"}
    signature = twilio.signature(AUTH_TOKEN, world.settings.public_url + "/webhooks/twilio/sms", form.items())
    answer = await world.client.post("/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200
    entries = await _entries(world.org)
    assert ("SMS", PHONE, "OPTED_OUT") not in entries
    assert ("SMS", PHONE, "MANUAL") in entries and ("SMS", "+12025550144", "DO_NOT_CONTACT") in entries
    await first.refresh_from_db()
    assert first.opted_out_channels == []
    assert await world.blocked(first) == ["SMS"]  # the entry added by hand still blocks

    # An opt-out a person recorded (optOutProspect, a status set by hand) is no STOP's.
    await suppressions.record(
        world.org.id,
        [suppressions.Entry(Channel.SMS, PHONE, SuppressionReason.OPTED_OUT)],
        actor=world.admin,
        cause=ChangeCause.USER,
        created_by_id=world.admin.user_id,
        enrollment_reason="suppressed",
    )
    assert await suppressions.withdraw_opt_out(world.org.id, Channel.SMS, PHONE) == 0
    other = suppressions.Entry(Channel.SMS, "+12025550145", SuppressionReason.OPTED_OUT)  # an inbound STOP's
    await suppressions.record(
        world.org.id, [other], actor=world.admin, cause=ChangeCause.INBOUND, enrollment_reason="opted_out"
    )
    assert await suppressions.withdraw_opt_out(world.org.id, Channel.SMS, "+12025550145") == 1
    assert await suppressions.withdraw_opt_out(world.org.id, Channel.SMS, "+12025550145") == 0


async def test_blocked_channels_is_the_union_of_causes_in_the_enums_order(
    world: World, sql_queries: QueryCounter
) -> None:
    ada = await world.person("Ada", email=EMAIL, phone=PHONE)
    twin = await world.person("Twin", phone=PHONE)
    clean = await world.person("Cy", email="cy@client.example", phone="+12025550144")
    await Prospect.filter(id=ada.id).update(opted_out_channels=["PHONE"])  # a flag alone, as before the list
    await suppressions.record(
        world.org.id,
        [suppressions.Entry(Channel.EMAIL, EMAIL, SuppressionReason.MANUAL)],
        actor=world.admin,
        cause=ChangeCause.USER,
        enrollment_reason="suppressed",
    )
    await _opt_out_prospect(Channel.SMS)(world, twin)  # the shared number, opted out on the other record
    assert await world.blocked(ada) == ["EMAIL", "SMS", "PHONE"]
    assert await world.blocked(twin) == ["SMS"]
    assert await world.blocked(clean) == []
    await _mark_do_not_contact(world, clean)
    assert await world.blocked(clean) == ["EMAIL", "SMS", "PHONE"]

    query = "{ prospects(first: 50) { edges { node { firstName blockedChannels } } } }"
    sql_queries.count = 0
    listed = await world.gql(world.org.tokens[Role.MANAGER], query)
    many = sql_queries.count
    nodes = {e["node"]["firstName"]: e["node"]["blockedChannels"] for e in listed["data"]["prospects"]["edges"]}
    assert nodes == {"Ada": ["EMAIL", "SMS", "PHONE"], "Twin": ["SMS"], "Cy": ["EMAIL", "SMS", "PHONE"]}
    for extra in range(5):
        await world.person(f"P{extra}", phone=f"+1202555016{extra}")
    sql_queries.count = 0
    await world.gql(world.org.tokens[Role.MANAGER], query)
    assert sql_queries.count == many  # one read of the list for the page, whatever its size


async def test_no_address_for_the_first_message_step_is_refused_by_index(world: World) -> None:
    """The first message step's channel needs an address; DO_NOT_CONTACT wins when
    both apply; a CALL step before it, or a sequence of tasks, asks for none."""
    sms_after_a_call = await world.sequence(
        "Call then text", [StepSpec(StepType.CALL, 0, "Call"), StepSpec(StepType.SMS, 60, "Hi")]
    )
    with_phone = await world.person("Ada", phone=PHONE)
    without = await world.person("Bea", email="bea@client.example")
    blocked_without = await world.person("Cy", email="cy@client.example")
    await _mark_do_not_contact(world, blocked_without)
    done, errors = await enrollments.enroll(
        actor=world.admin,
        sequence_id=sms_after_a_call.id,
        prospect_ids=[without.id, with_phone.id, blocked_without.id],
        activate=None,
    )
    assert [(e.code.value, e.field) for e in errors] == [
        ("NO_ADDRESS", ("prospect_ids", 0)),
        ("DO_NOT_CONTACT", ("prospect_ids", 2)),
    ]
    assert [e.prospect_id for e in done] == [with_phone.id]

    emailing = await world.sequence("Email", [StepSpec(StepType.EMAIL, 0, body="b", subject="s")])
    steps = await lifecycle.steps_of(emailing.id)
    with pytest.raises(NoAddress) as refused:
        await lifecycle.enroll_one(
            with_phone, emailing, steps, actor=world.admin, cause=ChangeCause.USER, activate=None
        )
    assert refused.value.code.value == "NO_ADDRESS"
    with pytest.raises(DoNotContact):
        await lifecycle.enroll_one(
            blocked_without, emailing, steps, actor=world.admin, cause=ChangeCause.USER, activate=None
        )
    tasks = await world.sequence("Tasks", [StepSpec(StepType.TASK, 0, "Research")])
    assert (await world.enroll(tasks, without, with_phone))[1] == []

    body = await world.gql(
        world.org.tokens[Role.AGENT],
        "mutation($input: EnrollProspectsInput!) { enrollProspects(input: $input) { errors { code field } } }",
        input={
            "sequenceId": ids.encode("Sequence", emailing.id),
            "prospectIds": [ids.encode("Prospect", with_phone.id)],
        },
    )
    assert body["data"]["enrollProspects"]["errors"] == [{"code": "NO_ADDRESS", "field": ["input", "prospectIds", "0"]}]


async def test_record_keeps_existing_entries_and_is_idempotent(world: World) -> None:
    ada = await world.person("Ada", email=EMAIL, phone=PHONE)
    bea = await world.person("Bea", phone=PHONE)
    entry = suppressions.Entry(Channel.SMS, PHONE, SuppressionReason.MANUAL)
    bounce = suppressions.Entry(Channel.EMAIL, EMAIL, SuppressionReason.HARD_BOUNCE)
    [kept] = await suppressions.record(
        world.org.id, [entry], actor=world.admin, cause=ChangeCause.USER, prospect_id=ada.id, enrollment_reason="x"
    )
    world.clock.advance(60)
    again = await suppressions.record(
        world.org.id,
        [bounce, entry, entry],
        actor=world.admin,
        cause=ChangeCause.USER,
        prospect_id=bea.id,
        enrollment_reason="x",
    )
    assert [(s.channel, s.address, s.reason) for s in again] == [tuple(bounce), tuple(entry), tuple(entry)]
    assert again[1].id == again[2].id == kept.id
    assert (again[1].prospect_id, again[1].created_at) == (ada.id, kept.created_at)  # kept as it was
    opted = suppressions.Entry(Channel.SMS, PHONE, SuppressionReason.OPTED_OUT)
    await suppressions.record(world.org.id, [opted], actor=world.admin, cause=ChangeCause.USER, enrollment_reason="x")
    assert await Suppression.filter(organization_id=world.org.id).count() == 3  # one row per cause
    assert (
        await suppressions.record(world.org.id, [], actor=world.admin, cause=ChangeCause.USER, enrollment_reason="x")
        == []
    )
    assert await suppressions.suppressed(world.org.id, [(Channel.SMS, PHONE), (Channel.PHONE, PHONE)]) == {
        (Channel.SMS, PHONE)
    }
    [typed] = await suppressions.record(
        world.org.id,
        [suppressions.Entry(Channel.EMAIL, "Ada@Client.example", SuppressionReason.HARD_BOUNCE)],
        actor=world.admin,
        cause=ChangeCause.USER,
        enrollment_reason="x",
    )
    assert typed.id == again[0].id and typed.address == EMAIL  # the key is the normalized address


async def test_record_finishes_what_each_entry_blocks_of_every_carrier(world: World) -> None:
    texting = await world.sequence("Texts", SMS_STEPS)
    emailing = await world.sequence("Emails", EMAIL_STEPS)
    ada = await world.person("Ada", email=EMAIL, phone=PHONE)
    twin = await world.person("Twin", email="twin@client.example", phone=PHONE)
    other = await world.person("Cy", email="cy@client.example", phone="+12025550144")
    by_sms, _ = await world.enroll(texting, ada, twin, other)
    by_email, _ = await world.enroll(emailing, ada, twin, other)
    await suppressions.record(
        world.org.id,
        [suppressions.Entry(Channel.SMS, PHONE, SuppressionReason.OPTED_OUT)],
        actor=world.admin,
        cause=ChangeCause.USER,
        enrollment_reason="suppressed",
    )
    stages = [(await Enrollment.get(id=e.id)).stage for e in (*by_sms, *by_email)]
    assert stages == ["OPTED_OUT", "OPTED_OUT", "STARTED", "STARTED", "STARTED", "STARTED"]
    change = await StageChange.filter(enrollment_id=by_sms[1].id).order_by("-id").first()
    assert change is not None and change.reason == "suppressed"


async def test_unsubscribing_writes_unsubscribed_at_once(world: World) -> None:
    outreach = await world.sequence("Outreach", EMAIL_STEPS)
    ada = await world.person("Ada", email=EMAIL)
    await world.enroll(outreach, ada)
    [message_id] = (await scheduler.run_pass(world.clock)).queued
    world.sent[ada.id] = message_id
    await _link(world, ada)
    first = (await Prospect.get(id=ada.id)).unsubscribed_at
    world.clock.advance(60)
    await _link(world, ada)
    assert first is not None and (await Prospect.get(id=ada.id)).unsubscribed_at == first


async def test_unmarking_do_not_contact_clears_the_flag_only(world: World) -> None:
    ada = await world.person("Ada", email=EMAIL, phone=PHONE)
    await _mark_do_not_contact(world, ada)
    await prospects.mark_do_not_contact(actor=world.admin, prospect_id=ada.id, do_not_contact=False)
    await ada.refresh_from_db()
    assert ada.do_not_contact is False
    assert await world.blocked(ada) == ["EMAIL", "SMS", "PHONE"]
    assert {r for _, _, r in await _entries(world.org)} == {"DO_NOT_CONTACT"}


async def test_a_consent_status_entered_by_a_rule_records_no_consent(world: World) -> None:
    """A rule mirrors a stage into a status (the presets do): the consent event that
    finished the stage recorded what it meant; an SMS STOP is no email opt-out."""
    admin = world.admin
    await workflows.create_rule(
        actor=admin,
        name="mirror",
        event=TriggerEvent.ENROLLMENT_STAGE_CHANGED,
        status_id=None,
        operations=[OperationSpec(type=OperationType.SET_STATUS, status_id=world.statuses[Stage.OPTED_OUT])],
        enabled=True,
        stage=Stage.OPTED_OUT,
    )
    outreach = await world.sequence("Outreach", SMS_STEPS)
    ada = await world.person("Ada", email=EMAIL, phone=PHONE)
    await world.enroll(outreach, ada)
    await _twilio_stop(world, ada)
    ada = await Prospect.get(id=ada.id)
    assert ada.status_id == world.statuses[Stage.OPTED_OUT] and ada.opted_out_channels == ["SMS"]
    assert await _entries(world.org) == {("SMS", PHONE, "OPTED_OUT")}


@pytest.mark.parametrize(
    ("outcome", "blocked", "entries"),
    [
        (Stage.OPTED_OUT, ["EMAIL", "SMS"], {("EMAIL", EMAIL, "OPTED_OUT"), ("SMS", PHONE, "OPTED_OUT")}),
        (Stage.UNSUBSCRIBED, ["EMAIL"], {("EMAIL", EMAIL, "UNSUBSCRIBED")}),
        (Stage.BOUNCED, ["EMAIL"], {("EMAIL", EMAIL, "HARD_BOUNCE")}),
    ],
)
async def test_a_prospect_created_in_a_consent_status_is_suppressed(
    world: World, outcome: Stage, blocked: list[str], entries: set[tuple[str, str, str]]
) -> None:
    """Created (or imported) straight into Opted Out: the person said so, as when set by hand."""
    person = await world.person("Ada", email=EMAIL, phone=PHONE, status_id=world.statuses[outcome])  # type: ignore[arg-type]
    assert await world.blocked(person) == blocked
    assert await _entries(world.org) == entries
    outreach = await world.sequence("Outreach", SMS_STEPS if "SMS" in blocked else EMAIL_STEPS)
    assert (await world.enroll(outreach, person))[1] == ["DO_NOT_CONTACT"]
