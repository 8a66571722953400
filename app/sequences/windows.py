"""Send windows and quiet hours (SPEC R4.4): when a due step may actually run.

Pure functions over aware datetimes; local times are computed with zoneinfo,
so a window of 09:00-17:00 stays 09:00-17:00 on the wall clock across DST
changes (it is 14:00 UTC in winter and 13:00 UTC in summer in New York).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app import validation
from app.errors import Field, InvalidInput

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
QUIET_HOURS = (time(8, 0), time(21, 0))
"""SMS and phone steps run only from 08:00 to 21:00 in the prospect's local time."""


@dataclass(frozen=True)
class SendWindow:
    days: tuple[str, ...]
    start: time
    end: time
    """Exclusive; after ``start`` (a window does not cross midnight)."""
    time_zone: str | None
    """None: the prospect's zone, else the organization's."""

    def to_json(self) -> dict[str, Any]:
        return {
            "days": list(self.days),
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "time_zone": self.time_zone,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SendWindow:
        return cls(tuple(data["days"]), _clock(data["start"]), _clock(data["end"]), data.get("time_zone"))


def _clock(value: str) -> time:
    return time.fromisoformat(value)


def parse_window(days: list[str], start: str, end: str, time_zone: str | None, field: Field) -> SendWindow:
    """A validated window; InvalidInput naming the field at fault."""
    if not days:
        raise InvalidInput("A send window needs at least one day.", (*field, "days"))
    times = []
    for name, value in (("start", start), ("end", end)):
        try:
            if len(value) != 5 or value[2] != ":":
                raise ValueError(value)
            times.append(_clock(value))
        except ValueError:
            raise InvalidInput("Use HH:MM, e.g. 09:00.", (*field, name)) from None
    if times[1] <= times[0]:
        raise InvalidInput("end must be after start (a window does not cross midnight).", (*field, "end"))
    zone = validation.time_zone(time_zone, (*field, "time_zone")) if time_zone else None
    ordered = tuple(d for d in WEEKDAYS if d in set(days))
    return SendWindow(ordered, times[0], times[1], zone)


def _next_in_daily_hours(when: datetime, zone: ZoneInfo, days: tuple[str, ...], start: time, end: time) -> datetime:
    """The earliest instant at or after ``when`` whose local time in ``zone`` is on
    one of ``days`` within [start, end)."""
    local = when.astimezone(zone)
    for offset in range(8):
        day: date = local.date() + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in days:
            continue
        opening = datetime.combine(day, start, tzinfo=zone)
        closing = datetime.combine(day, end, tzinfo=zone)
        if offset == 0 and opening <= local < closing:
            return when
        if local < opening:
            return opening.astimezone(UTC)
    raise AssertionError("a window with at least one day opens within a week")


def next_opening(
    due: datetime,
    *,
    window: SendWindow | None,
    prospect_zone: ZoneInfo,
    quiet_hours: bool,
) -> datetime:
    """When a step due at ``due`` may run: at once if allowed, else at the next
    opening of its window (in the window's zone, else the prospect's) that is
    also within quiet hours for SMS and phone steps (in the prospect's zone)."""
    when = due
    for _ in range(16):  # each constraint only moves forward; they agree within a few rounds
        moved = when
        if window is not None:
            zone = ZoneInfo(window.time_zone) if window.time_zone else prospect_zone
            moved = _next_in_daily_hours(moved, zone, window.days, window.start, window.end)
        if quiet_hours:
            moved = _next_in_daily_hours(moved, prospect_zone, WEEKDAYS, *QUIET_HOURS)
        if moved == when:
            return when
        when = moved
    raise InvalidInput("The send window never overlaps the hours SMS and calls are allowed (08:00-21:00).")
