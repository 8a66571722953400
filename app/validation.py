"""Validation and normalization of the values people type: names, emails, phones, zones."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from app.errors import Field, InvalidInput


def email(value: str, field: Field) -> str:
    """A syntactically valid address, normalized (domain lower-cased, IDNA)."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput("Not a valid email address.", field) from None
    return result.normalized


def phone(value: str, region: str | None, field: Field) -> str:
    """E.164, reading national numbers in ``region`` (ISO 3166 alpha-2); with no
    region, only international ones (``+`` and the country code)."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise InvalidInput("Not a valid phone number.", field) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("Not a valid phone number.", field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def time_zone(value: str, field: Field) -> str:
    """An IANA zone name, as the tz database spells it."""
    if value not in _zones():
        raise InvalidInput("Not an IANA time zone name (e.g. Europe/Paris).", field)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("Not an IANA time zone name (e.g. Europe/Paris).", field) from None
    return value


def region(value: str, field: Field) -> str:
    code = value.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput("Not a phone region (ISO 3166 alpha-2, e.g. US).", field)
    return code


def name(value: str, field: Field, *, max_length: int = 200) -> str:
    """A required, trimmed, bounded display name."""
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput("Must not be empty.", field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"At most {max_length} characters.", field)
    return cleaned


def optional_text(value: str | None, field: Field, *, max_length: int = 200) -> str | None:
    if value is None:
        return None
    cleaned = value.strip()
    if len(cleaned) > max_length:
        raise InvalidInput(f"At most {max_length} characters.", field)
    return cleaned or None


MAX_SEARCH = 320
"""The longest field a search matches (an email address): a longer text matches nothing."""


def search(value: str, field: Field) -> str:
    """A search's text, trimmed and lower-cased."""
    cleaned = value.strip()
    if len(cleaned) > MAX_SEARCH:
        raise InvalidInput(f"At most {MAX_SEARCH} characters.", field)
    return cleaned.lower()


def bounded_int(value: int, field: Field, *, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidInput(f"Must be between {low} and {high}.", field)
    return value
