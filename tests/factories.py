"""Builds an organization with one of everything, through the services."""

from __future__ import annotations

from typing import Any

from app import ids, presets
from app.accounts import service as accounts
from app.accounts.models import Role
from app.clock import FrozenClock
from app.events import log
from app.events.models import Event
from app.messaging import inbound
from app.messaging.models import Mailbox
from app.prospects import service as prospects
from app.prospects import suppressions
from app.prospects.models import Channel, Task
from app.sequences import enrollments
from app.sequences import service as sequence_service
from app.sequences.models import SequenceStep, StageChange, StepType
from app.sequences.service import StepSpec
from app.webhooks import signing
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.workflows import service as workflows
from app.workflows.models import Action, ActionCategory, Interaction, Status, TriggerEvent, Workflow
from app.workflows.operations import OperationSpec, OperationType
from tests.conftest import Org


async def populate(org: Org, clock: FrozenClock) -> dict[str, str]:
    """Global ids of one entity of each type in ``org`` (its lead-workflow preset,
    a rule, an extra token, a prospect with an activity, a callback task)."""
    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    new_lead = await Status.get(organization_id=org.id, name="New Lead")
    voicemail = await Action.get(organization_id=org.id, name="Left Voicemail")
    rule = await workflows.create_rule(
        actor=admin,
        name="on new lead",
        event=TriggerEvent.STATUS_ENTERED,
        status_id=new_lead.id,
        operations=[OperationSpec(type=OperationType.MARK_CONTACT_ATTEMPTED)],
        enabled=False,
    )
    _, token = await accounts.create_token(actor=admin, name="spare", user_id=None)
    created, errors = await prospects.create_prospects(
        actor=admin,
        inputs=[
            {
                "first_name": "Pat",
                "email": "pat@client.example",
                "phone": "+12025550177",  # the sequence below texts: enrolling needs a number (NO_ADDRESS)
                "owner_id": org.users[Role.AGENT].id,
            }
        ],
    )
    assert not errors
    prospect = created[0]
    activity, _ = await prospects.log_activity(
        actor=admin,
        prospect_id=prospect.id,
        interaction=Interaction.CALL,
        action_id=voicemail.id,
        note=None,
    )
    task = await Task.get(prospect_id=prospect.id)
    await prospect.refresh_from_db()
    workflow = await Workflow.get(id=(await Status.get(id=prospect.status_id)).workflow_id)
    category = await ActionCategory.get(organization_id=org.id, name="Contact Attempt")
    history = await prospects.StatusChange.filter(prospect_id=prospect.id).first()
    assert history is not None
    sequence = await sequence_service.create_sequence(
        actor=admin,
        name="Follow up",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        steps=[StepSpec(type=StepType.SMS, delay_seconds=3600, body="Hi {{ first_name }}")],
        active=True,
    )
    step = await SequenceStep.get(sequence_id=sequence.id)
    enrolled, errors = await enrollments.enroll(
        actor=admin,
        sequence_id=sequence.id,
        prospect_ids=[prospect.id],
        activate=None,
    )
    assert not errors
    stage_change = await StageChange.get(enrollment_id=enrolled[0].id)
    message, _ = await inbound.record_inbound(
        actor=admin,
        channel=Channel.EMAIL,
        sender="pat@client.example",
        body="Out of office",
        subject=None,
        in_reply_to=None,
        auto_reply=True,
    )
    await log.sequence()  # as the worker does: the events are numbered, hence readable
    event = await Event.filter(organization_id=org.id, prospect_id=prospect.id).order_by("seq").first()
    assert event is not None
    endpoint = await WebhookEndpoint.create(
        organization_id=org.id,
        url="https://hooks.example/leadline",
        secret=signing.new_secret(),
        created_at=clock.now(),
    )
    delivery = await WebhookDelivery.create(
        organization_id=org.id, endpoint_id=endpoint.id, event_id=event.id, created_at=clock.now()
    )
    [suppression] = (
        await suppressions.add(actor=admin, entries=[suppressions.Wanted(Channel.EMAIL, "gone@client.example")])
    ).suppressions
    mailbox = await Mailbox.create(organization_id=org.id, address=f"team@org{org.id}.example", created_at=clock.now())
    rows: dict[str, Any] = {
        "Mailbox": mailbox.id,
        "Event": event.id,
        "WebhookEndpoint": endpoint.id,
        "WebhookDelivery": delivery.id,
        "Organization": org.id,
        "User": org.users[Role.AGENT].id,
        "ApiToken": token.id,
        "Workflow": workflow.id,
        "Status": prospect.status_id,
        "ActionCategory": category.id,
        "Action": voicemail.id,
        "AutomationRule": rule.id,
        "Prospect": prospect.id,
        "Activity": activity.id,
        "StatusChange": history.id,
        "Task": task.id,
        "Sequence": sequence.id,
        "SequenceStep": step.id,
        "Enrollment": enrolled[0].id,
        "StageChange": stage_change.id,
        "Message": message.id,
        "Suppression": suppression.id,
    }
    return {type_name: ids.encode(type_name, pk) for type_name, pk in rows.items()}
