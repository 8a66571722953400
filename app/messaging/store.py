"""What sending reads and writes, a chunk of messages at a time in one statement
each through ``app.bulk``, so that the sender itself reads as the rules of
R5.2-R5.5."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app import bulk
from app.messaging import limits
from app.messaging.models import Message, MessageState
from app.prospects import suppressions
from app.prospects.models import Channel, ConversationState, Prospect
from app.sequences.models import Enrollment

RECORDED_FIELDS = [
    "state",
    "lease_until",
    "sent_at",
    "next_attempt_at",
    "external_id",
    "error",
    "bounce_type",
    "slot_at",
]
"""What a send attempt changes on its message."""
GATE_FIELDS = ["id", "do_not_contact", "opted_out_channels", "time_zone", "email", "phone"]
"""What the send gate reads of a prospect (its addresses: for the suppression list)."""


async def claim(message_ids: Sequence[int], *, now: datetime, lease_until: datetime, token: int) -> list[Message]:
    """Those of the messages that are QUEUED and due, now SENDING under ``token``
    with one more attempt, no longer deferred, as they are now (the claim and the
    read in one statement)."""
    return await bulk.compare_and_set_rows(
        Message,
        message_ids,
        expect={"state": MessageState.QUEUED},
        at_most={"next_attempt_at": now},
        values={
            "state": MessageState.SENDING,
            "lease_until": lease_until,
            "claim_token": token,
            "deferred_until": None,
        },
        increment=("attempts",),
    )


async def unclaim(message_ids: Sequence[int], *, token: int, claimed_at: datetime | None) -> int:
    """The messages claimed under ``token`` QUEUED again, their attempt uncounted:
    those still SENDING, and those whose lease ended meanwhile (UNCERTAIN, with an
    error saying they were not resent, which no longer holds); how many. The
    mailbox slots they hold are given back (one transaction): those their
    ``slot_at`` says (sendMessage's), else those the claim took at ``claimed_at``
    (its slots commit with it, ``slot_at`` only with the outcome: limits.take)."""
    back = {"state": MessageState.QUEUED, "lease_until": None, "slot_at": None}
    ours = Message.filter(
        id__in=message_ids,
        claim_token=token,
        state__in=(MessageState.SENDING, MessageState.UNCERTAIN),
        mailbox_id__isnull=False,
    )
    async with in_transaction() as connection:
        holding = await ours.using_db(connection).select_for_update()
        for message in holding:
            message.slot_at = message.slot_at or claimed_at
        await limits.release(holding, connection)
        return await _unclaim(message_ids, token, back)


async def _unclaim(message_ids: Sequence[int], token: int, back: Mapping[str, object]) -> int:
    returned = 0
    for state, values in ((MessageState.SENDING, back), (MessageState.UNCERTAIN, {**back, "error": None})):
        ours = {"claim_token": token, "state": state}
        back_ids = await bulk.compare_and_set(Message, message_ids, expect=ours, values=values, decrement=("attempts",))
        returned += len(back_ids)
    return returned


async def open_enrollments(ids: Collection[int]) -> set[int]:
    """Those of the enrollments not finished."""
    return {row["id"] for row in await bulk.select_in(Enrollment, ["id"], "id", ids, null=["finished_at"])}


async def prospects_to_gate(ids: Collection[int]) -> dict[int, SimpleNamespace]:
    """The prospects' GATE_FIELDS (their consent and time zone) by id, as rows with
    attribute access (a model costs twice as much)."""
    rows = await bulk.select_in(Prospect, GATE_FIELDS, "id", ids)
    return {row["id"]: SimpleNamespace(**row) for row in rows}


async def suppressed(keys: Iterable[tuple[int, Channel, str | None]]) -> set[tuple[int, Channel, str]]:
    """Those of the (organization, channel, normalized address) keys a suppression list
    holds, in one read of the list's unique index whatever the chunk's organizations."""
    return await suppressions.suppressed_in(keys)


async def still_leased(message_ids: Sequence[int], *, token: int) -> set[int]:
    """Those of the messages still leased under ``token`` (SENDING, or UNCERTAIN
    since the lease ended), locked: their outcomes are not recorded yet."""
    ours = Message.filter(id__in=message_ids, claim_token=token, lease_until__isnull=False)
    # Rows, not .values(): Tortoise drops FOR UPDATE from a values query.
    return {row.id for row in await ours.select_for_update().only("id")}


async def record_results(messages: Sequence[Message], *, connection: BaseDBAsyncClient) -> None:
    """Writes each message's RECORDED_FIELDS, each with its own values, in one statement."""
    await bulk.update_each(messages, RECORDED_FIELDS, connection)


async def awaiting_reply(prospect_ids: Collection[int], *, now: datetime) -> None:
    """The prospects were just written to: their conversation awaits a reply."""
    await bulk.compare_and_set(
        Prospect,
        sorted(prospect_ids),
        expect={},
        values={"conversation_state": ConversationState.AWAITING_REPLY, "last_message_at": now},
    )
