"""What happens to a prospect: status changes, operations and automation rules.

Every function here runs inside the caller's transaction, on a prospect row
the caller has locked, and changes nothing outside it; an exception rolls
back every operation before it (R2.2). Automation (R8) runs in the same
transaction: a rule fires at most once per chain and chains stop at depth 5.
Rules on MESSAGE_SENT, MESSAGE_RECEIVED and ENROLLMENT_STAGE_CHANGED run in a
savepoint (``event_rules``): one that cannot run is logged and undone, and
never undoes the message or stage change that set it off.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Sequence as Seq
from datetime import timedelta
from typing import Any

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from app.accounts.actor import Actor
from app.accounts.models import Organization, Role, User
from app.errors import Conflict, DomainError
from app.events import log
from app.events.models import EventType
from app.messaging import compose
from app.prospects import statuses
from app.prospects.models import ChangeCause, Channel, Prospect, Task, TaskKind
from app.sequences import lifecycle
from app.sequences.models import Sequence
from app.sequences.stages import Move
from app.sequences.state import Event, Stage
from app.workflows.chain import Chain
from app.workflows.models import AutomationRule, Status, TriggerEvent
from app.workflows.operations import OperationType

logger = logging.getLogger("leadline.automation")


async def change_status(
    prospects: Seq[Prospect],
    status: Status,
    *,
    actor: Actor,
    cause: ChangeCause,
    chain: Chain,
    note: str | None = None,
) -> None:
    """Moves locked prospects to ``status`` (any workflow) through the one writer of
    status changes, then, for each that moved, what entering the status sets off:
    its enrollment outcome (R2.5), then its STATUS_ENTERED rules. A prospect at the
    status already changes nothing."""
    for prospect in await statuses.change(prospects, status.id, actor=actor, cause=cause, note=note):
        if status.enrollment_outcome is not None:
            finished = await lifecycle.for_prospect(
                prospect.id,
                Event.FINISH,
                actor=actor,
                cause=cause,
                reason="status_outcome",
                outcome=status.enrollment_outcome,
            )
            await stages_entered(finished, chain=chain)
        await fire_rules(TriggerEvent.STATUS_ENTERED, prospect, actor=actor, chain=chain, status_id=status.id)


async def stages_entered(moves: Iterable[Move], *, chain: Chain | None = None) -> None:
    """The ENROLLMENT_STAGE_CHANGED rules of stage changes recorded (the writer runs none)."""
    entered = [(move.actor, move.prospect_id, move.to) for move in moves]
    await events_happened(TriggerEvent.ENROLLMENT_STAGE_CHANGED, entered, chain=chain)


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
) -> None:
    rules = AutomationRule.filter(organization_id=prospect.organization_id, event=event, enabled=True)
    if event is TriggerEvent.STATUS_ENTERED:
        rules = rules.filter(status_id=status_id)
    if channel is not None:
        rules = rules.filter(Q(channel=None) | Q(channel=channel))
    if stage is not None:
        rules = rules.filter(Q(stage=None) | Q(stage=stage))
    for rule in await rules.order_by("id"):
        if chain.allows(rule.id):
            await run_operations(
                prospect, rule.operations, actor=actor, cause=ChangeCause.AUTOMATION, chain=chain.after(rule.id)
            )


async def organizations_with_rules(organization_ids: Iterable[int], event: TriggerEvent) -> set[int]:
    """Which of these organizations have an enabled rule for ``event`` (one query)."""
    rows = await AutomationRule.filter(organization_id__in=set(organization_ids), event=event, enabled=True).only(
        "organization_id"
    )
    return {row.organization_id for row in rows}


async def events_happened(
    event: TriggerEvent,
    happened: Iterable[tuple[Actor, int, Channel | Stage]],
    *,
    chain: Chain | None = None,
) -> None:
    """Fires the rules of MESSAGE_SENT, MESSAGE_RECEIVED (with the message's channel)
    or ENROLLMENT_STAGE_CHANGED (with the stage entered) for each (actor, prospect id,
    channel or stage); one query when no organization has rules for the event.

    Each prospect's rules run on its locked row in a savepoint of the event's
    transaction: a rule that cannot run (its status or sequence deleted since) is
    logged and undone, and the event itself (a message sent, a reply) still stands.
    """
    happened = list(happened)
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
                    await fire_rules(event, prospect, actor=actor, chain=chain or Chain(), channel=channel, stage=stage)
        except DomainError as error:
            logger.warning("automation on %s for prospect %s stopped: %s", event.value, prospect_id, error.message)


async def run_operations(
    prospect: Prospect,
    operations: Seq[dict[str, Any]],
    *,
    actor: Actor,
    cause: ChangeCause,
    chain: Chain,
) -> None:
    """Runs stored operations in order on a locked prospect row."""
    for op in operations:
        kind = OperationType(op["type"])
        now = actor.now()
        if kind is OperationType.SET_STATUS:
            status = await Status.get_or_none(
                id=op["status_id"], organization_id=prospect.organization_id, deleted_at=None
            )
            if status is None:
                raise Conflict("The status this operation moves to no longer exists.")
            await change_status([prospect], status, actor=actor, cause=cause, chain=chain)
        elif kind is OperationType.MARK_CONTACT_ATTEMPTED:
            prospect.contact_attempts += 1
            prospect.last_contact_attempt_at = now
            await _save(prospect, now, "contact_attempts", "last_contact_attempt_at")
        elif kind is OperationType.MARK_CONTACT_MADE:
            if prospect.contact_made_at is None:
                prospect.contact_made_at = now
                await _save(prospect, now, "contact_made_at")
        elif kind is OperationType.SCHEDULE_CALLBACK:
            task = await Task.create(
                organization_id=prospect.organization_id,
                prospect_id=prospect.id,
                assignee_id=prospect.owner_id,
                kind=TaskKind.CALLBACK,
                due_at=now + timedelta(seconds=op["delay_seconds"]),
                created_at=now,
            )
            await log.record([log.task_event(EventType.TASK_CREATED, task, now)])
        elif kind is OperationType.MARK_DO_NOT_CONTACT:
            await set_do_not_contact(prospect, True, actor=actor, cause=cause, chain=chain)
        elif kind is OperationType.ASSIGN:
            user_id = op.get("user_id")
            if user_id is None:
                user_id = (await next_in_rotation(prospect.organization_id, 1))[0]
            elif not await User.filter(id=user_id, organization_id=prospect.organization_id, active=True).exists():
                raise Conflict("The user this operation assigns to is no longer active.")
            await assign(prospect, user_id, actor=actor)
        elif kind is OperationType.UNASSIGN:
            await assign(prospect, None, actor=actor)
        elif kind is OperationType.ENROLL_IN_SEQUENCE:
            await _enroll(prospect, op["sequence_id"], actor=actor, cause=cause, chain=chain)
        elif kind is OperationType.FINISH_ENROLLMENTS:
            outcome = Stage(op["outcome"])
            moves = await lifecycle.for_prospect(
                prospect.id, Event.FINISH, actor=actor, cause=cause, reason="operation", outcome=outcome
            )
            await stages_entered(moves, chain=chain)
        elif kind is OperationType.PAUSE_ENROLLMENTS:
            moves = await lifecycle.for_prospect(prospect.id, Event.PAUSE, actor=actor, cause=cause, reason="operation")
            await stages_entered(moves, chain=chain)
        elif kind is OperationType.RESUME_ENROLLMENTS:
            moves = await lifecycle.for_prospect(
                prospect.id, Event.RESUME, actor=actor, cause=cause, reason="operation"
            )
            await stages_entered(moves, chain=chain)
        elif kind is OperationType.SEND_MESSAGE:
            await compose.queue_message(prospect, Channel(op["channel"]), op.get("subject"), op["body"], now=now)


async def _enroll(prospect: Prospect, sequence_id: int, *, actor: Actor, cause: ChangeCause, chain: Chain) -> None:
    """ENROLL_IN_SEQUENCE: a prospect already in the sequence, or blocked on one of
    its channels, is left as it is (the operation is a no-op for it, not a failure)."""
    sequence = await Sequence.get_or_none(id=sequence_id, organization_id=prospect.organization_id)
    if sequence is None:
        raise Conflict("The sequence this operation enrolls in no longer exists.")
    steps = await lifecycle.steps_of(sequence.id)
    if not steps:
        return
    with contextlib.suppress(lifecycle.DoNotContact, lifecycle.AlreadyEnrolled):
        moves = await lifecycle.enroll_one(prospect, sequence, steps, actor=actor, cause=cause, activate=None)
        await stages_entered(moves, chain=chain)


async def set_do_not_contact(
    prospect: Prospect, value: bool, *, actor: Actor, cause: ChangeCause, chain: Chain | None = None
) -> None:
    """Blocks (or unblocks) every channel; blocking finishes unfinished enrollments OPTED_OUT."""
    if prospect.do_not_contact == value:
        return
    prospect.do_not_contact = value
    await _save(prospect, actor.now(), "do_not_contact")
    if value:
        moves = await lifecycle.for_prospect(
            prospect.id, Event.OPT_OUT, actor=actor, cause=cause, reason="do_not_contact"
        )
        await stages_entered(moves, chain=chain)


async def opt_out(prospect: Prospect, channel: Channel, *, actor: Actor, cause: ChangeCause) -> None:
    """Blocks one channel; finishes OPTED_OUT the unfinished enrollments whose sequence uses it."""
    if channel.value in prospect.opted_out_channels:
        return
    await _block(prospect, channel, actor=actor, cause=cause, event=Event.OPT_OUT, reason="opted_out")


async def opt_in(prospect: Prospect, channel: Channel, *, actor: Actor) -> None:
    """Unblocks one channel (an SMS START); finished enrollments stay finished."""
    if channel.value in prospect.opted_out_channels:
        prospect.opted_out_channels = [c for c in prospect.opted_out_channels if c != channel.value]
        await _save(prospect, actor.now(), "opted_out_channels")


async def unsubscribe(prospect: Prospect, *, actor: Actor, cause: ChangeCause) -> None:
    """The email unsubscribe link (R6.3): blocks EMAIL and finishes UNSUBSCRIBED the
    unfinished enrollments whose sequence sends email. Idempotent."""
    await _block(prospect, Channel.EMAIL, actor=actor, cause=cause, event=Event.UNSUBSCRIBE, reason="unsubscribed")


async def hard_bounce(prospect: Prospect, *, actor: Actor, cause: ChangeCause) -> None:
    """A hard bounce blocks EMAIL (R3.3) and finishes BOUNCED the unfinished
    enrollments whose sequence sends email (R6.4), whichever message bounced."""
    await _block(prospect, Channel.EMAIL, actor=actor, cause=cause, event=Event.HARD_BOUNCE, reason="bounced_hard")


async def _block(
    prospect: Prospect,
    channel: Channel,
    *,
    actor: Actor,
    cause: ChangeCause,
    event: Event,
    reason: str,
) -> None:
    if channel.value not in prospect.opted_out_channels:
        prospect.opted_out_channels = sorted({*prospect.opted_out_channels, channel.value})
        await _save(prospect, actor.now(), "opted_out_channels")
    moves = await lifecycle.for_prospect(prospect.id, event, actor=actor, cause=cause, reason=reason, channel=channel)
    await stages_entered(moves)


async def assign(prospect: Prospect, user_id: int | None, *, actor: Actor) -> None:
    """Gives the prospect to ``user_id`` (None: unassigned); the assignment clock restarts."""
    await assign_all([(prospect, user_id)], actor=actor)


async def assign_all(assignments: Seq[tuple[Prospect, int | None]], *, actor: Actor) -> None:
    """``assign`` for many prospects: one UPDATE per new owner and one INSERT of
    their ASSIGNMENT_CHANGED events, however many prospects."""
    now = actor.now()
    events, by_owner = [], defaultdict(list)
    for prospect, user_id in assignments:
        if prospect.owner_id == user_id:
            continue
        events.append(log.assignment_changed(prospect.organization_id, prospect.id, now, prospect.owner_id, user_id))
        prospect.owner_id, prospect.updated_at = user_id, now
        prospect.assigned_at = now if user_id is not None else None
        by_owner[user_id].append(prospect.id)
    for user_id, prospect_ids in by_owner.items():
        await Prospect.filter(id__in=prospect_ids).update(
            owner_id=user_id, assigned_at=now if user_id is not None else None, updated_at=now
        )
    await log.record(events)


async def lock_organization(organization_id: int) -> None:
    """The organization row's write lock, to the end of the caller's transaction
    (a Postgres row lock; on SQLite the database's write lock, taken before any
    read, so two transactions never read the same state and both write)."""
    await Organization.filter(id=organization_id).update(round_robin_user_id=F("round_robin_user_id"))


async def next_in_rotation(organization_id: int, count: int) -> list[int]:
    """The next ``count`` active agents in the organization's round robin.

    The rotation's place is kept on the organization row, locked here, so
    concurrent distributions neither skip an agent nor double up.
    """
    if count <= 0:
        return []
    await lock_organization(organization_id)
    org = await Organization.get(id=organization_id)
    agent_ids = [
        user.id
        for user in await User.filter(organization_id=organization_id, role=Role.AGENT, active=True)
        .order_by("id")
        .only("id")
    ]
    if not agent_ids:
        raise Conflict("There is no active agent to assign to.")
    last = org.round_robin_user_id
    start = next((i for i, a in enumerate(agent_ids) if last is not None and a > last), 0)
    picked = [agent_ids[(start + i) % len(agent_ids)] for i in range(count)]
    await Organization.filter(id=organization_id).update(round_robin_user_id=picked[-1])
    return picked


async def _save(prospect: Prospect, now: Any, *fields: str) -> None:
    """Saves changed fields, with a PROSPECT_UPDATED event that names them (an
    assignment has its own event, written by ``assign_all``)."""
    prospect.updated_at = now
    await prospect.save(update_fields=[*fields, "updated_at"])
    changed = sorted(log.api_name(name) for name in fields)
    event = log.prospect_event(EventType.PROSPECT_UPDATED, prospect.organization_id, prospect.id, now, fields=changed)
    await log.record([event])
