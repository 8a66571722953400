"""R8 on messages and enrollments: MESSAGE_SENT, MESSAGE_RECEIVED and
ENROLLMENT_STAGE_CHANGED rules, their channel and stage filters, the loop guard
across stage changes, and a rule that cannot run never undoing its event."""

from __future__ import annotations

import logging

import pytest

from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.messaging import inbound, sending
from app.messaging.models import Message
from app.prospects.models import Channel, Prospect
from app.sequences import scheduler
from app.sequences.models import StageChange, StepType
from app.sequences.service import StepSpec
from app.sequences.state import Stage
from app.workflows import service as workflows
from app.workflows.models import Status, TriggerEvent
from app.workflows.operations import OperationSpec, OperationType
from tests.conftest import GraphQL, Org, mutate
from tests.test_scheduler import setup

EMAIL_THEN_SMS = [StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi"), StepSpec(StepType.SMS, 60, body="Ping")]


async def _rule(
    org: Org,
    clock: FrozenClock,
    event: TriggerEvent,
    *operations: OperationSpec,
    channel: Channel | None = None,
    stage: Stage | None = None,
) -> None:
    await workflows.create_rule(
        actor=org.actor(Role.MANAGER, clock),
        name=f"on {event.value}",
        event=event,
        status_id=None,
        operations=list(operations),
        enabled=True,
        channel=channel,
        stage=stage,
    )


async def _send_due(clock: FrozenClock, settings: Settings) -> list[str]:
    queued = (await scheduler.run_pass(clock)).queued
    states = await sending.send_batch(
        queued, transports=sending.transports_for(settings), settings=settings, clock=clock
    )
    return sorted(states.values())


async def test_message_sent_rules_match_their_channel(org: Org, clock: FrozenClock, settings: Settings) -> None:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example", sms_from="+12025550100")
    [enrollment] = await setup(org, clock, steps=EMAIL_THEN_SMS)
    await _rule(org, clock, TriggerEvent.MESSAGE_SENT, OperationSpec(OperationType.MARK_CONTACT_ATTEMPTED))
    await _rule(
        org, clock, TriggerEvent.MESSAGE_SENT, OperationSpec(OperationType.MARK_CONTACT_MADE), channel=Channel.SMS
    )

    assert await _send_due(clock, settings) == ["SENT"]  # the email
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert (prospect.contact_attempts, prospect.contact_made_at) == (1, None)

    clock.advance(60)
    assert await _send_due(clock, settings) == ["SENT"]  # the SMS: both rules
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert (prospect.contact_attempts, prospect.contact_made_at) == (2, clock.now())


async def test_stage_and_reply_rules(org: Org, clock: FrozenClock, settings: Settings) -> None:
    """STARTED → APPROACHING comes from the scheduler's batch; REPLIED from a reply
    recorded through the API path. An auto-reply sets off no MESSAGE_RECEIVED rule."""
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    [enrollment] = await setup(org, clock, steps=EMAIL_THEN_SMS)
    contacted = await Status.get(organization_id=org.id, name="Contact Made")
    status_spec = OperationSpec(OperationType.SET_STATUS, status_id=contacted.id)
    attempted = OperationSpec(OperationType.MARK_CONTACT_ATTEMPTED)
    await _rule(org, clock, TriggerEvent.ENROLLMENT_STAGE_CHANGED, attempted, stage=Stage.APPROACHING)
    await _rule(org, clock, TriggerEvent.ENROLLMENT_STAGE_CHANGED, status_spec, stage=Stage.REPLIED)
    await _rule(org, clock, TriggerEvent.MESSAGE_RECEIVED, OperationSpec(OperationType.MARK_CONTACT_MADE))

    assert await _send_due(clock, settings) == ["SENT"]
    prospect = await Prospect.get(id=enrollment.prospect_id)
    assert prospect.contact_attempts == 1 and prospect.status_id != contacted.id

    agent = org.actor(Role.AGENT, clock)
    await inbound.record_inbound(
        actor=agent,
        channel=Channel.EMAIL,
        sender="ada@client.example",
        body="Out of office",
        auto_reply=True,
        subject=None,
        in_reply_to=None,
    )
    assert (await Prospect.get(id=enrollment.prospect_id)).contact_made_at is None

    clock.advance(5)
    _, replied = await inbound.record_inbound(
        actor=agent,
        channel=Channel.EMAIL,
        sender="ada@client.example",
        body="Sure, call me",
        auto_reply=False,
        subject=None,
        in_reply_to=None,
    )
    assert (replied.status_id, replied.contact_made_at) == (contacted.id, clock.now())
    await enrollment.refresh_from_db()
    assert enrollment.stage == "REPLIED"


async def test_rules_on_stage_changes_stop_at_the_loop_guard(org: Org, clock: FrozenClock, settings: Settings) -> None:
    """APPROACHING pauses, PAUSED resumes, which is APPROACHING again: each rule
    fires once in the chain, so it stops there instead of looping."""
    [enrollment] = await setup(org, clock, steps=EMAIL_THEN_SMS)
    pause = OperationSpec(OperationType.PAUSE_ENROLLMENTS)
    resume = OperationSpec(OperationType.RESUME_ENROLLMENTS)
    await _rule(org, clock, TriggerEvent.ENROLLMENT_STAGE_CHANGED, pause, stage=Stage.APPROACHING)
    await _rule(org, clock, TriggerEvent.ENROLLMENT_STAGE_CHANGED, resume, stage=Stage.PAUSED)

    await scheduler.run_pass(clock)

    stages = await StageChange.filter(enrollment_id=enrollment.id).order_by("id").values_list("to_stage", "cause")
    assert [tuple(s) for s in stages] == [
        ("STARTED", "USER"),
        ("APPROACHING", "SCHEDULER"),
        ("PAUSED", "AUTOMATION"),
        ("APPROACHING", "AUTOMATION"),
    ]


async def test_a_rule_that_cannot_run_leaves_the_send_standing(
    org: Org, clock: FrozenClock, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example")
    [enrollment] = await setup(org, clock, steps=EMAIL_THEN_SMS)
    contacted = await Status.get(organization_id=org.id, name="Contact Made")
    spec = OperationSpec(OperationType.SET_STATUS, status_id=contacted.id)
    await _rule(org, clock, TriggerEvent.MESSAGE_SENT, spec, OperationSpec(OperationType.MARK_CONTACT_ATTEMPTED))
    await Status.filter(id=contacted.id).update(deleted_at=clock.now())

    with caplog.at_level(logging.WARNING, logger="leadline.automation"):
        assert await _send_due(clock, settings) == ["SENT"]
    prospect = await Prospect.get(id=enrollment.prospect_id)
    message = await Message.get(enrollment_id=enrollment.id)
    assert message.state == "SENT" and prospect.status_id != contacted.id
    assert prospect.contact_attempts == 0  # the rule is undone whole, not halfway
    assert "automation on MESSAGE_SENT" in caplog.text and "no longer exists" in caplog.text


async def test_rule_filters_through_the_api(gql: GraphQL, org: Org) -> None:
    token = org.tokens[Role.MANAGER]
    fields = "automationRule { event channel stage }"
    ops = [{"type": "MARK_CONTACT_MADE"}]
    made = await mutate(
        gql, token, "createAutomationRule", fields, name="r", event="MESSAGE_RECEIVED", channel="SMS", operations=ops
    )
    assert made["automationRule"] == {"event": "MESSAGE_RECEIVED", "channel": "SMS", "stage": None}
    staged = await mutate(
        gql,
        token,
        "createAutomationRule",
        "automationRule { id }",
        name="s",
        event="ENROLLMENT_STAGE_CHANGED",
        operations=ops,
    )
    updated = await mutate(
        gql, token, "updateAutomationRule", fields, id=staged["automationRule"]["id"], stage="UNRESPONSIVE"
    )
    assert updated["automationRule"] == {"event": "ENROLLMENT_STAGE_CHANGED", "channel": None, "stage": "UNRESPONSIVE"}
    staged_id = staged["automationRule"]["id"]
    kept = await mutate(gql, token, "updateAutomationRule", fields, id=staged_id, name="renamed")
    assert kept["automationRule"]["stage"] == "UNRESPONSIVE"  # left out: unchanged
    cleared = await mutate(gql, token, "updateAutomationRule", fields, id=staged_id, stage=None)
    assert cleared["automationRule"] == {"event": "ENROLLMENT_STAGE_CHANGED", "channel": None, "stage": None}
    wrong = await mutate(gql, token, "updateAutomationRule", fields, id=staged_id, channel="SMS")
    assert [(e["code"], e["field"]) for e in wrong["errors"]] == [("INVALID_INPUT", ["input", "channel"])]
    bad = [
        ({"event": "PROSPECT_CREATED", "channel": "EMAIL"}, ["input", "channel"]),
        ({"event": "MESSAGE_SENT", "channel": "PHONE"}, ["input", "channel"]),
        ({"event": "MESSAGE_SENT", "stage": "REPLIED"}, ["input", "stage"]),
    ]
    for extra, field in bad:
        result = await mutate(
            gql, token, "createAutomationRule", "automationRule { id }", name="x", operations=ops, **extra
        )
        assert result["automationRule"] is None
        assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID_INPUT", field)], extra


async def _limited_rule(
    org: Org, clock: FrozenClock, name: str, event: TriggerEvent, only_in: list[str], to: str, **filters: object
) -> None:
    statuses = {s.name: s.id for s in await Status.filter(organization_id=org.id)}
    await workflows.create_rule(
        actor=org.actor(Role.MANAGER, clock),
        name=name,
        event=event,
        status_id=None,
        operations=[OperationSpec(OperationType.SET_STATUS, status_id=statuses[to])],
        enabled=True,
        only_in_status_ids=[statuses[n] for n in only_in],
        **filters,  # type: ignore[arg-type]
    )


async def _reply(org: Org, clock: FrozenClock, body: str) -> str:
    clock.advance(5)
    _, prospect = await inbound.record_inbound(
        actor=org.actor(Role.AGENT, clock),
        channel=Channel.EMAIL,
        sender="ada@client.example",
        body=body,
        auto_reply=False,
        subject=None,
        in_reply_to=None,
    )
    return (await Status.get(id=prospect.status_id)).name


async def test_a_rule_limited_to_statuses_runs_only_for_prospects_in_one_of_them(org: Org, clock: FrozenClock) -> None:
    [enrollment] = await setup(org, clock, steps=EMAIL_THEN_SMS)
    await _limited_rule(
        org, clock, "replied", TriggerEvent.MESSAGE_RECEIVED, ["Attempting Contact", "Final Contact"], "Contact Made"
    )
    assert await _reply(org, clock, "Who is this?") == "New Lead"
    attempting = await Status.get(organization_id=org.id, name="Attempting Contact")
    await Prospect.filter(id=enrollment.prospect_id).update(status_id=attempting.id)
    assert await _reply(org, clock, "Call me") == "Contact Made"


async def test_the_rules_of_an_event_judge_the_status_the_event_found(org: Org, clock: FrozenClock) -> None:
    """A reply first finishes the enrollment REPLIED, whose stage rule moves the
    prospect (same transaction); the reply's own rules then judge the status the
    reply found (New Lead), and one of them moving the prospect lets no later rule
    of the same reply run for the status it moved to."""
    await setup(org, clock, steps=EMAIL_THEN_SMS)
    await _limited_rule(
        org, clock, "stage", TriggerEvent.ENROLLMENT_STAGE_CHANGED, [], "Appointment Set", stage=Stage.REPLIED
    )
    await _limited_rule(org, clock, "from new", TriggerEvent.MESSAGE_RECEIVED, ["New Lead"], "Contact Made")
    await _limited_rule(org, clock, "from made", TriggerEvent.MESSAGE_RECEIVED, ["Contact Made"], "Sold")
    assert await _reply(org, clock, "Yes please") == "Contact Made"


async def test_a_sent_message_judges_the_status_before_a_failed_one_of_its_batch_moved_it(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    """One batch sends the prospect's SMS and cancels its email (an email opt-out that
    came after the email was queued): the email's enrollment finishing OPTED_OUT moves
    the prospect first, the SMS's rule still judges the status it was sent in."""
    from app.sequences import enrollments
    from app.sequences import service as sequences

    await Organization.filter(id=org.id).update(email_from="sales@acme.example", sms_from="+12025550100")
    [first] = await setup(org, clock, steps=[StepSpec(StepType.EMAIL, 0, body="Hello", subject="Hi")])
    admin = org.actor(Role.ADMIN, clock)
    texts = await sequences.create_sequence(
        actor=admin,
        name="Texts",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        steps=[StepSpec(StepType.SMS, 0, body="Ping")],
        active=True,
    )
    _, errors = await enrollments.enroll(
        actor=admin, sequence_id=texts.id, prospect_ids=[first.prospect_id], activate=None
    )
    assert not errors
    await _limited_rule(
        org, clock, "opted out", TriggerEvent.ENROLLMENT_STAGE_CHANGED, [], "Do Not Contact", stage=Stage.OPTED_OUT
    )
    await _limited_rule(org, clock, "texted", TriggerEvent.MESSAGE_SENT, ["New Lead"], "Attempting Contact")
    queued = (await scheduler.run_pass(clock)).queued
    await Prospect.filter(id=first.prospect_id).update(opted_out_channels=["EMAIL"])
    states = await sending.send_batch(
        queued, transports=sending.transports_for(settings), settings=settings, clock=clock
    )
    assert sorted(states.values()) == ["CANCELLED", "SENT"]
    prospect = await Prospect.get(id=first.prospect_id)
    assert (await Status.get(id=prospect.status_id)).name == "Attempting Contact"
