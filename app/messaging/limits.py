"""A mailbox's sending limits, enforced where its messages are claimed (contract part 60).

- A day is midnight to midnight in the mailbox's zone (its own, else its
  organization's). It sends at most ``limit_on(day)`` a day: ``daily_limit``, or
  with a warm-up ``ramp_up_start`` on its first sending day plus
  ``ramp_up_per_day`` (none: 0) a calendar day after it, up to ``daily_limit``.
  The first sending day is the day it first asked for a slot.
- At most ``per_domain_hourly_limit`` an hour to one recipient domain (the
  to-address's, lower-cased): clock hours in the mailbox's zone, 10:00 to 11:00.
- A message over a limit stays QUEUED, ``deferred_until`` (and ``next_attempt_at``,
  so it is simply not due) the next day's start or the next hour, its attempt
  uncounted: never a failure.

Counting: a ``SendCount`` row per (mailbox, day) and (mailbox, domain, hour). The
slots of a claimed chunk are asked for in one upsert (``_ask``), in the claim's
transaction, whose SET reads the row as it was before the statement; on PostgreSQL concurrent askers wait on the
row's lock and then see each other's slots, on SQLite one writer runs at a time,
so ``sent`` never passes its cap. A message holds its slots from its claim
(``Message.slot_at``, when it took them, written with its outcome) and gives them back (``release``) when
it ends neither SENT nor UNCERTAIN (cancelled by the gate, failed, QUEUED again
for a retry): the limits count what went out, or may have (UNCERTAIN, SENDING).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from app import bulk
from app.errors import Conflict
from app.messaging.models import Mailbox, Message, MessageState, SendCount

DAY = ""
"""The ``domain`` of a day's counter."""
RULE_FIELDS = (
    "id",
    "address",
    "daily_limit",
    "ramp_up_start",
    "ramp_up_per_day",
    "per_domain_hourly_limit",
    "time_zone",
    "first_sending_day",
    "organization__time_zone",
)


class MailboxLimitReached(Conflict):
    """A message cannot go now: its mailbox has used today's slots, or this hour's
    to the recipient's domain. ``until``: when it could."""

    def __init__(self, message: str, *, until: datetime) -> None:
        super().__init__(message)
        self.until = until


@dataclass(frozen=True)
class Rules:
    """What a mailbox's limits need of it."""

    id: int
    address: str
    zone: ZoneInfo
    daily_limit: int
    ramp_up_start: int | None
    ramp_up_per_day: int | None
    per_domain_hourly_limit: int | None
    first_sending_day: date | None

    def limit_on(self, day: date) -> int:
        """The day's limit with the warm-up applied (a mailbox that never sent is on day 0)."""
        if self.ramp_up_start is None:
            return self.daily_limit
        days = max(0, (day - (self.first_sending_day or day)).days)
        return max(0, min(self.daily_limit, self.ramp_up_start + (self.ramp_up_per_day or 0) * days))

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def day_start(self, moment: datetime) -> datetime:
        """The midnight (in its zone) that starts the day of ``moment``, in UTC."""
        return _midnight(self.day_of(moment), self.zone)

    def next_day(self, moment: datetime) -> datetime:
        return _midnight(self.day_of(moment) + timedelta(days=1), self.zone)

    def hour_start(self, moment: datetime) -> datetime:
        """The start of the clock hour (in its zone) of ``moment``, in UTC."""
        local = moment.astimezone(self.zone)
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)

    def next_hour(self, moment: datetime) -> datetime:
        return self.hour_start(moment) + timedelta(hours=1)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # A midnight a DST change skips is the change itself (fold 0 takes the offset before it).
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def domain_of(address: str | None) -> str:
    """The recipient domain a per-domain cap counts, lower-cased."""
    return (address or "").rsplit("@", 1)[-1].strip().lower()


async def rules_of(mailbox_ids: Iterable[int], connection: BaseDBAsyncClient | None = None) -> dict[int, Rules]:
    """The mailboxes' rules, by id, in one read."""
    ids = set(mailbox_ids)
    if not ids:
        return {}
    query = Mailbox.filter(id__in=ids)
    if connection is not None:
        query = query.using_db(connection)
    rows = await query.values(*RULE_FIELDS)
    return {row["id"]: rules_from(SimpleNamespace(**row), row["organization__time_zone"]) for row in rows}


def rules_from(mailbox: Mailbox | SimpleNamespace, organization_zone: str) -> Rules:
    """A mailbox's rules, from its row and its organization's zone (the default of its own)."""
    return Rules(
        id=mailbox.id,
        address=mailbox.address,
        zone=ZoneInfo(mailbox.time_zone or organization_zone),
        daily_limit=mailbox.daily_limit,
        ramp_up_start=mailbox.ramp_up_start,
        ramp_up_per_day=mailbox.ramp_up_per_day,
        per_domain_hourly_limit=mailbox.per_domain_hourly_limit,
        first_sending_day=mailbox.first_sending_day,
    )


Key = tuple[int, str]
"""A counter of one ask: (mailbox, DAY or a domain); its period is the ask's."""


@dataclass
class _Ask:
    rules: Rules
    starts_at: datetime
    cap: int
    ids: list[int]
    """The messages asking, oldest first."""


async def take(
    messages: Sequence[Message], *, now: datetime, rules: Mapping[int, Rules], connection: BaseDBAsyncClient
) -> list[Message]:
    """Slots for the just-claimed ``messages`` that go out from a mailbox and hold
    none yet, oldest (lowest id) first, under ``rules`` (by mailbox id, as the
    sender read the chunk's mailboxes: a mailbox deleted meanwhile limits nothing);
    those refused are QUEUED again, deferred (their attempt uncounted). Returns the
    refused, as they are now. In ``connection``, the claim's transaction: the
    slots commit with the claim, or nothing. Those that got them have ``slot_at``
    set on the objects, written with their outcome (store.record_results), one
    write of each row fewer; until then the claim's time stands for it
    (store.unclaim)."""
    wanting = sorted((m for m in messages if m.mailbox_id in rules and m.slot_at is None), key=lambda m: m.id)
    if not wanting:
        return []
    asks: dict[Key, _Ask] = {}
    for (mailbox_id, domain), ids in _by_counter(wanting, rules).items():
        for key, ask in _asks_of(domain, rules[mailbox_id], now):
            asks.setdefault(key, ask).ids.extend(ids)
    for ask in asks.values():
        ask.ids.sort()  # oldest first within each counter, whatever the domains' order
    got = await _ask(asks, connection)
    refused = _refused(asks, got, now)
    returned = _unused(asks, got, refused)
    if returned:
        await _give_back(returned, connection)
    await _note_first_day(rules.values(), now, connection)
    for until, ids in _by_time(refused).items():
        values = {"state": MessageState.QUEUED, "deferred_until": until, "next_attempt_at": until, "lease_until": None}
        # In the claim's transaction: bulk runs on the context's connection.
        await bulk.compare_and_set(Message, ids, expect={}, values=values, decrement=("attempts",))
    for message in wanting:
        if message.id in refused:
            message.state = MessageState.QUEUED
            message.deferred_until = message.next_attempt_at = refused[message.id]
            message.lease_until = None
            message.attempts -= 1
        else:
            message.slot_at = now
    return [m for m in wanting if m.id in refused]


def _by_counter(messages: Iterable[Message], rules: Mapping[int, Rules]) -> dict[tuple[int, str], list[int]]:
    """The messages' ids by (mailbox, recipient domain), the domain only under a
    per-domain cap: the rules' arithmetic is done once per counter, not per message."""
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for message in messages:
        mailbox_id = message.mailbox_id or 0
        capped = rules[mailbox_id].per_domain_hourly_limit is not None
        groups[(mailbox_id, domain_of(message.to_address) if capped else DAY)].append(message.id)
    return groups


def _asks_of(domain: str, rules: Rules, now: datetime) -> list[tuple[Key, _Ask]]:
    """The counters a message to ``domain`` takes a slot of: the day's, and under a
    per-domain cap the hour's to that domain."""
    day = (rules.id, DAY), _Ask(rules, rules.day_start(now), rules.limit_on(rules.day_of(now)), [])
    if rules.per_domain_hourly_limit is None:
        return [day]
    return [day, ((rules.id, domain), _Ask(rules, rules.hour_start(now), rules.per_domain_hourly_limit, []))]


def _refused(asks: dict[Key, _Ask], got: Mapping[Key, int], now: datetime) -> dict[int, datetime]:
    """Which messages go without a slot, and until when: the first ``got`` of each
    domain's in id order pass its hour, then the first of those pass the day."""
    refused: dict[int, datetime] = {}
    for key, ask in asks.items():
        if key[1] != DAY:
            for message_id in ask.ids[got[key] :]:
                refused[message_id] = ask.rules.next_hour(now)
    for key, ask in asks.items():
        if key[1] == DAY:
            passed = [i for i in ask.ids if i not in refused]
            for message_id in passed[got[key] :]:
                refused[message_id] = ask.rules.next_day(now)
            if got[key] < len(ask.ids):  # what its hour refused would meet a full day next hour
                for message_id in ask.ids:
                    if message_id in refused:
                        refused[message_id] = ask.rules.next_day(now)
    return refused


def _unused(
    asks: dict[Key, _Ask], got: Mapping[Key, int], refused: Mapping[int, datetime]
) -> dict[tuple[int, str, datetime], int]:
    """The slots taken for messages that do not go: given back at once."""
    unused: dict[tuple[int, str, datetime], int] = {}
    for key, ask in asks.items():
        going = sum(1 for i in ask.ids if i not in refused)
        if got[key] > going:
            unused[(key[0], key[1], ask.starts_at)] = got[key] - going
    return unused


def _by_time(refused: Mapping[int, datetime]) -> dict[datetime, list[int]]:
    groups: dict[datetime, list[int]] = defaultdict(list)
    for message_id, until in refused.items():
        groups[until].append(message_id)
    return groups


async def _ask(asks: Mapping[Key, _Ask], connection: BaseDBAsyncClient) -> dict[Key, int]:
    """Takes up to ``len(messages)`` slots of each counter, as many as its cap leaves,
    in one statement (rows in key order, so concurrent askers lock them alike); how
    many each got. The SET's right-hand sides read the row as it was."""
    postgres = connection.capabilities.dialect == "postgres"
    least, greatest = ("LEAST", "GREATEST") if postgres else ("MIN", "MAX")
    starts_at = SendCount._meta.fields_map["starts_at"]
    params: list[object] = []
    rows: list[str] = []
    for key in sorted(asks):
        ask = asks[key]
        first = min(len(ask.ids), max(0, ask.cap))
        values = (key[0], key[1], starts_at.to_db_value(ask.starts_at, SendCount), ask.cap, first, first)
        marks = []
        for value in values:
            params.append(value)
            marks.append(f"${len(params)}" if postgres else "?")
        if postgres:
            marks[2] += "::TIMESTAMPTZ"
        rows.append(f"({', '.join(marks)})")
    grant = f"{greatest}(0, {least}(excluded.taken, excluded.cap - send_count.sent))"
    sql = (
        'INSERT INTO "send_count" ("mailbox_id", "domain", "starts_at", "cap", "sent", "taken") '
        f"VALUES {', '.join(rows)} "
        'ON CONFLICT ("mailbox_id", "domain", "starts_at") DO UPDATE SET '
        f'"taken" = {grant}, "sent" = send_count.sent + {grant}, "cap" = excluded.cap '
        'RETURNING "mailbox_id", "domain", "taken"'
    )
    return {
        (row["mailbox_id"], row["domain"]): row["taken"] for row in await connection.execute_query_dict(sql, params)
    }


async def _give_back(slots: Mapping[tuple[int, str, datetime], int], connection: BaseDBAsyncClient) -> None:
    """Takes ``slots`` (counter → how many) off their counters, in key order."""
    for (mailbox_id, domain, starts_at), count in sorted(slots.items()):
        query = SendCount.filter(mailbox_id=mailbox_id, domain=domain, starts_at=starts_at).using_db(connection)
        await query.update(sent=F("sent") - count)


async def _note_first_day(rules: Iterable[Rules], now: datetime, connection: BaseDBAsyncClient) -> None:
    for mailbox in rules:
        if mailbox.first_sending_day is None:
            await (
                Mailbox.filter(id=mailbox.id, first_sending_day=None)
                .using_db(connection)
                .update(first_sending_day=mailbox.day_of(now))
            )


async def release(messages: Iterable[Message], connection: BaseDBAsyncClient) -> None:
    """Gives back the slots the messages hold (those with a mailbox and a
    ``slot_at``), and clears their ``slot_at`` (on the objects: the caller writes them)."""
    holding = [m for m in messages if m.mailbox_id is not None and m.slot_at is not None]
    if not holding:
        return
    rules = await rules_of({m.mailbox_id for m in holding if m.mailbox_id is not None}, connection)
    slots: dict[tuple[int, str, datetime], int] = defaultdict(int)
    for message in holding:
        mailbox = rules.get(message.mailbox_id or 0)
        at = message.slot_at
        message.slot_at = None
        if mailbox is None or at is None:
            continue
        slots[(mailbox.id, DAY, mailbox.day_start(at))] += 1
        if mailbox.per_domain_hourly_limit is not None:
            slots[(mailbox.id, domain_of(message.to_address), mailbox.hour_start(at))] += 1
    await _give_back(slots, connection)


async def take_now(
    *, mailbox_id: int, to_address: str | None, now: datetime, connection: BaseDBAsyncClient
) -> datetime:
    """The slots of one message a rep sends now (sendMessage): the mailbox's day and,
    under a per-domain cap, this hour to the recipient's domain; or
    MailboxLimitReached (a rep is waiting: refused, never deferred), whose caller's
    transaction must roll back what this took. ``connection`` is that transaction's:
    the slots are taken in it, and the time returned is stored in it as the new
    message's ``slot_at`` (so its claim asks for no slot again, and a failure gives
    it back)."""
    rules = (await rules_of([mailbox_id], connection))[mailbox_id]
    asks = dict(_asks_of(domain_of(to_address), rules, now))
    for ask in asks.values():
        ask.ids.append(0)
    got = await _ask(asks, connection)
    if _refused(asks, got, now):
        raise _reached(rules, asks, got, to_address, now)
    await _note_first_day([rules], now, connection)
    return now


def _reached(
    rules: Rules, asks: dict[Key, _Ask], got: Mapping[Key, int], to_address: str | None, now: datetime
) -> MailboxLimitReached:
    day = asks[(rules.id, DAY)]
    if not got[(rules.id, DAY)]:
        until = rules.next_day(now)
        return MailboxLimitReached(
            f"The mailbox {rules.address} has sent its {day.cap} emails today; "
            f"it can send again from {_local(until, rules.zone)}.",
            until=until,
        )
    until = rules.next_hour(now)
    return MailboxLimitReached(
        f"The mailbox {rules.address} has sent its {rules.per_domain_hourly_limit} emails this hour "
        f"to {domain_of(to_address)}; it can send there again from {_local(until, rules.zone)}.",
        until=until,
    )


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"


@dataclass(frozen=True)
class Usage:
    """A mailbox's day so far: today's limit (warm-up applied) and the slots taken."""

    limit_today: int
    sent_today: int

    @property
    def remaining_today(self) -> int:
        return max(0, self.limit_today - self.sent_today)


async def usage(mailbox_ids: Iterable[int], *, now: datetime) -> dict[int, Usage]:
    """Each mailbox's Usage today (in its zone), the counts its limits are enforced
    with, in two reads whatever the number of mailboxes."""
    rules = await rules_of(mailbox_ids)
    starts = {mailbox.id: mailbox.day_start(now) for mailbox in rules.values()}
    rows = await SendCount.filter(mailbox_id__in=list(rules), domain=DAY, starts_at__in=set(starts.values())).values(
        "mailbox_id", "starts_at", "sent"
    )
    sent = {row["mailbox_id"]: row["sent"] for row in rows if row["starts_at"] == starts[row["mailbox_id"]]}
    return {pk: Usage(mailbox.limit_on(mailbox.day_of(now)), sent.get(pk, 0)) for pk, mailbox in rules.items()}
