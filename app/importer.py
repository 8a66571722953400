"""CSV import of prospects (R3.2): streams a file of any size in bounded memory,
validates each row like the API does, creates or updates in batches through the
upsert (app.prospects.upsert), and reports bad rows by line number.

The delimiter (comma, semicolon or tab) is sniffed from the first lines; which
field each column fills is app.import_columns'. A file where no column names
a person is refused before anything is written. A row that matches a prospect
already there (by external id, then email) is skipped, updated or rejected as
``on_duplicate`` says; skipping is the default, so importing a file twice
changes nothing. A dry run reads and checks everything, writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import csv_text
from app.accounts.actor import Actor
from app.accounts.models import User
from app.errors import DomainError, InvalidInput
from app.import_columns import CUSTOM, IGNORE, Column, columns
from app.prospects.upsert import OnDuplicate, upsert_prospects
from app.workflows.models import Status

BATCH = 1000
"""Rows a call of the upsert takes (its most)."""
MAX_ERRORS = 1000
"""Bad rows kept with their line and reason; the rest are counted."""
PEOPLE = ("first_name", "last_name", "email", "phone", "company", "title", "time_zone", "external_id")


@dataclass
class RowError:
    line: int
    field: str
    message: str


@dataclass
class ImportResult:
    delimiter: str
    columns: list[Column]
    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    """The first MAX_ERRORS bad rows (``rejected`` counts them all)."""

    def reject(self, line: int, where: str, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowError(line, where, message))


Progress = Callable[[int, int], None]
"""Called with the rows and the bytes read so far."""


async def import_csv(
    *,
    actor: Actor,
    path: Path,
    maps: Mapping[str, str] | None = None,
    on_duplicate: OnDuplicate = OnDuplicate.SKIP,
    dry_run: bool = False,
    progress: Progress = lambda rows, done: None,
) -> ImportResult:
    """Imports ``path`` (``maps``: header -> target, as import_columns.parse_maps
    makes them). InvalidInput, with nothing written, when the file's columns
    cannot make prospects."""
    with path.open("rb") as source:
        reader = csv_text.reader(source)
        try:
            header: list[str] = next((values for values in reader if any(v.strip() for v in values)), [])
        except (UnicodeDecodeError, csv.Error) as error:
            raise InvalidInput(
                f"The file's first line cannot be read ({csv_text.unreadable(error)}).", ("file",)
            ) from None
        result = ImportResult(reader.dialect.delimiter, columns([h.strip() for h in header], dict(maps or {})), dry_run)
        rows = _Rows(result.columns, await _status_names(actor.organization_id), await _owners(actor.organization_id))
        batch = _Batch(actor, result, on_duplicate)
        line = reader.line_num
        try:
            for values in reader:
                start, line = line + 1, reader.line_num
                if not any(v.strip() for v in values):
                    continue
                result.rows += 1
                try:
                    raw = rows.raw(values)
                except DomainError as error:
                    result.reject(start, _where(error.field), error.message)
                    continue
                if batch.full_or_holds(raw):
                    await batch.flush()
                    progress(result.rows, source.tell())
                batch.add(start, raw)
        except (UnicodeDecodeError, csv.Error) as error:
            # The rest of the file cannot be read: keep what came before, say where it stopped.
            result.reject(reader.line_num + 1, "file", f"unreadable from here on ({csv_text.unreadable(error)}).")
        await batch.flush()
        progress(result.rows, source.tell())
    result.errors.sort(key=lambda error: error.line)  # the upsert's come after the rows refused before it
    return result


def _where(at: Sequence[str | int] | None) -> str:
    return ".".join(str(part) for part in at or ()) or "row"


class _Rows:
    """Turns a row's values into the upsert's raw input (status and owner looked up)."""

    def __init__(self, targets: list[Column], statuses: dict[str, int | None], owners: dict[str, int]) -> None:
        self.targets = [column.target for column in targets]
        self.statuses = statuses
        self.owners = owners

    def raw(self, values: list[str]) -> dict[str, Any]:
        if len(values) > len(self.targets):
            extra = len(values) - len(self.targets)
            raise InvalidInput(
                f"{len(values)} values where the header has {len(self.targets)} columns"
                f" ({extra} more: a delimiter inside an unquoted value?).",
                ("row",),
            )
        raw: dict[str, Any] = {}
        custom: dict[str, str] = {}
        full_name = ""
        for target, value in zip(self.targets, values, strict=False):
            value = value.strip()
            if not value or target == IGNORE:
                continue
            if target in PEOPLE:
                raw[target] = value
            elif target.startswith(CUSTOM):
                custom[target.removeprefix(CUSTOM)] = value
            elif target == "name":
                full_name = value
            elif target == "status":
                raw["status_id"] = self._status(value)
            elif target == "owner":
                if value.lower() not in self.owners:
                    raise InvalidInput(f"{value!r} is not an active user's email.", ("owner",))
                raw["owner_id"] = self.owners[value.lower()]
        if full_name:
            first, _, last = full_name.partition(" ")
            raw.setdefault("first_name", first)
            if last.strip():
                raw.setdefault("last_name", last.strip())
        if custom:
            raw["custom_fields"] = custom
        return raw

    def _status(self, value: str) -> int:
        found = self.statuses.get(value.lower())
        if found is None:
            reason = "is ambiguous (several statuses have it)" if value.lower() in self.statuses else "is not a status"
            raise InvalidInput(f"{value!r} {reason}.", ("status",))
        return found


async def _status_names(organization_id: int) -> dict[str, int | None]:
    """Status name (lower-cased) → primary key; None where two statuses share the name."""
    names: dict[str, int | None] = {}
    for status in await Status.filter(organization_id=organization_id, deleted_at=None):
        key = status.name.lower()
        names[key] = None if key in names else status.id
    return names


async def _owners(organization_id: int) -> dict[str, int]:
    users = await User.filter(organization_id=organization_id, active=True)
    return {user.email.lower(): user.id for user in users}


def _keys(raw: Mapping[str, Any]) -> list[int]:
    """What identifies the row's person for the upsert (external id, email), hashed
    to 64 bits: a dry run remembers every one in the file."""
    found = []
    if raw.get("external_id"):
        found.append(b"x" + str(raw["external_id"]).strip().encode())
    if raw.get("email"):
        found.append(b"e" + str(raw["email"]).strip().lower().encode())
    return [int.from_bytes(hashlib.blake2b(k, digest_size=8).digest()) for k in found]


class _Batch:
    """Rows waiting for one upsert call. No two share a key, so the upsert meets a
    duplicate within the file as it meets one already there, in the row after the
    first's call. A dry run writes nothing for the upsert to meet, so it remembers
    the keys it has passed (a 64-bit hash each, about 70 bytes with its set's slot)
    and counts a row with one as the duplicate it would be."""

    def __init__(self, actor: Actor, result: ImportResult, on_duplicate: OnDuplicate) -> None:
        self.actor = actor
        self.result = result
        self.on_duplicate = on_duplicate
        self.lines: list[int] = []
        self.rows: list[dict[str, Any]] = []
        self.keys: set[int] = set()
        self.passed: set[int] = set()

    def full_or_holds(self, raw: Mapping[str, Any]) -> bool:
        return len(self.rows) >= BATCH or any(k in self.keys for k in _keys(raw))

    def add(self, line: int, raw: dict[str, Any]) -> None:
        keys = _keys(raw)
        if self.result.dry_run and any(k in self.passed for k in keys):
            self._earlier_duplicate(line)
            return
        self.keys.update(keys)
        self.lines.append(line)
        self.rows.append(raw)

    def _earlier_duplicate(self, line: int) -> None:
        if self.on_duplicate is OnDuplicate.SKIP:
            self.result.skipped += 1
        elif self.on_duplicate is OnDuplicate.UPDATE:
            self.result.updated += 1
        else:
            self.result.reject(line, "row", "Duplicates an earlier row of the file (same external id or email).")

    async def flush(self) -> None:
        if not self.rows:
            return
        done = await upsert_prospects(
            actor=self.actor, rows=self.rows, on_duplicate=self.on_duplicate, dry_run=self.result.dry_run
        )
        refused: set[int] = set()
        for error in done.errors:
            at = list(error.field or ())
            while at and not isinstance(at[0], int):  # the row's index, after the argument's name if any
                at.pop(0)
            index = int(at.pop(0)) if at else 0
            refused.add(index)
            self.result.reject(self.lines[index], _where(at), error.message)
        # Counted by row: the upsert lists each prospect once, and a row it folds into
        # another row's prospect (the same person by another key) updates that one.
        self.result.created += len(done.created)
        self.result.skipped += len(done.skipped)
        self.result.updated += max(0, len(self.rows) - len(done.created) - len(done.skipped) - len(refused))
        if self.result.dry_run:  # a refused row makes no prospect for a later one to meet
            self.passed.update(k for i, row in enumerate(self.rows) if i not in refused for k in _keys(row))
        self.lines, self.rows, self.keys = [], [], set()
