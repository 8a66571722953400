"""The enrollment state machine (SPEC R4.2): a pure table, no I/O.

``transition(stage, event)`` answers the stage an event leads to, or raises
InvalidTransition. Services call it before every change and record the
answer with a StageChange; nothing else decides a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.errors import InvalidTransition


class Stage(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    STARTED = "STARTED"
    APPROACHING = "APPROACHING"
    PAUSED = "PAUSED"
    REPLIED = "REPLIED"
    SUCCESS = "SUCCESS"
    NOT_INTERESTED = "NOT_INTERESTED"
    UNRESPONSIVE = "UNRESPONSIVE"
    BOUNCED = "BOUNCED"
    OPTED_OUT = "OPTED_OUT"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    REMOVED = "REMOVED"
    FAILED = "FAILED"


class Event(StrEnum):
    ENROLL = "enroll"
    ACTIVATE = "activate"
    STEP_RAN = "step_ran"
    PAUSE = "pause"
    RESUME = "resume"
    JUMP = "jump"
    REPLY = "reply"
    HARD_BOUNCE = "hard_bounce"
    UNSUBSCRIBE = "unsubscribe"
    OPT_OUT = "opt_out"
    TIMEOUT = "timeout"
    FINISH = "finish"
    REMOVE = "remove"
    STEP_FAILED = "step_failed"


UNFINISHED = frozenset({Stage.NOT_STARTED, Stage.STARTED, Stage.APPROACHING, Stage.PAUSED})
FINISHED = frozenset(Stage) - UNFINISHED
RUNNING = frozenset({Stage.STARTED, Stage.APPROACHING})
OUTCOMES = frozenset(
    {
        Stage.REPLIED,
        Stage.SUCCESS,
        Stage.NOT_INTERESTED,
        Stage.UNRESPONSIVE,
        Stage.BOUNCED,
        Stage.OPTED_OUT,
        Stage.UNSUBSCRIBED,
    }
)
"""What finishEnrollments may set."""
STATUS_OUTCOMES = OUTCOMES | {Stage.PAUSED, Stage.STARTED}
"""What a status's enrollment outcome may be: an outcome its enrollments finish
with, PAUSED (they pause) or STARTED (they start or resume)."""
STEP_FAILURES = frozenset({Stage.FAILED, Stage.BOUNCED, Stage.OPTED_OUT})
STARTS = frozenset({Event.ACTIVATE, Event.RESUME, Event.JUMP})
"""The events that set an unfinished enrollment running: refused in an inactive
sequence, whose enrollments wait NOT_STARTED or PAUSED (R14)."""
SEQUENCE_INACTIVE = "sequence_inactive"
"""The reason of the pauses a sequence's deactivation makes, which its reactivation resumes."""
OUT_OF_OFFICE = "out_of_office"
"""The reason of the pauses an out-of-office reply makes: their resumption's cause is OUT_OF_OFFICE."""

# event → the stages it may start from. The stage it leads to is computed in
# `transition`, where it depends on the facts given (active, outcome, ...).
ALLOWED_FROM: dict[Event, frozenset[Stage | None]] = {
    Event.ENROLL: frozenset({None}),
    Event.ACTIVATE: frozenset({Stage.NOT_STARTED}),
    Event.STEP_RAN: RUNNING,
    Event.PAUSE: RUNNING,
    Event.RESUME: frozenset({Stage.PAUSED}),
    Event.JUMP: RUNNING | {Stage.PAUSED},
    Event.REPLY: RUNNING | {Stage.PAUSED},
    Event.HARD_BOUNCE: UNFINISHED,
    Event.UNSUBSCRIBE: UNFINISHED,
    Event.OPT_OUT: UNFINISHED,
    Event.TIMEOUT: frozenset({Stage.APPROACHING}),
    Event.FINISH: UNFINISHED | {Stage.REPLIED},
    Event.REMOVE: UNFINISHED,
    Event.STEP_FAILED: RUNNING,
}


@dataclass(frozen=True)
class Facts:
    """What an event's outcome depends on."""

    active: bool = True
    """ENROLL: the sequence is active and the enrollment is to start at once;
    STARTS: the sequence is active (else they are refused)."""
    remembered: Stage | None = None
    """RESUME: the stage PAUSE remembered."""
    has_run_a_step: bool = False
    """JUMP: a step has run before (then APPROACHING, else STARTED)."""
    outcome: Stage | None = None
    """FINISH: the outcome; STEP_FAILED: FAILED, BOUNCED or OPTED_OUT."""


def transition(stage: Stage | None, event: Event, facts: Facts = Facts()) -> Stage:
    """The stage ``event`` leads to from ``stage`` (None: not enrolled yet)."""
    if stage not in ALLOWED_FROM[event]:
        where = stage.value if stage else "not enrolled"
        raise InvalidTransition(f"Cannot {event.value.replace('_', ' ')} an enrollment that is {where}.")
    if event in STARTS and not facts.active:
        raise InvalidTransition(
            f"Cannot {event.value} an enrollment of an inactive sequence: activate the sequence first."
        )
    if event is Event.ENROLL:
        return Stage.STARTED if facts.active else Stage.NOT_STARTED
    if event is Event.ACTIVATE:
        return Stage.STARTED
    if event is Event.STEP_RAN:
        return Stage.APPROACHING
    if event is Event.PAUSE:
        return Stage.PAUSED
    if event is Event.RESUME:
        if facts.remembered not in RUNNING:
            raise InvalidTransition("A paused enrollment resumes to the stage it was paused in.")
        assert facts.remembered is not None
        return facts.remembered
    if event is Event.JUMP:
        return Stage.APPROACHING if facts.has_run_a_step else Stage.STARTED
    if event is Event.REPLY:
        return Stage.REPLIED
    if event is Event.HARD_BOUNCE:
        return Stage.BOUNCED
    if event is Event.UNSUBSCRIBE:
        return Stage.UNSUBSCRIBED
    if event is Event.OPT_OUT:
        return Stage.OPTED_OUT
    if event is Event.TIMEOUT:
        return Stage.UNRESPONSIVE
    if event is Event.FINISH:
        if facts.outcome not in OUTCOMES or facts.outcome == stage:
            raise InvalidTransition(f"{facts.outcome} is not an outcome this enrollment can finish with.")
        assert facts.outcome is not None
        return facts.outcome
    if event is Event.REMOVE:
        return Stage.REMOVED
    # STEP_FAILED
    if facts.outcome not in STEP_FAILURES:
        raise InvalidTransition("A step that cannot be sent ends the enrollment FAILED, BOUNCED or OPTED_OUT.")
    assert facts.outcome is not None
    return facts.outcome
