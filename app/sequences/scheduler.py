"""The scheduler pass (SPEC R5.1): the database holds the schedule.

Each unfinished, running enrollment has one ``due_at``: its next step, or its
unresponsive deadline once no step is left. A pass claims due enrollments in
bounded batches (PostgreSQL: FOR UPDATE SKIP LOCKED, so two workers never
claim one enrollment) and, for each, in one transaction: waits for the send
window, queues the step's message under its unique key (EMAIL, SMS), opens
its task (CALL, TASK), or times the enrollment out. Every change is a
compare-and-set on the claimed row's due time, which is also what keeps
SQLite (no row locks) from running a step twice. Sending happens after
commit, from the message ids a pass returns; a lost job is found again by
``queued_messages``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from app.accounts.actor import Actor, system_actor
from app.accounts.models import Organization
from app.automation import rules
from app.clock import Clock
from app.errors import InvalidInput
from app.events import log
from app.events.models import EventType
from app.messaging import mailboxes, threads
from app.messaging.models import Direction, Message, MessageState
from app.prospects.events import task_event
from app.prospects.models import ChangeCause, Channel, Task, TaskKind
from app.sequences import lifecycle, stages, store, templates
from app.sequences.models import Enrollment, Sequence, SequenceStep, StepType
from app.sequences.stages import Move
from app.sequences.state import Event, Stage, transition
from app.sequences.windows import SendWindow, next_opening

BATCH = 500
RECOVER_AFTER = timedelta(seconds=1)
THREAD_WAIT = timedelta(seconds=2)
"""How long a threaded step waits, at least, for the email it follows to be sent."""


@dataclass
class PassResult:
    claimed: int = 0
    queued: list[int] = field(default_factory=list)
    """Message ids to send now."""


async def run_pass(clock: Clock, *, batch: int = BATCH) -> PassResult:
    """One bounded batch of due enrollments; call again while ``claimed == batch``."""
    now = clock.now()
    result = PassResult()
    try:
        async with in_transaction():
            due = await store.claim_due(now, batch)
            result.claimed = len(due)
            context = _Context(clock, now)
            await context.load_prospects([e.prospect_id for e in due])
            await context.load_threads(due)
            for enrollment in due:
                await _advance(enrollment, context)
            result.queued = await context.writes.flush(now)
    except _Moved:
        return PassResult()  # another process changed the batch under us: the next pass retries it
    return result


class _Moved(Exception):
    """A batched compare-and-set found fewer rows than it expected."""


class _Writes:
    """The batch's message steps, written together when the pass ends."""

    def __init__(self) -> None:
        self.messages: list[dict[str, object]] = []
        """Message rows (a pass makes hundreds: plain rows, not models)."""
        self.steps_ran: list[Move] = []
        """The STEP_RAN stage changes of the message steps, recorded together."""
        self.moves: list[Move] = []
        """Every stage change of the pass, for the ENROLLMENT_STAGE_CHANGED rules at its end."""
        self.schedules: defaultdict[tuple[tuple[str, object], ...], list[int]] = defaultdict(list)
        self.emails: list[tuple[dict[str, object], int, int | None]] = []
        """The EMAIL message rows with their organization and prospect owner: their mailboxes are read together."""

    def schedule(self, enrollment: Enrollment, **changes: object) -> None:
        """Will set ``changes`` on the enrollment (not on the model, which the pass
        reads no more); enrollments with equal changes share one UPDATE."""
        self.schedules[tuple(sorted(changes.items()))].append(enrollment.id)

    async def flush(self, now: datetime) -> list[int]:
        """Writes everything; the ids of the new messages to send. Raises _Moved if an enrollment moved."""
        for changes, enrollment_ids in self.schedules.items():
            if await store.advance_due(enrollment_ids, now=now, changes=dict(changes)) != len(enrollment_ids):
                raise _Moved
        existing = await store.existing_send_keys([str(m["send_key"]) for m in self.messages])
        # A step whose message exists already (a jump back) is skipped, never sent twice.
        fresh = [m for m in self.messages if m["send_key"] not in existing]
        await self._assign_mailboxes()
        message_ids = await store.insert_messages(fresh)
        queued = [pk for pk, m in zip(message_ids, fresh, strict=True) if m["state"] is MessageState.QUEUED]
        await stages.record(self.steps_ran, cause=ChangeCause.SCHEDULER, reason="step_ran", now=now)
        if self.moves:
            await rules.stages_entered(self.moves)
        return queued

    async def _assign_mailboxes(self) -> None:
        """Each email goes out from its prospect owner's mailbox, else the shared one
        (mailboxes.senders: one query for the pass)."""
        senders = await mailboxes.senders({(organization, owner) for _, organization, owner in self.emails})
        for message, organization, owner in self.emails:
            mailbox = senders.get((organization, owner))
            if mailbox is not None:
                message["mailbox_id"], message["from_address"] = mailbox.id, mailbox.address


class _Context:
    """Rows a pass reads many times (sequences, steps, organizations), read once,
    and the batch's prospects, read in one query."""

    def __init__(self, clock: Clock, now: datetime) -> None:
        self.clock = clock
        self.now = now
        """One time for the whole pass: enrollments that ran the same step get equal schedules."""
        self._sequences: dict[int, Sequence] = {}
        self._steps: dict[int, list[SequenceStep]] = {}
        self._orgs: dict[int, Organization] = {}
        self._prospects: dict[int, SimpleNamespace] = {}
        self._emails: dict[int, list[SimpleNamespace]] = {}
        self.writes = _Writes()

    async def load_prospects(self, ids: list[int]) -> None:
        self._prospects = await store.prospects_to_message(ids)

    def prospect(self, pk: int) -> SimpleNamespace:
        return self._prospects[pk]

    async def load_threads(self, due: list[Enrollment]) -> None:
        """The earlier emails of the enrollments about to run a threaded step, in one
        read for the batch (none when no step of the batch is threaded)."""
        threaded = []
        for enrollment in due:
            if enrollment.current_step_id is not None:
                steps = await self.steps(enrollment.sequence_id)
                step = next((s for s in steps if s.id == enrollment.current_step_id), None)
                if step is not None and step.type is StepType.EMAIL and step.thread_with_previous:
                    threaded.append(enrollment.id)
        if threaded:
            self._emails = await store.emails_of(threaded)

    def followed(self, enrollment_id: int) -> SimpleNamespace | datetime | None:
        """What the enrollment's threaded step answers: its latest email that was
        sent (not one that failed, bounced, was cancelled or is UNCERTAIN, whose
        Message-ID is unknown); or, while an email of it is still on its way, the
        time to look again; None: none was sent, the step starts a thread."""
        emails = self._emails.get(enrollment_id, [])
        waiting = [e for e in emails if e.state in threads.ON_ITS_WAY]
        if waiting:
            later = max((e.next_attempt_at for e in waiting if e.next_attempt_at is not None), default=self.now)
            return max(later, self.now) + THREAD_WAIT
        return next((e for e in reversed(emails) if e.state in threads.SENT and e.external_id), None)

    async def sequence(self, pk: int) -> Sequence:
        if pk not in self._sequences:
            self._sequences[pk] = await Sequence.get(id=pk)
        return self._sequences[pk]

    async def steps(self, sequence_id: int) -> list[SequenceStep]:
        if sequence_id not in self._steps:
            self._steps[sequence_id] = await lifecycle.steps_of(sequence_id)
        return self._steps[sequence_id]

    async def organization(self, pk: int) -> Organization:
        if pk not in self._orgs:
            self._orgs[pk] = await Organization.get(id=pk)
        return self._orgs[pk]


async def _claim(enrollment: Enrollment, **changes: object) -> bool:
    """Compare-and-set on the due time this pass read; False if someone moved it."""
    claimed = await store.advance(enrollment, changes)
    for key, value in changes.items():
        setattr(enrollment, key, value)
    return claimed


async def _advance(enrollment: Enrollment, context: _Context) -> None:
    now = context.now
    actor = system_actor(enrollment.organization_id, context.clock)
    sequence = await context.sequence(enrollment.sequence_id)
    if enrollment.current_step_id is None:
        # No step left: the unresponsive deadline has passed (R4.2).
        if enrollment.stage is Stage.APPROACHING and await _claim(enrollment, due_at=None):
            timed_out = await lifecycle.time_out(
                [enrollment], actor=actor, cause=ChangeCause.SCHEDULER, reason="timeout"
            )
            context.writes.moves += timed_out
        return
    steps = await context.steps(sequence.id)
    step = next((s for s in steps if s.id == enrollment.current_step_id), None)
    if step is None:  # removed since it was scheduled: remove_step already moved pointers on
        return
    prospect = context.prospect(enrollment.prospect_id)
    organization = await context.organization(enrollment.organization_id)
    zone = ZoneInfo(prospect.time_zone or organization.time_zone)
    window = SendWindow.from_json(sequence.send_window) if sequence.send_window else None
    try:
        opening = next_opening(
            enrollment.due_at or now,
            window=window,
            prospect_zone=zone,
            quiet_hours=step.type in (StepType.SMS, StepType.CALL),
        )
    except InvalidInput:
        await _fail(enrollment, Stage.FAILED, "no_send_time", actor, context.writes)
        return
    if opening > now:
        context.writes.schedule(enrollment, due_at=opening)
        return
    following = next((s for s in steps if s.position > step.position), None)
    if step.type in (StepType.CALL, StepType.TASK):
        await _open_task(enrollment, step, prospect, organization, following, actor, context.writes, now)
        return
    parent = context.followed(enrollment.id) if step.type is StepType.EMAIL and step.thread_with_previous else None
    if isinstance(parent, datetime):
        context.writes.schedule(enrollment, due_at=parent)
        return
    await _queue(enrollment, sequence, step, prospect, organization, following, actor, context.writes, now, parent)


def next_due(
    sequence: Sequence, following: SequenceStep | None, *, last_email_at: datetime | None, now: datetime
) -> datetime:
    """When an enrollment whose step just ran (or whose task was just completed) has
    work again: the next step after its delay, or, with none left, the unresponsive
    deadline counted from the last email step (from now if none was email, R4.2)."""
    if following is not None:
        return now + timedelta(seconds=following.delay_seconds)
    return (last_email_at or now) + timedelta(seconds=sequence.unresponsive_after_seconds)


def _after_step(
    enrollment: Enrollment,
    sequence: Sequence,
    following: SequenceStep | None,
    now: datetime,
    emailed: bool,
) -> dict[str, object]:
    """The enrollment's schedule once a step ran."""
    last_email = now if emailed else enrollment.last_email_at
    return {
        "current_step_id": following.id if following else None,
        "due_at": next_due(sequence, following, last_email_at=last_email, now=now),
        "last_step_at": now,
        "last_email_at": last_email,
    }


async def _queue(
    enrollment: Enrollment,
    sequence: Sequence,
    step: SequenceStep,
    prospect: SimpleNamespace,
    organization: Organization,
    following: SequenceStep | None,
    actor: Actor,
    writes: _Writes,
    now: datetime,
    parent: SimpleNamespace | None,
) -> None:
    """Adds the step's message, the enrollment's next schedule and its STEP_RAN
    stage change to the batch's writes (or fails the enrollment at once). With
    ``parent``, the message answers it in its thread: its subject, its mailbox and
    its sender (the step's own subject is not used)."""
    channel = Channel.EMAIL if step.type is StepType.EMAIL else Channel.SMS
    if channel in lifecycle.blocked_channels(prospect):
        await _fail(enrollment, Stage.OPTED_OUT, "channel_blocked", actor, writes)
        return
    address = prospect.email if channel is Channel.EMAIL else prospect.phone
    if not address:
        await _fail(enrollment, Stage.FAILED, "no_address", actor, writes)
        return
    message = {
        "organization_id": enrollment.organization_id,
        "prospect_id": prospect.id,
        "enrollment_id": enrollment.id,
        "step_id": step.id,
        "channel": channel,
        "direction": Direction.OUTBOUND,
        "state": MessageState.QUEUED,
        "to_address": address,
        "created_at": now,
        "next_attempt_at": now,
        "send_key": f"{enrollment.id}:{step.id}",
    }
    try:
        message["subject"], message["body"] = templates.render_message(
            step.subject, step.body, prospect, organization.name
        )
    except templates.RenderError as failure:
        # The step's message is kept, FAILED with the template's problem (and the
        # templates as written), beside the enrollment's stage change naming it.
        if await _fail(enrollment, Stage.FAILED, failure.cause, actor, writes):
            failed = {"state": MessageState.FAILED, "next_attempt_at": None, "error": str(failure)[:1000]}
            writes.messages.append(message | failed | {"subject": step.subject, "body": step.body})
        return
    threaded = threads.reply_columns(parent) if parent is not None else {}
    if parent is not None and threaded:
        message |= threaded | {"mailbox_id": parent.mailbox_id, "from_address": parent.from_address}
    writes.messages.append(message)
    if channel is Channel.EMAIL and not threaded:  # a reply goes from its thread's sender
        writes.emails.append((message, enrollment.organization_id, prospect.owner_id))
    before = enrollment.stage
    to = transition(before, Event.STEP_RAN)
    writes.schedule(enrollment, stage=to, **_after_step(enrollment, sequence, following, now, channel is Channel.EMAIL))
    if to != before:
        move = Move(actor, enrollment.id, enrollment.prospect_id, enrollment.sequence_id, before, to)
        writes.steps_ran.append(move)
        writes.moves.append(move)


async def _open_task(
    enrollment: Enrollment,
    step: SequenceStep,
    prospect: SimpleNamespace,
    organization: Organization,
    following: SequenceStep | None,
    actor: Actor,
    writes: _Writes,
    now: datetime,
) -> None:
    values = templates.variables(prospect, organization.name)
    try:
        note = templates.render(step.body, values)
    except templates.RenderError:
        note = step.body
    task = await Task.create(
        organization_id=enrollment.organization_id,
        prospect_id=prospect.id,
        assignee_id=prospect.owner_id,
        kind=TaskKind.CALL if step.type is StepType.CALL else TaskKind.TODO,
        due_at=now,
        note=note,
        created_at=now,
        enrollment_id=enrollment.id,
        step_id=step.id,
    )
    # The next step's delay starts when the task is completed (R4.3).
    claimed = await _claim(
        enrollment,
        current_step_id=following.id if following else None,
        due_at=None,
        last_step_at=now,
        waiting_task_id=task.id,
    )
    if not claimed:
        await task.delete()
        return None
    await log.record([task_event(EventType.TASK_CREATED, task, now)])
    if enrollment.stage is Stage.STARTED:  # APPROACHING already once a step has run
        writes.moves += await lifecycle.step_ran(
            [enrollment], actor=actor, cause=ChangeCause.SCHEDULER, reason="step_ran"
        )
    return None


async def _fail(enrollment: Enrollment, outcome: Stage, reason: str, actor: Actor, writes: _Writes) -> bool:
    """Finishes the enrollment at ``outcome`` (R4.2); False if another process moved it first."""
    if not await _claim(enrollment, due_at=None):
        return False
    writes.moves += await lifecycle.fail([enrollment], outcome, actor=actor, cause=ChangeCause.SCHEDULER, reason=reason)
    return True


async def task_completed(task: Task, clock: Clock) -> None:
    """Completing a step's task lets its enrollment go on: the next step's delay starts now."""
    if task.enrollment_id is None:
        return
    enrollment = await Enrollment.filter(id=task.enrollment_id, waiting_task_id=task.id).select_for_update().first()
    if enrollment is None or enrollment.finished_at is not None:
        return
    now = clock.now()
    sequence = await Sequence.get(id=enrollment.sequence_id)
    following = await SequenceStep.get_or_none(id=enrollment.current_step_id) if enrollment.current_step_id else None
    due = next_due(sequence, following, last_email_at=enrollment.last_email_at, now=now)
    if enrollment.stage is Stage.PAUSED:
        enrollment.paused_due_at = due
    else:
        enrollment.due_at = due
    enrollment.waiting_task_id = None
    await enrollment.save(update_fields=["due_at", "paused_due_at", "waiting_task_id"])


async def queued_messages(clock: Clock, *, limit: int = BATCH) -> list[int]:
    """QUEUED messages due for RECOVER_AFTER already: what a lost job (or a retry
    after its backoff) would have sent. Younger ones still have their job."""
    overdue = clock.now() - RECOVER_AFTER
    query = Message.filter(state=MessageState.QUEUED, next_attempt_at__lte=overdue).order_by("id").limit(limit)
    return await query.values_list("id", flat=True)  # type: ignore[return-value]


async def expire_leases(clock: Clock) -> int:
    """SENDING past its lease: the worker died mid-call. UNCERTAIN, never resent (R5.2)."""
    return await Message.filter(state=MessageState.SENDING, lease_until__lt=clock.now()).update(
        state=MessageState.UNCERTAIN, error="the worker stopped while sending; not resent"
    )
