"""Which prospect field each column of an imported file fills (R3.2).

A header names a field when, lower-cased and stripped of everything but letters
and digits, it is the field's name or one of its synonyms (``E-mail``, ``Email
Address`` and ``Mail`` are all ``email``); ``--map HEADER=FIELD`` overrides
that. The first column to name a field fills it; any other column, a second
``Phone``-like one included, becomes a custom field under its header in
snake_case (``Lead Source`` -> ``lead_source``), so nothing in the file is
dropped without being asked (``--map HEADER=ignore``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app import csv_text
from app.errors import InvalidInput

FIELDS: dict[str, str] = {
    "name": "full name, split at the first space into first and last name",
    "first_name": "first name",
    "last_name": "last name",
    "email": "email address (the match key for duplicates, with external_id)",
    "phone": "phone number (made E.164 with the organization's region)",
    "company": "company",
    "title": "job title",
    "time_zone": "IANA time zone, e.g. Europe/Berlin",
    "status": "a status's name (default: the organization's default status)",
    "owner": "an active user's email",
    "external_id": "the prospect's id in another system (the first match key for duplicates)",
}
CUSTOM = "custom."
IGNORE = "ignore"
SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": ("fullname", "contactname", "contact", "leadname", "personname"),
    "first_name": ("first", "firstname", "givenname", "forename", "fname"),
    "last_name": ("last", "lastname", "surname", "familyname", "lname"),
    "email": ("mail", "emailaddress", "emailaddr", "mailaddress", "workemail", "businessemail", "emailid"),
    "phone": (
        *("phonenumber", "phoneno", "telephone", "telephonenumber", "tel", "mobile", "mobilephone"),
        *("mobilenumber", "cell", "cellphone", "cellnumber", "cellular", "workphone", "directphone"),
    ),
    "company": (
        *("companyname", "organization", "organisation", "organizationname", "organisationname"),
        *("account", "accountname", "employer", "business", "businessname"),
    ),
    "title": ("jobtitle", "position", "designation", "jobposition"),
    "time_zone": ("timezone", "tz", "zone"),
    "status": ("leadstatus", "prospectstatus"),
    "owner": ("owneremail", "assignedto", "assignee", "salesrep", "rep"),
    "external_id": ("externalid", "crmid", "id", "recordid", "contactid", "leadid", "sourceid"),
}
NAMES = frozenset({"name", "first_name", "last_name", "email", "phone"})
"""A file must have a column for one of these: a row with none of them is no one."""
_BY_KEY = {key: name for name, synonyms in SYNONYMS.items() for key in (name.replace("_", ""), *synonyms)}


key = csv_text.header_key


def snake_case(header: str) -> str:
    """A custom field's key: ``Lead Source`` -> ``lead_source``, ``leadSource`` -> ``lead_source``."""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", header.strip())
    return re.sub(r"[\W_]+", "_", split.casefold()).strip("_")


def field_list() -> list[tuple[str, str]]:
    """The targets a column may have, with what each is."""
    return [
        *FIELDS.items(),
        (CUSTOM + "KEY", "a custom field (any other header becomes one, in snake_case)"),
        (IGNORE, "leave the column out"),
    ]


def describe_fields() -> str:
    """The fields, one a line, as the refusals list them."""
    return "\n".join(f"  {name:<12} {what}" for name, what in field_list())


@dataclass(frozen=True)
class Column:
    header: str
    target: str
    """A field of FIELDS, ``custom.KEY``, or IGNORE."""
    mapped: bool = False
    """Set by --map rather than recognized."""


def parse_maps(maps: Sequence[str]) -> dict[str, str]:
    """``HEADER=FIELD`` options as header -> target; InvalidInput naming the fields
    for a field that is none of them."""
    parsed: dict[str, str] = {}
    for given in maps:
        header, equals, field = given.partition("=")
        if not equals or not header.strip():
            raise InvalidInput(f"--map {given!r} is not HEADER=FIELD. Fields:\n{describe_fields()}", ("map",))
        parsed[header.strip()] = _target(field.strip(), given)
    return parsed


def _target(field: str, given: str) -> str:
    if field.casefold().startswith(CUSTOM):
        custom = snake_case(field[len(CUSTOM) :])
        if custom:
            return CUSTOM + custom
    elif key(field) == IGNORE:
        return IGNORE
    else:
        named = next((name for name in FIELDS if key(name) == key(field)), None)
        if named is not None:
            return named
    raise InvalidInput(f"--map {given!r}: {field!r} is not a field. Fields:\n{describe_fields()}", ("map",))


def columns(headers: Sequence[str], maps: dict[str, str]) -> list[Column]:
    """The target of each column of ``headers``; InvalidInput when a map names no
    header of the file, when two columns would fill one custom field, or when no
    column names a person (NAMES)."""
    by_header = _mapped_headers(headers, maps)
    taken: dict[str, str] = {}  # target -> header
    for index, target in sorted(by_header.items()):
        if target != IGNORE and target in taken:
            raise InvalidInput(f"--map gives {target} to both {taken[target]!r} and {headers[index]!r}.", ("map",))
        taken.setdefault(target, headers[index])
    out: list[Column] = []
    for index, header in enumerate(headers):
        if index in by_header:
            out.append(Column(header, by_header[index], mapped=True))
            continue
        target = _BY_KEY.get(key(header), "")
        if not target or target in taken:
            target = CUSTOM + (snake_case(header) or f"column_{index + 1}")
            if target in taken:
                raise InvalidInput(
                    f"Columns {taken[target]!r} and {header!r} would both be custom field "
                    f"{target.removeprefix(CUSTOM)}: --map one of them (e.g. --map '{header}={IGNORE}').",
                    ("map",),
                )
        taken[target] = header
        out.append(Column(header, target))
    if not any(column.target in NAMES for column in out):
        seen = ", ".join(repr(h) for h in headers) or "none"
        example = headers[0] if headers else "Email"
        raise InvalidInput(
            f"No column is a name, email or phone, so no row would be a person; nothing was imported. "
            f"Headers seen: {seen}. Map one with --map HEADER=FIELD, e.g. --map '{example}=email'. "
            f"Fields:\n{describe_fields()}",
            ("file",),
        )
    return out


def _mapped_headers(headers: Sequence[str], maps: dict[str, str]) -> dict[int, str]:
    """Column index -> target for each --map, its header matched exactly, else as
    headers are compared (``key``)."""
    found: dict[int, str] = {}
    for header, target in maps.items():
        index = next((i for i, h in enumerate(headers) if h.strip() == header), None)
        if index is None:
            index = next((i for i, h in enumerate(headers) if key(h) == key(header)), None)
        if index is None:
            seen = ", ".join(repr(h) for h in headers)
            raise InvalidInput(f"--map {header!r}: the file has no such column. Its headers: {seen}.", ("map",))
        found[index] = target
    return found
