"""CSV import of prospects (R3.2): streams a file of any size, validates each row
like the API does, inserts in batches, and reports bad rows by line number.

Columns (header names are matched case-insensitively, ignoring spaces, dashes
and underscores): first name, last name, email, phone, company, title,
time zone, status (a status name), owner (a user's email). Any other column
goes into the prospect's customFields.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tortoise.transactions import in_transaction

from app.accounts.actor import Actor
from app.accounts.models import Organization, User
from app.errors import DomainError
from app.prospects.models import ChangeCause
from app.prospects.service import NewProspect, Preparer, insert
from app.workflows.models import Status

BATCH = 500
COLUMNS = {
    "firstname": "first_name",
    "lastname": "last_name",
    "email": "email",
    "emailaddress": "email",
    "phone": "phone",
    "phonenumber": "phone",
    "mobile": "phone",
    "company": "company",
    "title": "title",
    "jobtitle": "title",
    "timezone": "time_zone",
    "tz": "time_zone",
    "status": "status",
    "owner": "owner",
    "owneremail": "owner",
}


@dataclass
class RowError:
    line: int
    field: str
    message: str


@dataclass
class ImportResult:
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)


def _key(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", header.strip().lower())


async def import_csv(
    *,
    actor: Actor,
    path: Path,
    progress: Callable[[int], None] = lambda n: None,
) -> ImportResult:
    """Imports ``path``; ``progress`` is called with the bytes read so far."""
    org = await Organization.get(id=actor.organization_id)
    statuses = await _status_names(org.id)
    owners = {u.email.lower(): u.id for u in await User.filter(organization_id=org.id, active=True)}
    preparer = Preparer(actor, org)
    result = ImportResult()
    batch: list[NewProspect] = []
    with path.open("rb") as source:
        reader = csv.reader(_decoded(source))
        try:
            for line, row in _rows(reader):
                try:
                    raw = _prospect(row, statuses, owners)
                    batch.append(await preparer.prepare(raw, ()))
                except DomainError as error:
                    result.errors.append(RowError(line, ".".join(map(str, error.field or ())) or "row", error.message))
                if len(batch) >= BATCH:
                    result.imported += await _flush(actor, batch)
                    progress(source.tell())
        except (UnicodeDecodeError, csv.Error) as error:
            # The rest of the file cannot be read: keep what came before, say where it stopped.
            reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else str(error)
            result.errors.append(RowError(reader.line_num + 1, "file", f"unreadable from here on ({reason})."))
        result.imported += await _flush(actor, batch)
        progress(source.tell())
    return result


def _decoded(source: BinaryIO) -> Iterator[str]:
    """The file's lines as text, decoded one by one, so a bad byte is caught at its line."""
    for number, raw in enumerate(source, 1):
        yield raw.decode("utf-8-sig" if number == 1 else "utf-8")


def _rows(reader: Any) -> Iterator[tuple[int, dict[str, str]]]:
    header = next(reader, None)
    if header is None:
        return
    keys = [COLUMNS.get(_key(h), h.strip()) for h in header]
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        yield reader.line_num, dict(zip(keys, values, strict=False))


class _RowFault(DomainError):
    pass


def _prospect(row: dict[str, str], statuses: dict[str, int | None], owners: dict[str, int]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for key, value in row.items():
        value = (value or "").strip()
        if key in ("first_name", "last_name", "email", "phone", "company", "title", "time_zone"):
            if value:
                raw[key] = value
        elif key == "status":
            if value:
                found = statuses.get(value.lower())
                if found is None:
                    reason = (
                        "is ambiguous (several statuses have it)" if value.lower() in statuses else "is not a status"
                    )
                    raise _RowFault(f"{value!r} {reason}.", ("status",))
                raw["status_id"] = found
        elif key == "owner":
            if value:
                if value.lower() not in owners:
                    raise _RowFault(f"{value!r} is not an active user's email.", ("owner",))
                raw["owner_id"] = owners[value.lower()]
        elif value:
            custom[key] = value
    if custom:
        raw["custom_fields"] = custom
    return raw


async def _status_names(organization_id: int) -> dict[str, int | None]:
    """Status name (lower-cased) → primary key; None where two statuses share the name."""
    names: dict[str, int | None] = {}
    for status in await Status.filter(organization_id=organization_id, deleted_at=None):
        key = status.name.lower()
        names[key] = None if key in names else status.id
    return names


async def _flush(actor: Actor, batch: list[NewProspect]) -> int:
    if not batch:
        return 0
    async with in_transaction():
        created = await insert(actor, batch, cause=ChangeCause.USER)
    batch.clear()
    return len(created)
