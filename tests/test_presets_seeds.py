"""R9: each preset walks its seed (000 Upscale workflow prospects, 001 Revenue Grid
sequence stages and person statuses, 002 SMS conversation statuses), and
applying any preset twice changes nothing."""

from __future__ import annotations

import pytest

from app import presets
from app.accounts.actor import Actor
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.errors import ActionNotAvailable
from app.events.models import Event, EventType
from app.messaging import inbound, sending
from app.messaging.models import BounceType
from app.prospects import consent
from app.prospects import read as prospect_read
from app.prospects import service as prospects
from app.prospects.models import Activity, ChangeCause, Channel, Prospect, StatusChange
from app.sequences import enrollments, scheduler
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from app.workflows.models import Action, AutomationRule, Interaction, Status, Workflow
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
