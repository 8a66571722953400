"""R9: each preset walks its seed (000 Upscale workflow prospects, 001 Revenue Grid
sequence stages and person statuses, 002 SMS conversation statuses, 003/004
ClickPoint's lead workflow), and
applying any preset twice changes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tortoise.transactions import in_transaction

from app import ids, presets
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import Organization, Role
from app.automation import rules
from app.clock import FrozenClock
from app.config import Settings
from app.errors import ActionNotAvailable, InvalidInput, NotPullable
from app.events.models import Event, EventType
from app.messaging import inbound, sending
from app.messaging.models import BounceType, Message, MessageState
from app.prospects import consent, distribution, reports
from app.prospects import read as prospect_read
from app.prospects import service as prospects
from app.prospects.models import Activity, ChangeCause, Channel, Prospect, StatusChange, Task, TaskKind
from app.sequences import enrollments, lifecycle, scheduler
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from app.sequences.state import Stage
from app.workflows import availability
from app.workflows.models import Action, ActionCategory, AutomationRule, Interaction, Status, SystemStatus, Workflow
from tests.conftest import GraphQL, Org

EMAIL = [StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}", subject="Hi")]


async def _preset(org: Org, clock: FrozenClock, name: str) -> Actor:
    await Organization.filter(id=org.id).update(email_from="sales@acme.example", sms_from="+12025550100")
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name=name)
    return admin


async def _enrolled(
    admin: Actor, people: list[dict[str, str]], *, steps: list[StepSpec] = EMAIL, active: bool = True, **options: object
) -> tuple[str, list[Enrollment]]:
    sequence = await sequences.create_sequence(
        actor=admin,
        name="Outreach",
        stop_on_reply=options.get("stop_on_reply"),  # type: ignore[arg-type]
        unresponsive_after_seconds=options.get("unresponsive_after_seconds"),  # type: ignore[arg-type]
        send_window=None,
        steps=steps,
        active=active,
    )
    made, errors = await prospects.create_prospects(actor=admin, inputs=people)
    assert not errors
    sequence_id = sequence.id
    enrolled, errors = await enrollments.enroll(
        actor=admin, sequence_id=sequence_id, prospect_ids=[p.id for p in made], activate=None
    )
    assert not errors
    return sequence_id, enrolled


async def _status(enrollment: Enrollment) -> str:
    prospect = await Prospect.get(id=enrollment.prospect_id)
    return (await Status.get(id=prospect.status_id)).name


async def _log(admin: Actor, enrollment: Enrollment, interaction: Interaction, action: str) -> None:
    """The seed's "Log an Activity": an interaction with an action (its outcome)."""
    row = await Action.get(organization_id=admin.organization_id, name=action)
    await prospects.log_activity(
        actor=admin,
        prospect_id=enrollment.prospect_id,
        interaction=interaction,
        action_id=row.id,
        note=None,
    )


async def _send_due(clock: FrozenClock, settings: Settings) -> None:
    queued = (await scheduler.run_pass(clock)).queued
    await sending.send_batch(queued, transports=sending.transports_for(settings), settings=settings, clock=clock)


@pytest.mark.parametrize("name", presets.names())
async def test_every_preset_applies_twice_without_duplicates(org: Org, clock: FrozenClock, name: str) -> None:
    admin = org.actor(Role.ADMIN, clock)

    async def counts() -> tuple[int, ...]:
        return (
            await Workflow.filter(organization_id=org.id).count(),
            await Status.filter(organization_id=org.id).count(),
            await Action.filter(organization_id=org.id).count(),
            await AutomationRule.filter(organization_id=org.id).count(),
        )

    await presets.apply(actor=admin, name=name)
    first = await counts()
    await presets.apply(actor=admin, name=name)
    assert first == await counts() and first[1] > 0


async def _choose(admin: Actor, enrollment: Enrollment, status: str) -> None:
    """A person chooses the prospect's status by hand (``setProspectStatus``)."""
    row = await Status.get(organization_id=admin.organization_id, name=status)
    await prospects.set_status(actor=admin, prospect_id=enrollment.prospect_id, status_id=row.id, note=None)


async def _stage(enrollment: Enrollment) -> str:
    await enrollment.refresh_from_db()
    return str(enrollment.stage)


async def _sent(enrollment: Enrollment) -> int:
    return await Message.filter(enrollment_id=enrollment.id, state=MessageState.SENT).count()


async def _fail(admin: Actor, enrollment: Enrollment) -> None:
    """A step that cannot be sent, as the sender finishes its enrollment."""
    async with in_transaction():
        locked = await Enrollment.filter(id=enrollment.id).select_for_update().get()
        moves = await lifecycle.fail([locked], Stage.FAILED, actor=admin, cause=ChangeCause.SCHEDULER, reason="failed")
        await rules.stages_entered(moves)


async def _events(org: Org, kind: EventType) -> int:
    return await Event.filter(organization_id=org.id, type=kind).count()


TWO_EMAILS = [*EMAIL, StepSpec(StepType.EMAIL, 86400, body="Still there, {{ first_name }}?", subject="Hi again")]

EVERY_STAGE = {
    "prospect-workflow": {
        "NOT_STARTED": "Pending",
        "STARTED": "Active",
        "APPROACHING": "Active",
        "PAUSED": "Paused",
        "REPLIED": "Finished (Replied)",
        "SUCCESS": "Finished (Replied)",
        "NOT_INTERESTED": "Finished (Replied)",
        "UNRESPONSIVE": "Finished (No reply)",
        "BOUNCED": "Finished (No reply)",
        "FAILED": "Finished (No reply)",
        "REMOVED": "Finished (No reply)",
        "OPTED_OUT": "Opted Out",
        "UNSUBSCRIBED": "Unsubscribed",
    },
    "sequence-stages": {
        "NOT_STARTED": "Not contacted",
        "STARTED": "Just added",
        "APPROACHING": "In progress",
        "PAUSED": "Not contacted",
        "REPLIED": "In progress",
        "SUCCESS": "Success",
        "NOT_INTERESTED": "Not interested",
        "UNRESPONSIVE": "Unresponsive",
        "BOUNCED": "Bounced",
        "FAILED": "Bounced",
        "REMOVED": "Not contacted",
        "OPTED_OUT": "Unsubscribed",
        "UNSUBSCRIBED": "Unsubscribed",
    },
}
"""The status each stage puts the prospect in, every stage of app/sequences/state.py."""


@pytest.mark.parametrize("preset", sorted(EVERY_STAGE))
async def test_every_stage_puts_the_prospect_in_a_status(
    org: Org, clock: FrozenClock, settings: Settings, preset: str
) -> None:
    admin = await _preset(org, clock, preset)
    stages = list(EVERY_STAGE[preset])
    assert set(stages) == set(Stage)
    people = {s: {"first_name": s.title(), "email": f"{s.lower()}@client.example"} for s in stages}
    sequence_id, made = await _enrolled(admin, [people[s] for s in stages[2:]], steps=TWO_EMAILS)
    by_stage = dict(zip(stages[2:], made, strict=True))
    for stage, activate in (("NOT_STARTED", False), ("STARTED", None)):
        if stage == "STARTED":
            await _send_due(clock, settings)  # the first step goes out, but not to STARTED's (enrolled after)
        [prospect], _ = await prospects.create_prospects(actor=admin, inputs=[people[stage]])
        [by_stage[stage]], _ = await enrollments.enroll(
            actor=admin, sequence_id=sequence_id, prospect_ids=[prospect.id], activate=activate
        )
    at = {stage: e.id for stage, e in by_stage.items()}
    await enrollments.pause(actor=admin, enrollment_ids=[at["PAUSED"]])
    await inbound.record_inbound(
        actor=admin,
        channel=Channel.EMAIL,
        sender="replied@client.example",
        body="Yes!",
        subject=None,
        in_reply_to=None,
        auto_reply=False,
    )
    for outcome in ("SUCCESS", "NOT_INTERESTED", "UNRESPONSIVE", "BOUNCED"):
        await enrollments.finish(actor=admin, enrollment_ids=[at[outcome]], outcome=Stage(outcome))
    await _fail(admin, by_stage["FAILED"])
    await enrollments.remove(actor=admin, enrollment_ids=[at["REMOVED"]])
    await prospects.opt_out(actor=admin, prospect_id=by_stage["OPTED_OUT"].prospect_id, channel=Channel.EMAIL)
    unsubscribing = await Prospect.get(id=by_stage["UNSUBSCRIBED"].prospect_id)
    await consent.unsubscribe(unsubscribing, actor=admin, cause=ChangeCause.INBOUND)  # as the link does

    assert {stage: await _stage(e) for stage, e in by_stage.items()} == {s: s for s in stages}
    assert {stage: await _status(e) for stage, e in by_stage.items()} == EVERY_STAGE[preset]


async def test_000_the_status_is_the_prospects_in_the_workflow_and_choosing_it_acts(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    admin = await _preset(org, clock, "prospect-workflow")
    people = [{"first_name": n, "email": f"{n.lower()}@client.example"} for n in ("Ada", "Bob", "Cy", "Di", "Ed")]
    sequence_id, [ada, bob, cy, di, ed] = await _enrolled(admin, people, steps=TWO_EMAILS, active=False)

    # "Pending: The prospect has been added to workflow but workflow hasn't been
    # enabled yet for them."
    assert [await _status(e) for e in (ada, bob)] == ["Pending", "Pending"]
    # The workflow is not enabled: choosing Active by hand cannot start it.
    await _choose(admin, ada, "Active")
    assert await _stage(ada) == "NOT_STARTED"

    # "Active: The prospect is currently going through the workflow." "You can
    # activate a prospect from Pending status by clicking on Activate option."
    await enrollments.set_sequence_active(actor=admin, sequence_id=sequence_id, active=True)
    assert [await _status(e) for e in (ada, bob)] == ["Active", "Active"]

    # "Paused: The process of reaching out to prospect has been paused." "You can
    # pause an active prospect by clicking on Pause option." Chosen by hand, it
    # pauses the enrollment: the step due now does not go out.
    await _choose(admin, ada, "Paused")
    assert await _stage(ada) == "PAUSED"
    await _send_due(clock, settings)
    assert (await _sent(ada), await _sent(bob)) == (0, 1)
    assert await _status(ada) == "Paused"

    # "If you later wish to resume the prospect, you can simply click on Resume option."
    await _choose(admin, ada, "Active")
    assert await _stage(ada) == "STARTED"
    await _send_due(clock, settings)
    assert (await _sent(ada), await _stage(ada), await _status(ada)) == (1, "APPROACHING", "Active")

    # "Finished (Replied): You can manually mark a prospect as replied by clicking
    # on Mark as replied option. Alternatively, prospects can be automatically
    # marked as replied when" they reply.
    await inbound.record_inbound(
        actor=admin,
        channel=Channel.EMAIL,
        sender="ada@client.example",
        body="Yes!",
        subject=None,
        in_reply_to=None,
        auto_reply=False,
    )
    await _log(admin, ed, Interaction.CALL, "Mark as replied")
    # "Finished (No reply): The prospect gave no response to the steps undertaken
    # in the workflow."
    await _log(admin, bob, Interaction.EMAIL, "Mark as finished")
    # "Opted Out: The prospect opted out of receiving any further communication."
    await prospects.opt_out(actor=admin, prospect_id=cy.prospect_id, channel=Channel.EMAIL)
    # "Unsubscribed: The prospect has unsubscribed from the mailing list of the company."
    di_prospect = await Prospect.get(id=di.prospect_id)
    await consent.unsubscribe(di_prospect, actor=admin, cause=ChangeCause.INBOUND)  # as the link does

    assert [await _status(e) for e in (ada, bob, cy, di, ed)] == [
        "Finished (Replied)",
        "Finished (No reply)",
        "Opted Out",
        "Unsubscribed",
        "Finished (Replied)",
    ]
    assert [await _stage(e) for e in (ada, bob, cy, di, ed)] == [
        "REPLIED",
        "UNRESPONSIVE",
        "OPTED_OUT",
        "UNSUBSCRIBED",
        "REPLIED",
    ]
    entered = await StatusChange.filter(organization_id=org.id).values_list("to_status_id", flat=True)
    reached = {s.name for s in await Status.filter(id__in=list(entered))}
    table = {"Pending", "Active", "Paused", "Finished (Replied)", "Finished (No reply)", "Opted Out", "Unsubscribed"}
    assert table <= reached  # every status of the seed's table, Pending too (new prospects start there)


async def test_000_a_mirrored_stage_moves_no_other_sequence_and_fires_once(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    admin = await _preset(org, clock, "prospect-workflow")
    _, [first] = await _enrolled(admin, [{"first_name": "Ada", "email": "ada@client.example"}], steps=TWO_EMAILS)
    second_sequence = await sequences.create_sequence(
        actor=admin,
        name="Follow-up",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        steps=TWO_EMAILS,
        active=True,
    )
    [second], _ = await enrollments.enroll(
        actor=admin, sequence_id=second_sequence.id, prospect_ids=[first.prospect_id], activate=None
    )
    stage_events, status_events = (
        await _events(org, EventType.STAGE_CHANGED),
        await _events(org, EventType.STATUS_CHANGED),
    )

    # Choosing Paused by hand pauses both; the rule mirroring each PAUSED into
    # Paused finds the prospect there: no status change, nothing paused twice.
    await _choose(admin, first, "Paused")
    assert (await _stage(first), await _stage(second)) == ("PAUSED", "PAUSED")
    assert await _events(org, EventType.STAGE_CHANGED) == stage_events + 2
    assert await _events(org, EventType.STATUS_CHANGED) == status_events + 1
    assert await StageChange.filter(enrollment_id__in=[first.id, second.id], to_stage=Stage.PAUSED).count() == 2

    # Active by hand resumes both, once each.
    await _choose(admin, first, "Active")
    assert (await _stage(first), await _stage(second)) == ("STARTED", "STARTED")
    assert await _events(org, EventType.STAGE_CHANGED) == stage_events + 4
    assert await _events(org, EventType.STATUS_CHANGED) == status_events + 2

    # One enrollment paused (not the status): the mirror shows Paused, the other
    # sequence keeps going; one removed: Finished (No reply), the other still runs.
    await enrollments.pause(actor=admin, enrollment_ids=[first.id])
    assert (await _status(first), await _stage(second)) == ("Paused", "STARTED")
    await enrollments.remove(actor=admin, enrollment_ids=[first.id])
    assert (await _status(first), await _stage(second)) == ("Finished (No reply)", "STARTED")
    await _send_due(clock, settings)
    assert await _sent(second) == 1


async def test_000_each_workflow_shows_the_prospect_in_its_own_status(
    gql: GraphQL, org: Org, clock: FrozenClock
) -> None:
    """Seed 000: the status is the prospect's in *this* workflow. One prospect in
    two sequences, one paused: that enrollment reads Paused, the other Active."""
    admin = await _preset(org, clock, "prospect-workflow")
    ada = {"first_name": "Ada", "email": "ada@client.example"}
    _, [first] = await _enrolled(admin, [ada])
    second = await sequences.create_sequence(
        actor=admin,
        name="Follow-up",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        steps=EMAIL,
        active=True,
    )
    [_], errors = await enrollments.enroll(
        actor=admin, sequence_id=second.id, prospect_ids=[first.prospect_id], activate=None
    )
    assert not errors
    await enrollments.pause(actor=admin, enrollment_ids=[first.id])
    body = await gql(
        org.tokens[Role.MANAGER],
        "query($id: ID!) { node(id: $id) { ... on Prospect { "
        "enrollments { edges { node { sequence { name } stage stageName } } } } } }",
        id=ids.encode("Prospect", first.prospect_id),
    )
    read = [edge["node"] for edge in body["data"]["node"]["enrollments"]["edges"]]
    assert read == [
        {"sequence": {"name": "Outreach"}, "stage": "PAUSED", "stageName": "Paused"},
        {"sequence": {"name": "Follow-up"}, "stage": "STARTED", "stageName": "Active"},
    ]


async def test_001_person_status_and_sequence_stage_go_both_ways(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    admin = await _preset(org, clock, "sequence-stages")
    names = ("Ada", "Bob", "Cy", "Di", "Eve", "Fay", "Gus", "Hal")
    people = [{"first_name": n, "email": f"{n.lower()}@client.example"} for n in names]
    sequence_id, everyone = await _enrolled(admin, people, steps=TWO_EMAILS, active=False)
    _, bob, cy, di, eve, fay, gus, hal = everyone

    # "Once added to a sequence, initially a prospect is on 'Not started' stage."
    # "Not started - a prospect has been added to a sequence, but the sequence is
    # not active or no step has been scheduled by the system yet."
    assert {await _status(e) for e in everyone} == {"Not contacted"}
    assert {await _stage(e) for e in everyone} == {"NOT_STARTED"}
    # Just added by hand cannot start a sequence that is not active.
    await _choose(admin, hal, "Just added")
    assert await _stage(hal) == "NOT_STARTED"
    await _choose(admin, hal, "Not contacted")

    # "Started - the first step of a sequence has been planned and scheduled by the
    # system, but hasn't been executed yet."
    await enrollments.set_sequence_active(actor=admin, sequence_id=sequence_id, active=True)
    assert {await _status(e) for e in everyone} == {"Just added"}

    # "Approaching - at least one step has been executed already, expecting more
    # steps to execute."
    await _send_due(clock, settings)
    assert {await _status(e) for e in everyone} == {"In progress"}
    assert {await _stage(e) for e in everyone} == {"APPROACHING"}

    # "Success - ... A prospect gets to this stage when a RG user marks his/her
    # Person Status so by choosing 'Finished: Success' manually".
    await _choose(admin, cy, "Success")
    # "Not interested - a prospect gets to this stage when a RG user marks his/her
    # Person Status so by choosing 'Finished: Not interested' manually".
    await _choose(admin, di, "Not interested")
    # "Opted out - ... either he/she has unsubscribed through the unsubscribe link
    # or RG user marked his/her Person Status so".
    eve_prospect = await Prospect.get(id=eve.prospect_id)
    await consent.unsubscribe(eve_prospect, actor=admin, cause=ChangeCause.INBOUND)  # as the link does
    await _choose(admin, fay, "Unsubscribed")
    # "Bounced - this stage is auto-assigns when Undelivered Mail Returned to sender
    # type of an email is received ... Or else you can assign a prospect to Bounced
    # Person Status via Sequence widget and in its turn this stage will be assigned
    # automatically."
    await inbound.record_bounce(
        actor=admin, message_id=None, email="ada@client.example", bounce_type=BounceType.HARD, reason="550 5.1.1"
    )
    await _choose(admin, gus, "Bounced")

    # The table, both ways: "Not started ↔ Not contacted". Chosen by hand, no step
    # is scheduled for Hal any more (the enrollment pauses): the second step, due
    # tomorrow, does not go out.
    await _choose(admin, hal, "Not contacted")
    assert await _stage(hal) == "PAUSED"
    clock.advance(86400)
    await _send_due(clock, settings)
    assert (await _sent(hal), await _sent(bob)) == (1, 2)
    assert await _status(hal) == "Not contacted"
    # "Approaching ↔ In progress": chosen by hand, the sequence goes on from where
    # it stood, the step that fell due meanwhile due now.
    await _choose(admin, hal, "In progress")
    assert await _stage(hal) == "APPROACHING"
    await _send_due(clock, settings)
    assert (await _sent(hal), await _status(hal)) == (2, "In progress")

    # "Unresponsive - this stage is auto-assigned when there has been no response
    # from a prospect to an email type of a step for 1 week."
    clock.advance(7 * 86400 + 1)
    await scheduler.run_pass(clock)
    assert [await _status(e) for e in everyone] == [
        "Bounced",
        "Unresponsive",
        "Success",
        "Not interested",
        "Unsubscribed",
        "Unsubscribed",
        "Bounced",
        "Unresponsive",
    ]
    assert [await _stage(e) for e in everyone] == [
        "BOUNCED",
        "UNRESPONSIVE",
        "SUCCESS",
        "NOT_INTERESTED",
        "UNSUBSCRIBED",
        "OPTED_OUT",
        "BOUNCED",
        "UNRESPONSIVE",
    ]


async def test_001_just_added_by_hand_starts_a_person_not_started(org: Org, clock: FrozenClock) -> None:
    # "Started ↔ Just added": a person enrolled without starting (the sequence is
    # active) is started by choosing Just added, its first step scheduled.
    admin = await _preset(org, clock, "sequence-stages")
    sequence = await sequences.create_sequence(
        actor=admin,
        name="Outreach",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        steps=TWO_EMAILS,
        active=True,
    )
    made, _ = await prospects.create_prospects(actor=admin, inputs=[{"first_name": "Ivy", "email": "ivy@x.example"}])
    [ivy], _ = await enrollments.enroll(actor=admin, sequence_id=sequence.id, prospect_ids=[made[0].id], activate=False)
    assert (await _stage(ivy), await _status(ivy)) == ("NOT_STARTED", "Not contacted")
    await _choose(admin, ivy, "Just added")
    assert (await _stage(ivy), await _status(ivy)) == ("STARTED", "Just added")
    assert ivy.due_at == clock.now()


async def test_002_automatic_and_manual_statuses_side_by_side(org: Org, clock: FrozenClock, settings: Settings) -> None:
    """The seed page's sentences in order (seed 002, Statflo's Statuses)."""
    admin = await _preset(org, clock, "sms-conversations")

    async def texts_back(enrollment: Enrollment, body: str) -> None:
        prospect = await Prospect.get(id=enrollment.prospect_id)
        await inbound.record_inbound(
            actor=admin,
            channel=Channel.SMS,
            sender=prospect.phone or "",
            body=body,
            subject=None,
            in_reply_to=None,
            auto_reply=False,
        )

    async def conversation(enrollment: Enrollment) -> tuple[str, str]:
        prospect = await Prospect.get(id=enrollment.prospect_id)
        return (await Status.get(id=prospect.status_id)).name, prospect.conversation_state

    # "There are two types of statuses — automatic and manual statuses."
    workflows = {w.name: w for w in await Workflow.filter(organization_id=org.id)}
    automatic = await Status.filter(workflow_id=workflows["SMS conversation"].id).order_by("position")
    assert [s.name for s in automatic] == ["New Account", "No SMS Reply", "SMS in Progress"]
    rules = await AutomationRule.filter(organization_id=org.id)
    assert rules and all(sorted(r.only_in_status_ids) == sorted(s.id for s in automatic) for r in rules)

    # "This New Account status indicates a new account has been added to a Smart
    # List. These accounts include newly added leads."
    steps = [
        StepSpec(StepType.SMS, 0, body="Hi {{ first_name }}"),
        StepSpec(StepType.SMS, 60, body="Still there?"),
        StepSpec(StepType.SMS, 3600, body="Our offer ends soon"),
    ]
    people = [
        {"first_name": name, "phone": f"+1202555014{number}"}
        for number, name in enumerate(["Ada", "Bo", "Cy", "Di", "Ed", "Fay"])
    ]
    _, everyone = await _enrolled(admin, people, steps=steps, stop_on_reply=False)
    ada, bo, cy, di, ed, fay = everyone
    assert [await _status(e) for e in everyone] == ["New Account"] * 6

    # "This No SMS Reply status indicates any account where you sent the last text
    # message — whether or not your customer replied yet."
    await _send_due(clock, settings)
    assert await conversation(ada) == ("No SMS Reply", "AWAITING_REPLY")

    # "This SMS in Progress status indicates any account where your customer replied
    # to your last text message."
    await texts_back(ada, "Who is this?")
    assert await conversation(ada) == ("SMS in Progress", "REPLY_NEEDED")

    # "Note: “No SMS Reply” and “SMS in progress” will switch back and forth to give
    # you an idea of who sent the last message."
    clock.advance(60)
    await _send_due(clock, settings)
    assert await conversation(ada) == ("No SMS Reply", "AWAITING_REPLY")

    # "This Sale in Progress status indicates that a sale is currently in the process
    # of completion. [...] Using the Interaction filter, select Call / SMS / Email /
    # In Store. The Outcome filter will then show. Select Sale in Progress"
    await _log(admin, ada, Interaction.SMS, "Sale in Progress")
    assert await _status(ada) == "Sale in Progress"
    # A manual status stays through the texts that follow; who texted last still shows.
    await texts_back(ada, "Can I pay by card?")
    assert await conversation(ada) == ("Sale in Progress", "REPLY_NEEDED")

    # "This Satisfied status indicates that a sale wasn't made, because the customer
    # is satisfied with the current product or service. [...] The Outcome filter will
    # then show. Select No Sale. The Explain filter will then show. Select Satisfied"
    with pytest.raises(ActionNotAvailable, match="available in 'No Sale' \\(No Sale\\)"):
        await _log(admin, bo, Interaction.IN_PERSON, "Satisfied")  # the explanation follows the outcome
    await _log(admin, bo, Interaction.IN_PERSON, "No Sale")
    await _log(admin, bo, Interaction.IN_PERSON, "Satisfied")
    assert await _status(bo) == "Satisfied"
    logged = await Activity.filter(prospect_id=bo.prospect_id).order_by("id").values_list("action__name", flat=True)
    assert list(logged) == ["No Sale", "Satisfied"]

    # "This No Sale status indicates that no sale occurred. [...] Select No Sale"
    await _log(admin, cy, Interaction.EMAIL, "No Sale")
    assert await _status(cy) == "No Sale"
    # "Which conversations did not lead to a sale?": filtering by No Sale finds both.
    no_sale = prospect_read.prospects(admin, workflow_ids=[workflows["No Sale"].id])
    assert sorted(await no_sale.values_list("id", flat=True)) == sorted([bo.prospect_id, cy.prospect_id])

    # "This Sold status indicates a completed sale [...] Select Sold a Product or Service"
    await _log(admin, di, Interaction.IN_PERSON, "Sold a Product or Service")
    assert await _status(di) == "Sold"
    await texts_back(di, "Thanks, it works!")  # one inbound SMS no longer undoes the sale
    assert await conversation(di) == ("Sold", "REPLY_NEEDED")

    # "This No Answer status indicates that the customer did not answer your phone
    # call. [...] Using the Interaction filter, select Call"
    with pytest.raises(ActionNotAvailable, match="cannot be logged with SMS"):
        await _log(admin, ed, Interaction.SMS, "No Answer")
    await _log(admin, ed, Interaction.CALL, "No Answer")
    assert await _status(ed) == "No Answer"

    # "This Left a Voicemail status indicates that the customer did not answer your
    # phone call and you left a voicemail."
    await _log(admin, fay, Interaction.CALL, "Left a Voicemail")
    assert await _status(fay) == "Left a Voicemail"

    # "This Wrong Number status indicates that the phone number you dialed does not
    # belong to the intended recipient."
    await _log(admin, ed, Interaction.CALL, "Wrong Number")
    assert await _status(ed) == "Wrong Number"

    # The next text goes out to everyone: only the prospects still in an automatic
    # status follow it; every logged outcome stays.
    clock.advance(3600)
    await _send_due(clock, settings)
    assert await conversation(di) == ("Sold", "AWAITING_REPLY")
    assert [await _status(e) for e in everyone] == [
        "Sale in Progress",
        "Satisfied",
        "No Sale",
        "Sold",
        "Wrong Number",
        "Left a Voicemail",
    ]


@pytest.mark.parametrize(
    "order",
    [
        ["lead-workflow", "sms-conversations", "prospect-workflow", "sequence-stages"],
        ["sms-conversations", "sequence-stages", "prospect-workflow", "lead-workflow"],
    ],
)
async def test_all_presets_side_by_side_keep_the_default_and_never_fight(
    org: Org, clock: FrozenClock, settings: Settings, order: list[str]
) -> None:
    """Each prospect follows the preset whose status it is in: the first preset's
    default stays, every preset's dispositions work where they are available, and
    no trigger moves a prospect more than once (the rules of two presets used to
    push each prospect back and forth)."""
    admin = await _preset(org, clock, order[0])
    default = (await Organization.get(id=org.id)).default_status_id
    for name in order[1:]:
        await presets.apply(actor=admin, name=name)
    assert (await Organization.get(id=org.id)).default_status_id == default

    statuses = {(s.name, s.workflow_id): s for s in await Status.filter(organization_id=org.id)}
    workflow_of = {w.id: w.name for w in await Workflow.filter(organization_id=org.id)}
    by_name = {name: s for (name, workflow_id), s in statuses.items() if workflow_of[workflow_id] != "Closed"}
    entries = ["New Account", "New Lead", "Pending", "Not contacted"]  # one first status per preset
    people = [
        {"first_name": name.replace(" ", ""), "phone": f"+1202555016{n}", "status_id": by_name[name].id}
        for n, name in enumerate(entries)
    ]
    people.append({"first_name": "Default", "phone": "+12025550169"})
    sms = [StepSpec(StepType.SMS, 0, body="Hi {{ first_name }}"), StepSpec(StepType.SMS, 60, body="Still there?")]

    moves: list[tuple[str, int]] = []  # (trigger, status changes of one prospect)

    async def step(trigger: str, run: object) -> None:
        before = await _changes_by_prospect(org.id)
        await run  # type: ignore[misc]
        after = await _changes_by_prospect(org.id)
        moves.extend((trigger, after[p] - before.get(p, 0)) for p in after)

    async def enroll() -> list[Enrollment]:
        return (await _enrolled(admin, people, steps=sms, stop_on_reply=True))[1]

    before = await _changes_by_prospect(org.id)
    everyone = await enroll()
    after = await _changes_by_prospect(org.id)
    moves.extend(("enroll", after[p] - before.get(p, 0) - 1) for p in after)  # less its first status
    account, lead, pending, contacted, fallback = everyone
    assert await Status.get(id=(await Prospect.get(id=fallback.prospect_id)).status_id) == await Status.get(id=default)

    await step("send", _send_due(clock, settings))
    await step("log", _log_in(admin, lead, "Contact Attempt", "No Answer", Interaction.CALL))
    await step("log", _log_in(admin, account, "Log an Activity", "Sold a Product or Service", Interaction.SMS))
    with pytest.raises(ActionNotAvailable) as refused:
        await _log_in(admin, account, "Contact Made", "Sold", Interaction.CALL)
    assert refused.value.field == ("action_id",)
    assert "the prospect's status 'Sold' (Outcome)" in refused.value.message
    assert "available in 'Contact Made' (Contacted), 'Appointment Set' (Contacted)" in refused.value.message
    for enrollment in everyone:
        prospect = await Prospect.get(id=enrollment.prospect_id)
        await step(
            "inbound",
            inbound.record_inbound(
                actor=admin,
                channel=Channel.SMS,
                sender=prospect.phone or "",
                body="Tell me more",
                subject=None,
                in_reply_to=None,
                auto_reply=False,
            ),
        )
    clock.advance(60)
    await step("send", _send_due(clock, settings))
    await step("log", _log_in(admin, contacted, None, "Mark as replied", Interaction.EMAIL))

    assert moves and max(count for _, count in moves) <= 1, [m for m in moves if m[1] > 1]
    names = {}
    for enrollment in everyone:
        prospect = await Prospect.get(id=enrollment.prospect_id)
        status = await Status.get(id=prospect.status_id)
        names[enrollment.prospect_id] = (workflow_of[status.workflow_id], status.name)
    assert names[account.prospect_id] == ("Outcome", "Sold")  # the texts after the sale changed nothing
    assert names[lead.prospect_id] == ("Attempting Contact", "Attempting Contact")
    assert names[pending.prospect_id][0] == "Prospect workflow"
    assert names[contacted.prospect_id] == ("Prospect workflow", "Finished (Replied)")


async def _changes_by_prospect(organization_id: int) -> dict[int, int]:
    """STATUS_CHANGED events, and first statuses, so far per prospect."""
    counts: dict[int, int] = {}
    for (prospect_id,) in await StatusChange.filter(organization_id=organization_id).values_list("prospect_id"):
        counts[prospect_id] = counts.get(prospect_id, 0) + 1
    events = await Event.filter(organization_id=organization_id, type=EventType.STATUS_CHANGED).count()
    assert events == sum(counts.values()) - len(counts)  # each change but the first status is an event
    return counts


async def _log_in(
    admin: Actor, enrollment: Enrollment, category: str | None, action: str, interaction: Interaction
) -> None:
    """Logs the action ``action`` of ``category`` (presets side by side name actions alike)."""
    if category is None:
        row = await Action.get(organization_id=admin.organization_id, name=action, category_id=None)
    else:
        row = await Action.get(organization_id=admin.organization_id, name=action, category__name=category)
    await prospects.log_activity(
        actor=admin, prospect_id=enrollment.prospect_id, interaction=interaction, action_id=row.id, note=None
    )


async def _disposition(
    actor: Actor, prospect: Prospect, action: str, interaction: Interaction = Interaction.CALL, **given: Any
) -> Prospect:
    """ClickPoint's disposition: an activity with an action; the prospect after it."""
    row = await Action.get(organization_id=actor.organization_id, name=action)
    await prospects.log_activity(
        actor=actor, prospect_id=prospect.id, interaction=interaction, action_id=row.id, note=None, **given
    )
    return await Prospect.get(id=prospect.id)


async def _callbacks(prospect: Prospect) -> list[datetime]:
    return [t.due_at for t in await Task.filter(prospect_id=prospect.id, kind=TaskKind.CALLBACK).order_by("id")]


async def _status_of(prospect: Prospect) -> str:
    return (await Status.get(id=(await Prospect.get(id=prospect.id)).status_id)).name


async def test_003_key_terms_statuses_actions_and_time_in_the_status(org: Org, clock: FrozenClock) -> None:
    admin = await _preset(org, clock, "lead-workflow")
    first = org.actor(Role.AGENT, clock)
    user = await accounts.create_user(actor=admin, name="Agent 2", email="agent2@acme.example", role=Role.AGENT)
    second = Actor(org.id, user.id, Role.AGENT, clock)
    status = {s.name: s for s in await Status.filter(organization_id=org.id)}
    made, errors = await prospects.create_prospects(
        actor=admin, inputs=[{"first_name": n, "phone": f"+1202555010{i}"} for i, n in enumerate("ABCDEF")]
    )
    assert not errors
    a, b, c, d, e, f = made

    # "Workflow: Consider this the largest group of your leads. Workflows hold a
    # collection of numerous statuses which are similar in nature. For example, a
    # Workflow of Attempting Contact which groups a number of Attempting Contact statuses."
    attempting = await Workflow.get(organization_id=org.id, name="Attempting Contact")
    grouped = await Status.filter(workflow_id=attempting.id).order_by("position")
    assert [(s.name, s.system_status) for s in grouped] == [
        ("Attempting Contact", SystemStatus.ATTEMPTING_CONTACT),
        ("Final Contact", SystemStatus.ATTEMPTING_CONTACT),
    ]

    # "Status: A status is a sales milestone that is important to your organization.
    # For example, you may have a status of Final Contact, or Appointment Set"
    assert {"Final Contact", "Appointment Set"} <= set(status)

    # "System Status: Special way to tag your sales milestones to mean certain things.
    # ... these system statuses can be used when building Distribution Strategies"
    await prospects.set_status(actor=admin, prospect_id=a.id, status_id=status["Attempting Contact"].id, note=None)
    await prospects.set_status(actor=admin, prospect_id=b.id, status_id=status["Final Contact"].id, note=None)
    pulled = await distribution.pull_prospects(actor=first, count=10, system_statuses=[SystemStatus.ATTEMPTING_CONTACT])
    assert [p.id for p in pulled] == [a.id, b.id]

    # "Pipeline % to Sale: Used when working with Products. When a lead enters a
    # certain Status, you can denote the likely percentage outcome of a sale."
    pipeline = await reports.pipeline(actor=admin, workflow_id=None)
    weighted = {row.status.name: row.weighted for row in pipeline.rows if row.count}
    assert weighted == {"New Lead": 4 * 0.05, "Attempting Contact": 0.10, "Final Contact": 0.05}

    # "Max Allowed Assignment Time: If Enable Pull From Other Agents is enabled via
    # your System Settings, you can set your max assignment time to denote how long a
    # lead can stay in this status before it can be pulled by another agent."
    clock.advance(3.5 * 86400)  # A held 3.5 days: past Attempting Contact's 2 days
    with pytest.raises(NotPullable, match="does not allow"):
        await distribution.pull_prospect(actor=second, prospect_id=a.id)
    await Organization.filter(id=org.id).update(pull_from_other_agents=True)
    await prospects.set_status(actor=first, prospect_id=a.id, status_id=status["Contact Made"].id, note=None)
    with pytest.raises(NotPullable, match="from its owner from"):  # just entered a 3-day status
        await distribution.pull_prospect(actor=second, prospect_id=a.id)
    clock.advance(3 * 86400 - 1)
    with pytest.raises(NotPullable):
        await distribution.pull_prospect(actor=second, prospect_id=a.id)
    clock.advance(1)
    assert (await distribution.pull_prospect(actor=second, prospect_id=a.id)).owner_id == user.id
    assert (await distribution.pull_prospect(actor=first, prospect_id=b.id)).owner_id == first.user_id  # its own

    # "Category: Groups together and improves navigation of all Actions your sales
    # team will need when working a lead. You may decide to have a Category of
    # Contact Attempt with the actions No Answer, Left Message, Left Voicemail."
    category = await ActionCategory.get(organization_id=org.id, name="Contact Attempt")
    names = [x.name for x in await Action.filter(category_id=category.id).order_by("position")]
    assert names[:3] == ["No Answer", "Left Message", "Left Voicemail"]

    # "Action: A disposition that controls and automates what happens to a lead. This
    # could be moving a lead between workflows and statuses, scheduling a callback,
    # denoting contact made or marking a lead DNC."
    now = clock.now()
    c = await _disposition(admin, c, "Appointment Set", Interaction.IN_PERSON)
    assert await _status_of(c) == "Appointment Set"  # from the New bucket to Contacted
    assert c.contact_made_at == now and await _callbacks(c) == [now + timedelta(days=1)]
    d = await _disposition(admin, d, "Do Not Contact", Interaction.IN_PERSON)
    assert d.do_not_contact and await _status_of(d) == "Do Not Contact"

    # "Did you call and leave a message?"
    e = await _disposition(admin, e, "Left Message")
    assert await _status_of(e) == "Attempting Contact" and e.contact_attempts == 1
    assert await _callbacks(e) == [now + timedelta(days=1)]  # the action's own delay

    # "Did you make contact and the lead asked for a second phone call scheduled for
    # a later time?" The time asked for, here Thursday 4 pm in New York.
    asked = datetime(2026, 1, 15, 16, 0, tzinfo=ZoneInfo("America/New_York"))
    e = await _disposition(admin, e, "Callback Requested", callback_at=asked)
    assert await _status_of(e) == "Contact Made" and e.contact_made_at == now
    assert await _callbacks(e) == [now + timedelta(days=1), asked]
    with pytest.raises(InvalidInput, match="'No Answer' schedules none"):
        await _disposition(admin, f, "No Answer", callback_at=asked)

    # "An action is all the outcomes that could happen to a lead during a particular
    # portion of the sales cycle. You more than likely won't find all the same
    # Actions in a Sold Status as you would a New Lead Status."
    c = await _disposition(admin, c, "Sold", Interaction.IN_PERSON)
    in_new_lead, in_sold = await availability.available_actions(org.id, [status["New Lead"].id, status["Sold"].id])
    assert [x.name for x in in_sold] == ["Do Not Contact"]
    assert {"No Answer", "Left Message", "Callback Requested", "Appointment Set"} <= {x.name for x in in_new_lead}
    with pytest.raises(ActionNotAvailable):
        await _disposition(admin, c, "No Answer")
    assert await _status_of(c) == "Sold"


async def test_004_buckets_statuses_actions_and_system_statuses(org: Org, clock: FrozenClock) -> None:
    admin = await _preset(org, clock, "lead-workflow")
    buckets = await Workflow.filter(organization_id=org.id).order_by("position")
    statuses = await Status.filter(organization_id=org.id).order_by("position")

    # "Buckets are a broad category for your leads, typically corresponding with a
    # major milestone in your sales process."
    assert [w.name for w in buckets] == ["New", "Attempting Contact", "Contacted", "Closed"]

    # "Statuses are subcategories for leads. Each bucket has at least one status, but
    # you will typically have multiple statuses in each bucket."
    per_bucket = Counter(s.workflow_id for s in statuses)
    assert [per_bucket[w.id] for w in buckets] == [1, 2, 2, 4]

    # "Statuses will help define and track exactly where a lead is within your sales workflow."
    [lead] = (await prospects.create_prospects(actor=admin, inputs=[{"first_name": "Ada"}]))[0]
    await _disposition(admin, lead, "No Answer")
    clock.advance(86400)
    await _disposition(admin, lead, "No Answer")  # stays where it is
    name = {s.id: s.name for s in statuses}
    history = await StatusChange.filter(prospect_id=lead.id).order_by("id")
    assert [(name.get(h.from_status_id or 0), name[h.to_status_id]) for h in history] == [
        (None, "New Lead"),
        ("New Lead", "Attempting Contact"),
    ]

    # "Actions are the available dispositions that can be used on a lead to move it
    # through your workflow. Each status is configured with its own set of actions."
    ids_ = [s.id for s in statuses]
    sets = {
        name[pk]: {a.name for a in acts}
        for pk, acts in zip(ids_, await availability.available_actions(org.id, ids_), strict=True)
    }
    assert "Final Attempt, No Answer" in sets["Final Contact"] and "Final Attempt, No Answer" not in sets["New Lead"]
    assert "Sold" in sets["Appointment Set"] and "Sold" not in sets["Attempting Contact"]
    assert sets["Sold"] == sets["Not Interested"] == {"Do Not Contact"}

    # "In the Edit Workflow page, the Workflow Properties section will show the System
    # Status each of the Statuses corresponds with. By clicking a System Status ...
    # you can quickly review all of the statuses belonging to that System Status."
    by_system: dict[SystemStatus, list[str]] = {}
    for s in statuses:
        by_system.setdefault(s.system_status, []).append(s.name)
    assert by_system[SystemStatus.ATTEMPTING_CONTACT] == ["Attempting Contact", "Final Contact"]

    # "Pro Tip: System Statuses are used to categorize your statuses and can be used as
    # criteria for lead distributions and for tracking lead progress in certain reports."
    await prospects.create_prospects(actor=admin, inputs=[{"first_name": "Bob"}])
    agent = org.actor(Role.AGENT, clock)
    [bob] = await distribution.pull_prospects(actor=agent, count=10, system_statuses=[SystemStatus.NEW])
    assert bob.first_name == "Bob"
    counts = dict(await reports.system_status_counts(admin))
    assert (counts[SystemStatus.NEW], counts[SystemStatus.ATTEMPTING_CONTACT]) == (1, 1)

    # "You can view the settings and operations for a specific action by clicking the
    # gear icon for an action."
    callback = await Action.get(organization_id=org.id, name="Callback Requested")
    assert [op["type"] for op in callback.operations] == ["MARK_CONTACT_MADE", "SET_STATUS", "SCHEDULE_CALLBACK"]


async def test_000_paused_by_hand_stays_paused_when_the_sequence_is_reactivated(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    """Seed 000: Paused chosen by hand holds until Resume. An enrollment the
    sequence's deactivation paused, then Paused by hand, is the person's pause:
    reactivating the sequence does not resume it (nor show it Active)."""
    admin = await _preset(org, clock, "prospect-workflow")
    people = [{"first_name": n, "email": f"{n.lower()}@client.example"} for n in ("Ada", "Bob")]
    sequence_id, [ada, bob] = await _enrolled(admin, people)
    await enrollments.set_sequence_active(actor=admin, sequence_id=sequence_id, active=False)
    assert [await _status(e) for e in (ada, bob)] == ["Paused", "Paused"]
    await _choose(admin, ada, "Active")  # the sequence is inactive: nothing starts
    assert (await _status(ada), await _stage(ada)) == ("Active", "PAUSED")
    await _choose(admin, ada, "Paused")

    await enrollments.set_sequence_active(actor=admin, sequence_id=sequence_id, active=True)
    await _send_due(clock, settings)
    assert (await _stage(ada), await _status(ada), await _sent(ada)) == ("PAUSED", "Paused", 0)
    assert (await _stage(bob), await _status(bob), await _sent(bob)) == ("APPROACHING", "Active", 1)
    await _choose(admin, ada, "Active")  # Resume
    await _send_due(clock, settings)
    assert (await _stage(ada), await _status(ada), await _sent(ada)) == ("APPROACHING", "Active", 1)
