"""Sending when the database goes away mid-chunk (a PostgreSQL restart), simulated
at each of the chunk's steps: a statement that never ran, or one that committed
and whose reply was lost, with the lease ending meanwhile or not. The message goes
out once, is SENT once, and no attempt is counted for what never went out.
tests/test_postgres_restart.py restarts a real server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app import bulk, db
from app.clock import FrozenClock
from app.events.models import Event, EventType
from app.messaging import sending
from app.messaging.models import Message
from app.sequences import scheduler
from tests.conftest import Org
from tests.test_sending import _queued, settings_for

LOST = [
    # (the step whose reply is lost, it committed first, the lease ends meanwhile)
    pytest.param("claim", False, False, id="claim-never-ran"),
    pytest.param("claim", True, False, id="claim-committed-reply-lost"),
    pytest.param("claim", True, True, id="claim-committed-reply-lost-past-the-lease"),
    pytest.param("gate", False, False, id="gate-read-lost"),
    pytest.param("gate", False, True, id="gate-read-lost-past-the-lease"),
    pytest.param("record", False, False, id="recording-never-ran"),
    pytest.param("record", False, True, id="recording-never-ran-past-the-lease"),
    pytest.param("record", True, False, id="recording-committed-reply-lost"),
]
STEPS: dict[str, tuple[object, str]] = {
    "claim": (bulk, "compare_and_set_rows"),
    "gate": (sending._Gate, "read"),
    "record": (sending, "_write_outcomes"),
}


def lost_once(
    original: Callable[..., Awaitable[Any]], *, commit: bool, meanwhile: Callable[[], Awaitable[object]]
) -> Callable[..., Awaitable[Any]]:
    """``original``, whose first call (run or not: ``commit``) ends with the
    connection lost, after ``meanwhile``; later calls are its own."""
    calls = 0

    async def once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            return await original(*args, **kwargs)
        if commit:
            await original(*args, **kwargs)
        await meanwhile()
        raise ConnectionResetError(104, "Connection reset by peer")

    return once


@pytest.mark.parametrize(("step", "commit", "past_lease"), LOST)
async def test_a_reply_lost_with_the_database_neither_loses_nor_repeats_the_message(
    org: Org,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    commit: bool,
    past_lease: bool,
) -> None:
    _, message_id = await _queued(org, clock)
    settings = settings_for(tmp_path)
    later = FrozenClock(clock.now() + timedelta(seconds=settings.send_lease_seconds + 1))

    async def meanwhile() -> None:
        if past_lease:  # the scheduler's expiry, run once the database was back
            assert await scheduler.expire_leases(later) == 1

    owner, name = STEPS[step]
    monkeypatch.setattr(owner, name, lost_once(getattr(owner, name), commit=commit, meanwhile=meanwhile))
    monkeypatch.setattr(db, "RETRY_PAUSES", (0.0,))
    state = await sending.send(message_id, transports=sending.transports_for(settings), settings=settings, clock=clock)

    message = await Message.get(id=message_id)
    assert (state, message.state, message.attempts) == ("SENT", "SENT", 1)  # no attempt counted for a restart
    assert message.error is None and message.lease_until is None
    assert len(list((settings.data_dir / "outbox").iterdir())) == 1
    assert await Event.filter(type=EventType.MESSAGE_SENT, message_id=message_id).count() == 1
