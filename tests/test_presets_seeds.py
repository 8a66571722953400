"""R9: each preset walks its seed (000 Upscale workflow prospects, 001 Revenue Grid
sequence stages and person statuses, 002 SMS conversation statuses), and
applying any preset twice changes nothing."""

from __future__ import annotations

import pytest

from app import ids, presets
from app.accounts.actor import Actor
from app.accounts.models import Organization, Role
from app.clock import FrozenClock
from app.config import Settings
from app.errors import ActionNotAvailable
from app.messaging import inbound, sending
from app.messaging.models import BounceType
from app.prospects import consent
from app.prospects import service as prospects
from app.prospects.models import ChangeCause, Channel, Prospect, StatusChange
from app.sequences import enrollments, scheduler
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StepType
from app.sequences.service import StepSpec
from app.workflows.models import Action, AutomationRule, Interaction, Status, Workflow
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
