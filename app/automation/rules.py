"""Automation rules (R8): a rule runs its operations when its event happens, in
the transaction of the event, with cause AUTOMATION. A rule fires at most once
per chain and chains stop at depth 5 (``Chain``).

Rules on MESSAGE_SENT, MESSAGE_RECEIVED and ENROLLMENT_STAGE_CHANGED run in a
savepoint (``events_happened``): one that cannot run is logged and undone, and
never undoes the message or stage change that set it off.

A rule with ``only_in_status_ids`` runs only for a prospect whose status, when
the event happens, is one of them. "When the event happens" is the prospect's
status as the event finds it, before any rule set off by that event runs:

- every rule of one event sees that same status, so a rule moving the prospect
  does not let a later rule of the same event (or of the same batch of events)
  run, or stop it from running;
- a reply's MESSAGE_RECEIVED rules see the status the reply found, although the
  ENROLLMENT_STAGE_CHANGED rules of the stages the reply finished (REPLIED), or
  an unsubscribe request's consent, ran before them in the same transaction and
  may have moved the prospect (``app.messaging.inbound`` passes that status);
- a stage change that a status change caused (the status's enrollment outcome)
  happens after it, so its rules see the status entered;
- STATUS_ENTERED rules take no status list: their ``status`` is the status entered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app.accounts.actor import Actor
from app.automation import operations
from app.errors import DomainError
from app.prospects.models import ChangeCause, Channel, Prospect
from app.sequences.stages import Move
from app.sequences.state import Stage
from app.workflows.chain import Chain
from app.workflows.models import AutomationRule, TriggerEvent

logger = logging.getLogger("leadline.automation")


async def has_rules(organization_id: int, event: TriggerEvent) -> bool:
    return await AutomationRule.filter(organization_id=organization_id, event=event, enabled=True).exists()


async def fire_rules(
    event: TriggerEvent,
    prospect: Prospect,
    *,
    actor: Actor,
    chain: Chain,
    status_id: int | None = None,
    channel: Channel | None = None,
    stage: Stage | None = None,
    in_status_id: int | None = None,
) -> None:
    """Runs, in id order, the enabled rules of ``event`` that match the status
    entered, the channel or the stage, and the status the prospect was in when the
    event happened (``in_status_id``, by default its status now), on a locked
    prospect row."""
    at_event = prospect.status_id if in_status_id is None else in_status_id
    rules = AutomationRule.filter(organization_id=prospect.organization_id, event=event, enabled=True)
    if event is TriggerEvent.STATUS_ENTERED:
        rules = rules.filter(status_id=status_id)
    if channel is not None:
        rules = rules.filter(Q(channel=None) | Q(channel=channel))
    if stage is not None:
        rules = rules.filter(Q(stage=None) | Q(stage=stage))
    for rule in await rules.order_by("id"):
        if rule.only_in_status_ids and at_event not in rule.only_in_status_ids:
            continue
        if chain.allows(rule.id):
            after = chain.after(rule.id, follows_stage=event is TriggerEvent.ENROLLMENT_STAGE_CHANGED)
            await operations.run_operations(
                prospect, rule.operations, actor=actor, cause=ChangeCause.AUTOMATION, chain=after
            )


async def organizations_with_rules(organization_ids: Iterable[int], event: TriggerEvent) -> set[int]:
    """Which of these organizations have an enabled rule for ``event`` (one query)."""
    rows = await AutomationRule.filter(organization_id__in=set(organization_ids), event=event, enabled=True).only(
        "organization_id"
    )
    return {row.organization_id for row in rows}


async def stages_entered(moves: Iterable[Move], *, chain: Chain | None = None) -> None:
    """The ENROLLMENT_STAGE_CHANGED rules of stage changes recorded (the writer runs none)."""
    entered = [(move.actor, move.prospect_id, move.to) for move in moves]
    await events_happened(TriggerEvent.ENROLLMENT_STAGE_CHANGED, entered, chain=chain)


async def events_happened(
    event: TriggerEvent,
    happened: Iterable[tuple[Actor, int, Channel | Stage]],
    *,
    chain: Chain | None = None,
    statuses: Mapping[int, int] | None = None,
) -> None:
    """Fires the rules of MESSAGE_SENT, MESSAGE_RECEIVED (with the message's channel)
    or ENROLLMENT_STAGE_CHANGED (with the stage entered) for each (actor, prospect id,
    channel or stage); one query when no organization has rules for the event.

    Each prospect's rules run on its locked row in a savepoint of the event's
    transaction: a rule that cannot run (its status or sequence deleted since) is
    logged and undone, and the event itself (a message sent, a reply) still stands.

    A rule limited to statuses judges the status each prospect was in when its event
    happened: ``statuses`` (prospect id → status id) where the caller has moved it
    since, else its status before the first of these events' rules ran for it.
    """
    happened = list(happened)
    at_event = dict(statuses or {})
    with_rules = await organizations_with_rules({actor.organization_id for actor, _, _ in happened}, event)
    for actor, prospect_id, value in happened:
        if actor.organization_id not in with_rules:
            continue
        channel = value if isinstance(value, Channel) else None
        stage = value if isinstance(value, Stage) else None
        try:
            async with in_transaction():
                prospect = await Prospect.filter(id=prospect_id).select_for_update().first()
                if prospect is not None:
                    in_status_id = at_event.setdefault(prospect.id, prospect.status_id)
                    await fire_rules(
                        event,
                        prospect,
                        actor=actor,
                        chain=chain or Chain(),
                        channel=channel,
                        stage=stage,
                        in_status_id=in_status_id,
                    )
        except DomainError as error:
            logger.warning("automation on %s for prospect %s stopped: %s", event.value, prospect_id, error.message)
