"""Reading a suppression list from a CSV file (``leadline suppress import``): a list
from another tool, streamed in batches of ``suppressions.MAX_ADD`` through
``suppressions.add``, the function behind ``addSuppressions``.

The delimiter is sniffed among comma, semicolon and tab. A header names the
columns (case, spaces and punctuation ignored): ``email``, ``phone`` or
``address`` (at least one), and optionally ``channel`` and ``reason``. A file
whose first line is an address has no header: its first column is the address.

Each line's channel is its ``channel`` cell, else the one given for the file;
with one, the line gives the address of that channel (an email for EMAIL, a
phone number for SMS and PHONE). With none, each address on the line is an
entry: an email column's is EMAIL, a phone column's SMS, and an address
column's EMAIL when it has an @, else SMS. Bad lines are reported by line
number as they are read, so memory stays bounded whatever the file's size.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app import csv_text
from app.accounts.actor import Actor
from app.errors import DomainError, InvalidInput
from app.prospects import suppressions
from app.prospects.models import Channel, SuppressionReason
from app.prospects.suppressions import Wanted

COLUMNS = {
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "phone": "phone",
    "phonenumber": "phone",
    "mobile": "phone",
    "cell": "phone",
    "address": "address",
    "channel": "channel",
    "reason": "reason",
}
ADDRESS_COLUMNS = ("email", "phone", "address")


@dataclass(frozen=True)
class Rejected:
    line: int
    field: str
    message: str


@dataclass
class Imported:
    added: int = 0
    present: int = 0
    """Entries the list held already (or that an earlier line of the file added)."""
    rejected: int = 0


@dataclass(frozen=True)
class _Pending:
    wanted: Wanted
    line: int
    field: str


def _choice(value: str, enum: type[Channel] | type[SuppressionReason], field: str) -> Channel | SuppressionReason:
    key = re.sub(r"[\s\-]+", "_", value.strip().upper())
    try:
        return enum(key)
    except ValueError:
        names = ", ".join(member.value for member in enum)
        raise InvalidInput(f"{value.strip()!r} is not one of {names}.", (field,)) from None


class _Layout:
    """Where a file's addresses, channels and reasons are, read from its first row."""

    def __init__(self, first: list[str]) -> None:
        columns: dict[str, tuple[int, str]] = {}
        for index, header in enumerate(first):
            name = COLUMNS.get(csv_text.header_key(header))
            if name is not None and name not in columns:
                columns[name] = (index, header.strip())
        self.header = any(name in columns for name in ADDRESS_COLUMNS)
        if not self.header:
            if not first or not _looks_like_address(first[0]):
                seen = ", ".join(repr(h.strip()) for h in first) or "nothing"
                raise InvalidInput(
                    f"No column of addresses: the first line has {seen}. Name a column email, phone or address, "
                    "or give one address per line without a header.",
                    ("file",),
                )
            columns = {"address": (0, "address")}
        self.columns = columns

    def cell(self, row: list[str], name: str) -> str:
        at = self.columns.get(name)
        return row[at[0]].strip() if at is not None and at[0] < len(row) else ""

    def entries(
        self, row: list[str], channel: Channel | None, reason: SuppressionReason | None
    ) -> list[tuple[Wanted, str]]:
        """The entries of one line, each with the column it came from."""
        if given := self.cell(row, "channel"):
            channel = Channel(_choice(given, Channel, self.columns["channel"][1]))
        if given := self.cell(row, "reason"):
            reason = SuppressionReason(_choice(given, SuppressionReason, self.columns["reason"][1]))
        cells = [(name, value) for name in ADDRESS_COLUMNS if (value := self.cell(row, name))]
        if not cells:
            names = " or ".join(self.columns[name][1] for name in ADDRESS_COLUMNS if name in self.columns)
            raise InvalidInput("No address on this line.", (names,))
        if channel is not None:
            fitting = "email" if channel is Channel.EMAIL else "phone"
            name, value = next((c for c in cells if c[0] == fitting), None) or next(
                (c for c in cells if c[0] == "address"), cells[0]
            )
            return [(Wanted(channel, value, reason), self.columns[name][1])]
        return [(Wanted(_channel_of(name, value), value, reason), self.columns[name][1]) for name, value in cells]


def _channel_of(column: str, value: str) -> Channel:
    if column == "email" or (column == "address" and "@" in value):
        return Channel.EMAIL
    return Channel.SMS


def _looks_like_address(value: str) -> bool:
    return "@" in value or sum(c.isdigit() for c in value) >= 7


async def import_csv(
    *,
    actor: Actor,
    path: Path,
    channel: Channel | None = None,
    reason: SuppressionReason | None = None,
    progress: Callable[[int], None] = lambda n: None,
    rejected: Callable[[Rejected], None] = lambda r: None,
) -> Imported:
    """Adds the file's addresses to the organization's list, ``suppressions.MAX_ADD``
    at a time (each batch one transaction). ``channel`` and ``reason`` hold for the
    lines that name none (reason MANUAL without either). ``rejected`` is called for
    each bad line as it is found, ``progress`` with the bytes read so far. A file
    with neither a header naming an address column nor an address on its first
    line is refused before anything is written."""
    result = Imported()
    batch = _Batch(actor, result, rejected)
    with path.open("rb") as source:
        reader = csv_text.reader(source)
        try:
            layout: _Layout | None = None
            for row in reader:
                if not any(value.strip() for value in row):
                    continue
                if layout is None:
                    layout = _Layout(row)
                    if layout.header:
                        continue
                try:
                    found = layout.entries(row, channel, reason)
                except DomainError as error:
                    batch.faults.append(Rejected(reader.line_num, _field(error), error.message))
                else:
                    if not batch.holds(len(found)):  # a line gives up to three entries
                        await batch.flush()
                        progress(source.tell())
                    batch.entries.extend(_Pending(wanted, reader.line_num, field) for wanted, field in found)
                if batch.full():
                    await batch.flush()
                    progress(source.tell())
        except (UnicodeDecodeError, csv.Error) as error:
            # The rest of the file cannot be read: keep what came before, say where it stopped.
            why = csv_text.unreadable(error)
            batch.faults.append(Rejected(reader.line_num + 1, "file", f"unreadable from here on ({why})."))
        await batch.flush()
        progress(source.tell())
    return result


def _field(error: DomainError) -> str:
    return str(error.field[-1]) if error.field else "line"


class _Batch:
    """The lines read since the last flush: their entries, and their faults, which
    are reported with the batch's invalid addresses in line order."""

    def __init__(self, actor: Actor, result: Imported, rejected: Callable[[Rejected], None]) -> None:
        self.actor = actor
        self.result = result
        self.rejected = rejected
        self.entries: list[_Pending] = []
        self.faults: list[Rejected] = []

    def full(self) -> bool:
        return len(self.entries) + len(self.faults) >= suppressions.MAX_ADD

    def holds(self, more: int) -> bool:
        """``more`` entries fit in the batch beside those it has (one ``add`` takes MAX_ADD)."""
        return len(self.entries) + more <= suppressions.MAX_ADD

    async def flush(self) -> None:
        faults = self.faults
        if self.entries:
            added = await suppressions.add(actor=self.actor, entries=[pending.wanted for pending in self.entries])
            for error in added.errors:
                assert error.field is not None  # add reports an entry's fault under ("entries", index, …)
                pending = self.entries[int(error.field[1])]
                faults.append(Rejected(pending.line, pending.field, error.message))
            self.result.added += added.added
            self.result.present += len(self.entries) - len(added.errors) - added.added
        for fault in sorted(faults, key=lambda f: f.line):
            self.rejected(fault)
        self.result.rejected += len(faults)
        self.entries, self.faults = [], []
