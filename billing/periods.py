"""Calendar months, the unit we bill in."""

from __future__ import annotations

import calendar
import datetime as dt


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def days_in_month(day: dt.date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def previous_month(day: dt.date) -> dt.date:
    """The first day of the month before ``day``'s month."""
    return month_start(month_start(day) - dt.timedelta(days=1))


def next_month(day: dt.date) -> dt.date:
    return month_start(month_end(day) + dt.timedelta(days=1))


# Months we bill in; outside them the calendar arithmetic would overflow (year 9999's next month).
FIRST_YEAR, LAST_YEAR = 2000, 2199


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` (or an ISO ``YYYY-MM-DD``) to the first day of that month, years
    FIRST_YEAR..LAST_YEAR; ValueError with a message for people otherwise."""
    text = (text or "").strip()
    if len(text) == 7:
        text += "-01"
    if not (len(text) == 10 and text.isascii()):
        raise ValueError("a month is written YYYY-MM")
    day = dt.date.fromisoformat(text)
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"a month between {FIRST_YEAR} and {LAST_YEAR}")
    return month_start(day)


def active_days(
    starts_on: dt.date, ends_on: dt.date | None, period: dt.date
) -> tuple[dt.date, dt.date] | None:
    """The first and last day (inclusive) a subscription runs within ``period``'s month."""
    first = max(starts_on, month_start(period))
    last = min(ends_on or month_end(period), month_end(period))
    if first > last:
        return None
    return first, last
