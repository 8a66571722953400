"""The enrollment state machine against SPEC R4.2's table, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from app.errors import InvalidTransition
from app.sequences.state import FINISHED, Event, Facts, Stage, transition

S = Stage
UNFINISHED = [S.NOT_STARTED, S.STARTED, S.APPROACHING, S.PAUSED]

# SPEC R4.2, row by row: (from, event, facts) → to.
TABLE: list[tuple[Stage | None, Event, Facts, Stage]] = [
    (None, Event.ENROLL, Facts(active=False), S.NOT_STARTED),
    (None, Event.ENROLL, Facts(active=True), S.STARTED),
    (S.NOT_STARTED, Event.ACTIVATE, Facts(), S.STARTED),
    *[(s, Event.STEP_RAN, Facts(), S.APPROACHING) for s in (S.STARTED, S.APPROACHING)],
    *[(s, Event.PAUSE, Facts(), S.PAUSED) for s in (S.STARTED, S.APPROACHING)],
    *[(S.PAUSED, Event.RESUME, Facts(remembered=s), s) for s in (S.STARTED, S.APPROACHING)],
    *[
        (s, Event.JUMP, Facts(has_run_a_step=ran), S.APPROACHING if ran else S.STARTED)
        for s in (S.STARTED, S.APPROACHING, S.PAUSED)
        for ran in (False, True)
    ],
    *[(s, Event.REPLY, Facts(), S.REPLIED) for s in (S.STARTED, S.APPROACHING, S.PAUSED)],
    *[(s, Event.HARD_BOUNCE, Facts(), S.BOUNCED) for s in UNFINISHED],
    *[(s, Event.UNSUBSCRIBE, Facts(), S.UNSUBSCRIBED) for s in UNFINISHED],
    *[(s, Event.OPT_OUT, Facts(), S.OPTED_OUT) for s in UNFINISHED],
    (S.APPROACHING, Event.TIMEOUT, Facts(), S.UNRESPONSIVE),
    *[
        (s, Event.FINISH, Facts(outcome=o), o)
        for s in [*UNFINISHED, S.REPLIED]
        for o in (S.REPLIED, S.SUCCESS, S.NOT_INTERESTED, S.UNRESPONSIVE, S.BOUNCED, S.OPTED_OUT, S.UNSUBSCRIBED)
        if o != s
    ],
    *[(s, Event.REMOVE, Facts(), S.REMOVED) for s in UNFINISHED],
    *[
        (s, Event.STEP_FAILED, Facts(outcome=o), o)
        for s in (S.STARTED, S.APPROACHING)
        for o in (S.FAILED, S.BOUNCED, S.OPTED_OUT)
    ],
]


@pytest.mark.parametrize(("start", "event", "facts", "end"), TABLE)
def test_every_row_of_the_table(start: Stage | None, event: Event, facts: Facts, end: Stage) -> None:
    assert transition(start, event, facts) == end


ALLOWED = {(start, event) for start, event, _, _ in TABLE}


@pytest.mark.parametrize(
    ("start", "event"),
    [(start, event) for start, event in itertools.product([None, *Stage], Event) if (start, event) not in ALLOWED],
)
def test_everything_else_is_an_invalid_transition(start: Stage | None, event: Event) -> None:
    facts = Facts(remembered=S.STARTED, outcome=S.SUCCESS if event is Event.FINISH else S.FAILED)
    with pytest.raises(InvalidTransition):
        transition(start, event, facts)


def test_finished_stages_accept_nothing_but_finishing_a_reply() -> None:
    for stage, event in itertools.product(FINISHED, Event):
        if (stage, event) == (S.REPLIED, Event.FINISH):
            continue
        with pytest.raises(InvalidTransition):
            transition(stage, event, Facts(outcome=S.SUCCESS, remembered=S.STARTED))


@pytest.mark.parametrize(
    ("event", "facts"),
    [
        (Event.FINISH, Facts(outcome=S.REMOVED)),
        (Event.FINISH, Facts(outcome=S.APPROACHING)),
        (Event.FINISH, Facts(outcome=None)),
        (Event.STEP_FAILED, Facts(outcome=S.SUCCESS)),
        (Event.RESUME, Facts(remembered=None)),
    ],
)
def test_facts_that_make_no_sense_are_refused(event: Event, facts: Facts) -> None:
    start = S.PAUSED if event is Event.RESUME else S.STARTED
    with pytest.raises(InvalidTransition):
        transition(start, event, facts)
