"""Send windows and quiet hours across the America/New_York DST changes of 2026."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.errors import InvalidInput
from app.sequences.windows import next_opening, parse_window

NY = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = parse_window(["MON", "TUE", "WED", "THU", "FRI"], "09:00", "17:00", None, ("w",))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        # Friday 2026-03-06 18:00 EST (23:00 UTC) → Monday 09:00 EDT, after the spring change: 13:00 UTC.
        (utc(2026, 3, 6, 23), utc(2026, 3, 9, 13)),
        # Friday 16:59 EST is inside.
        (utc(2026, 3, 6, 21, 59), utc(2026, 3, 6, 21, 59)),
        # Friday 17:00 EST: the end is exclusive.
        (utc(2026, 3, 6, 22), utc(2026, 3, 9, 13)),
        # Monday 2026-03-09 08:00 EDT (12:00 UTC) → 09:00 EDT the same day.
        (utc(2026, 3, 9, 12), utc(2026, 3, 9, 13)),
        # Around the fall change, 2026-11-01: Friday 10-30 20:00 EDT → Monday 11-02 09:00 EST = 14:00 UTC.
        (utc(2026, 10, 31, 0), utc(2026, 11, 2, 14)),
    ],
)
def test_a_window_opens_at_the_same_wall_clock_time_across_dst(due: datetime, expected: datetime) -> None:
    assert next_opening(due, window=WEEKDAYS_9_TO_5, prospect_zone=NY, quiet_hours=False) == expected


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        # Sunday 2026-03-08, the day clocks spring forward at 02:00: 07:30 EDT (11:30 UTC) → 08:00 EDT (12:00 UTC).
        (utc(2026, 3, 8, 11, 30), utc(2026, 3, 8, 12)),
        # 01:30 EST that night (06:30 UTC) → 08:00 EDT (12:00 UTC), not 13:00.
        (utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 12)),
        # 21:00 EDT is outside (exclusive) → 08:00 the next day.
        (utc(2026, 3, 9, 1), utc(2026, 3, 9, 12)),
        # The fall change, 2026-11-01: 07:00 EST (12:00 UTC) → 08:00 EST (13:00 UTC).
        (utc(2026, 11, 1, 12), utc(2026, 11, 1, 13)),
        # Inside: unchanged.
        (utc(2026, 3, 8, 15), utc(2026, 3, 8, 15)),
    ],
)
def test_sms_quiet_hours_follow_the_prospects_wall_clock(due: datetime, expected: datetime) -> None:
    assert next_opening(due, window=None, prospect_zone=NY, quiet_hours=True) == expected


def test_a_window_in_its_own_zone_combines_with_quiet_hours_in_the_prospects() -> None:
    # Window 07:00-09:00 in London, prospect in New York: 03:00-05:00 there in March, always inside
    # quiet hours, so SMS can never be sent in it.
    london = parse_window(["MON"], "07:00", "09:00", "Europe/London", ("w",))
    with pytest.raises(InvalidInput):
        next_opening(utc(2026, 3, 9, 0), window=london, prospect_zone=NY, quiet_hours=True)
    late = parse_window(["MON", "TUE"], "13:00", "18:00", "Europe/London", ("w",))
    # Monday 2026-03-09 13:00 GMT = 09:00 EDT: inside both.
    assert next_opening(utc(2026, 3, 9, 0), window=late, prospect_zone=NY, quiet_hours=True) == utc(2026, 3, 9, 13)


@pytest.mark.parametrize(
    ("days", "start", "end", "zone", "field"),
    [
        ([], "09:00", "17:00", None, "days"),
        (["MON"], "9", "17:00", None, "start"),
        (["MON"], "09:00", "25:00", None, "end"),
        (["MON"], "17:00", "09:00", None, "end"),
        (["MON"], "09:00", "17:00", "Moon/Base", "time_zone"),
    ],
)
def test_bad_windows_are_invalid_input(days: list[str], start: str, end: str, zone: str | None, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_window(days, start, end, zone, ("send_window",))
    assert error.value.field == ("send_window", field)
