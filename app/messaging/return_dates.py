"""The return date an out-of-office reply gives (contract part 60), read with
``dateparser`` from the sentences that say when its sender is away or back.

What is read: what the sender wrote (quoted text and signature cut off,
``classify.reply_lines``), only when it says the sender is away (out of office,
on leave, abwesend, Urlaub, absent, congés, fuera de la oficina, vacaciones, …),
and there only the few words after a phrase that dates a return, in English,
German, French or Spanish. Two kinds of phrase:

- **back on X** ("back on 14/12", "returning January 5th", "zurück am", "ab dem
  15.12.", "de retour le 14 décembre", "de vuelta el"): the sender is back on X;
- **until X** ("out of the office until Monday, December 14", "bis zum 14.12.
  nicht im Büro", "absent jusqu'au 4 janvier", "fuera hasta el 14 de diciembre"):
  X is the last day away (German, French and Spanish "bis", "jusqu'au", "hasta"
  mostly count it in, and the English "until" is read alike: a day late costs
  a day, a day early mails someone still away), so the sender is back the day after.

A "back" phrase wins over an "until" one in the same reply. Only a date with a
day is taken ("14 December", "14/12", "the 4th", "tomorrow"): a bare weekday,
month or time of day is not. A date without a year is the next one after the
reply; dates are days in the organization's zone. Numbers are day first
("05/01" is 5 January), except English ones for an organization whose phone
region writes month first (the US and its territories, the Philippines), where
"05/01" is May 1; either way a reading that is no date gives way to the other
("12/14" is 14 December anywhere, "14/12" too). The return is ignored when it is
not after the reply or is more than LOOKAHEAD ahead.

The sender is back at the start of that day (``returns_at``); the pause ends on
the morning after it, at MORNING in the organization's zone (``resumes_at``).

Pure functions, no I/O; dateparser costs about 1 ms a phrase once its languages
are loaded (100 ms for the first use of one): callers run ``read`` off the event loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from dateparser.search import search_dates

from app.messaging.classify import reply_lines

LOOKAHEAD = timedelta(days=90)
MORNING = time(8)
LINES = 25
"""Lines of what the sender wrote that are read: an out-of-office notice in two languages fits."""
TEXT_CHARS = 4000
WINDOW_CHARS = 48
"""The words after a phrase that dateparser reads: "Monday, 14th of December 2026" fits."""
PHRASES_READ = 6
"""At most this many phrases are given to dateparser for one reply."""
MONTH_FIRST_REGIONS = frozenset({"US", "PR", "GU", "VI", "AS", "MP", "UM", "PH"})
"""Phone regions whose English dates are written month first."""


class Kind(StrEnum):
    BACK = "back"
    UNTIL = "until"


_AWAY = re.compile(
    r"\b(?:out of (?:the )?office|ooo|away|on (?:\w+ )?leave|vacation|holiday|absent|travel|not in the office"
    r"|out of town|off work|limited access"
    r"|abwesen|nicht im (?:büro|haus|hause)|au(?:ß|ss)er haus|nicht erreichbar|dienstreise|elternzeit"
    r"|absente?|absence|cong[ée]s?|vacances|hors du bureau|en d[ée]placement|pas au bureau|indisponible"
    r"|fuera|ausente|ausencia|vacaciones|de viaje|no estar[ée]|permiso)"
    r"|urlaub",  # within a word too: Jahresurlaub, Weihnachtsurlaub
    re.IGNORECASE,
)
_PHRASES: list[tuple[str, Kind, re.Pattern[str]]] = [
    ("en", Kind.BACK, re.compile(r"\b(?:back|return(?:ing|s)?)\b", re.IGNORECASE)),
    ("en", Kind.UNTIL, re.compile(r"\b(?:until|till|through)\b", re.IGNORECASE)),
    ("de", Kind.BACK, re.compile(r"\b(?:zur[üu]ck|wieder|ab)\b", re.IGNORECASE)),
    ("de", Kind.UNTIL, re.compile(r"\bbis\b", re.IGNORECASE)),
    ("fr", Kind.BACK, re.compile(r"\b(?:de retour|retour|reviens|reviendrai)\b", re.IGNORECASE)),
    ("fr", Kind.UNTIL, re.compile(r"\bjusqu\s*['\u2019]\s*(?:au|à|a)\b", re.IGNORECASE)),
    ("es", Kind.BACK, re.compile(r"\b(?:de vuelta|de regreso|regres(?:o|ar[ée])|volver[ée]|vuelvo)\b", re.IGNORECASE)),
    ("es", Kind.UNTIL, re.compile(r"\bhasta\b", re.IGNORECASE)),
]
VERB_LAST = frozenset({"wieder", "zurück", "zuruck"})
"""German return words that follow their date ("am 15.12. wieder im Büro"): the
words before them are read when none after give a date."""
_NUMERIC = re.compile(r"(?<![\d./-])(\d{1,2})([./-])(\d{1,2})(?:\2(\d{4}|\d{2}))?(?![\d/-])(?:\.(?!\d))?")


@dataclass(frozen=True)
class Return:
    returns_at: datetime
    """The start of the sender's first day back, in the organization's zone."""
    resumes_at: datetime
    """MORNING of that day: when the pause ends."""


def month_first(phone_region: str | None) -> bool:
    """Whether English numeric dates are read month first for an organization in ``phone_region``."""
    return (phone_region or "").upper() in MONTH_FIRST_REGIONS


def read(text: str, *, received: datetime, zone: ZoneInfo, month_first: bool = False) -> Return | None:
    """The return an auto-reply's ``text`` gives, or None (no out-of-office wording,
    no date, or one not after ``received`` or more than LOOKAHEAD ahead)."""
    written = " ".join(reply_lines(text, LINES))[:TEXT_CHARS]
    if not _AWAY.search(written):
        return None
    base = received.astimezone(zone).replace(tzinfo=None)
    found: dict[Kind, date] = {}
    for language, kind, start, end in _phrases(written):
        if kind in found:
            continue
        day = _date_after(written, start, end, language, base, month_first)
        if day is None:
            continue
        back = day if kind is Kind.BACK else day + timedelta(days=1)
        returns = datetime.combine(back, time(), zone)
        if received < returns <= received + LOOKAHEAD:
            found[kind] = back
        if Kind.BACK in found:
            break
    first = found.get(Kind.BACK) or found.get(Kind.UNTIL)
    if first is None:
        return None
    # In UTC, as every time is stored (SQLite compares them as text).
    return Return(
        datetime.combine(first, time(), zone).astimezone(UTC), datetime.combine(first, MORNING, zone).astimezone(UTC)
    )


def _phrases(written: str) -> list[tuple[str, Kind, int, int]]:
    """The phrases dating a return, in the order written: (language, kind, start, end)."""
    found = [(m.start(), m.end(), language, kind) for language, kind, p in _PHRASES for m in p.finditer(written)]
    found.sort()
    return [(language, kind, start, end) for start, end, language, kind in found[:PHRASES_READ]]


def _date_after(written: str, start: int, end: int, language: str, base: datetime, month_first: bool) -> date | None:
    """The first day dateparser finds in the words after the phrase at ``start:end``
    (for a German return word that comes last, in those before it if none after)."""
    windows = [written[end : end + WINDOW_CHARS]]
    if language == "de" and written[start:end].lower() in VERB_LAST:
        windows.append(written[max(0, start - WINDOW_CHARS) : start].split(",")[-1])
    for window in windows:
        normalized = _NUMERIC.sub(lambda m: _day_first(m, month_first and language == "en"), window)
        settings = {
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": base,
            "DATE_ORDER": "DMY",
            "REQUIRE_PARTS": ["day"],
            "RETURN_AS_TIMEZONE_AWARE": False,
        }
        dates = search_dates(normalized, languages=[language], settings=settings)
        if dates:
            return dates[0][1].date()
    return None


def _day_first(match: re.Match[str], month_first: bool) -> str:
    """A numeric date written day first, for dateparser's DMY order: "14.12." (which
    dateparser reads as a time), "05/01" read month first where English dates are
    so, a reading that is no date swapped for the other; unchanged if neither is
    one (a time, "9.30")."""
    a, b, year = int(match.group(1)), int(match.group(3)), match.group(4)
    readings = [(b, a), (a, b)] if month_first else [(a, b), (b, a)]
    # "." and "-" are day first wherever they are written; "/" may be either.
    candidates = readings if month_first or match.group(2) == "/" else readings[:1]
    for day, month in candidates:
        if 1 <= month <= 12 and 1 <= day <= 31:
            return f"{day}/{month}" + (f"/{year}" if year else "")
    return match.group(0)
