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

from app import presets
from app.accounts import service as accounts
from app.accounts.actor import Actor
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.errors import ActionNotAvailable, InvalidInput, NotPullable
from app.messaging import inbound, sending
from app.messaging.models import BounceType
from app.prospects import consent, distribution, reports
from app.prospects import service as prospects
from app.prospects.models import ChangeCause, Channel, Prospect, StatusChange, Task, TaskKind
from app.sequences import enrollments, scheduler
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from app.workflows import availability
from app.workflows.models import Action, ActionCategory, AutomationRule, Interaction, Status, SystemStatus, Workflow
from tests.conftest import Org

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


async def test_000_the_status_follows_the_stage_through_every_status_of_the_table(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    admin = await _preset(org, clock, "prospect-workflow")
    people = [{"first_name": n, "email": f"{n.lower()}@client.example"} for n in ("Ada", "Bob", "Cy", "Di", "Ed")]
    sequence_id, [ada, bob, cy, di, ed] = await _enrolled(admin, people, active=False)
    assert await _status(ada) == "Pending"
    await enrollments.set_sequence_active(actor=admin, sequence_id=sequence_id, active=True)
    assert await _status(ada) == "Active"
    await enrollments.pause(actor=admin, enrollment_ids=[ada.id])
    assert await _status(ada) == "Paused"
    await enrollments.resume(actor=admin, enrollment_ids=[ada.id])
    await _send_due(clock, settings)
    assert await _status(ada) == "Active"

    await inbound.record_inbound(
        actor=admin,
        channel=Channel.EMAIL,
        sender="ada@client.example",
        body="Yes!",
        subject=None,
        in_reply_to=None,
        auto_reply=False,
    )
    await _log(admin, bob, Interaction.EMAIL, "Mark as finished")
    await prospects.opt_out(actor=admin, prospect_id=cy.prospect_id, channel=Channel.EMAIL)
    di_prospect = await Prospect.get(id=di.prospect_id)
    await consent.unsubscribe(di_prospect, actor=admin, cause=ChangeCause.INBOUND)  # as the link does
    await _log(admin, ed, Interaction.CALL, "Mark as replied")

    assert [await _status(e) for e in (ada, bob, cy, di, ed)] == [
        "Finished (Replied)",
        "Finished (No reply)",
        "Opted Out",
        "Unsubscribed",
        "Finished (Replied)",
    ]
    for enrollment, stage in zip(
        (ada, bob, cy, di, ed), ("REPLIED", "UNRESPONSIVE", "OPTED_OUT", "UNSUBSCRIBED", "REPLIED"), strict=True
    ):
        await enrollment.refresh_from_db()
        assert enrollment.stage == stage
    entered = await StatusChange.filter(organization_id=org.id).values_list("to_status_id", flat=True)
    reached = {s.name for s in await Status.filter(id__in=list(entered))}
    table = {"Pending", "Active", "Paused", "Finished (Replied)", "Finished (No reply)", "Opted Out", "Unsubscribed"}
    assert table <= reached  # every status of the seed's table, Pending too (new prospects start there)


async def test_001_person_status_and_sequence_stage_go_both_ways(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    admin = await _preset(org, clock, "sequence-stages")
    people = [{"first_name": n, "email": f"{n.lower()}@client.example"} for n in ("Ada", "Bob", "Cy")]
    sequence_id, [ada, bob, cy] = await _enrolled(admin, people, active=False, unresponsive_after_seconds=3600)
    walk = [await _status(ada)]
    await enrollments.set_sequence_active(actor=admin, sequence_id=sequence_id, active=True)
    walk.append(await _status(ada))
    await _send_due(clock, settings)
    walk.append(await _status(ada))
    await inbound.record_bounce(
        actor=admin, message_id=None, email="ada@client.example", bounce_type=BounceType.HARD, reason="550 5.1.1"
    )
    walk.append(await _status(ada))
    assert walk == ["Not contacted", "Just added", "In progress", "Bounced"]

    success = await Status.get(organization_id=org.id, name="Success")
    await prospects.set_status(
        actor=admin,
        prospect_id=cy.prospect_id,
        status_id=success.id,
        note="signed",
    )
    clock.advance(3601)
    await scheduler.run_pass(clock)  # Bob never answered
    assert [await _status(e) for e in (ada, bob, cy)] == ["Bounced", "Unresponsive", "Success"]
    for enrollment, stage in zip((ada, bob, cy), ("BOUNCED", "UNRESPONSIVE", "SUCCESS"), strict=True):
        await enrollment.refresh_from_db()
        assert enrollment.stage == stage


async def test_002_sms_statuses_flip_with_each_text_and_activities_set_outcomes(
    org: Org, clock: FrozenClock, settings: Settings
) -> None:
    admin = await _preset(org, clock, "sms-conversations")
    steps = [StepSpec(StepType.SMS, 0, body="Hi {{ first_name }}"), StepSpec(StepType.SMS, 60, body="Still there?")]
    _, [ada] = await _enrolled(
        admin, [{"first_name": "Ada", "phone": "+12025550143"}], steps=steps, stop_on_reply=False
    )
    walk = [await _status(ada)]
    await _send_due(clock, settings)
    walk.append(await _status(ada))
    await inbound.record_inbound(
        actor=admin,
        channel=Channel.SMS,
        sender="+12025550143",
        body="Who is this?",
        subject=None,
        in_reply_to=None,
        auto_reply=False,
    )
    walk.append(await _status(ada))
    clock.advance(60)
    await _send_due(clock, settings)
    walk.append(await _status(ada))
    assert walk == ["New Account", "No SMS Reply", "SMS in Progress", "No SMS Reply"]

    with pytest.raises(ActionNotAvailable, match="cannot be logged with SMS"):
        await _log(admin, ada, Interaction.SMS, "No Answer")
    assert await _status(ada) == "No SMS Reply"
    await _log(admin, ada, Interaction.CALL, "No Answer")
    assert await _status(ada) == "No Answer"
    await _log(admin, ada, Interaction.IN_PERSON, "Sold a Product or Service")
    assert await _status(ada) == "Sold"


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
