"""The uplink throttle: rates, time windows by weekday and hour, and a token bucket whose
rate may change while a replication runs.

RATE: bytes per second, with an optional suffix: ``K``/``M``/``G`` (also ``KB``, ``KiB``...)
multiply by 1024 as rsync's and rclone's limits do; ``kbit``/``mbit``/``gbit`` are bits
and decimal, as links are sold (``512kbit`` = 64,000 bytes/s). ``off`` (or ``unlimited``)
means no limit, ``0`` pauses sending.

Windows SPEC: rules separated by ``;``, each ``DAYS HOURS RATE``, first match wins:
``mon-fri 08:00-18:00 512kbit; sat,sun * 4M; * * 20mbit``. DAYS is ``*`` or a list of
days and ranges (``mon-fri``, ``fri-mon`` wraps); HOURS is ``*`` or ``HH:MM-HH:MM`` in the
appliance's local time; an end at or before the start runs past midnight into the next day
(``mon 22:00-06:00`` is Monday 22:00 to Tuesday 06:00). No rule matching: the plain limit.
Times are wall-clock times of the appliance's time zone, so a window keeps its hours
across daylight-saving changes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import UsageError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNITS = {"": 1, "b": 1, "kbit": 125, "mbit": 125_000, "gbit": 125_000_000}
for _power, _letter in enumerate("kmg", start=1):
    for _suffix in ("", "b", "ib"):
        _UNITS[_letter + _suffix] = 1 << (10 * _power)
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")
_HOURS = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
REREAD_SECONDS = 1.0


def parse_rate(text) -> float | None:
    """Bytes per second from RATE (None: no limit); UsageError when malformed."""
    if text is None:
        return None
    word = str(text).strip().lower()
    if word in ("", "off", "unlimited", "none"):
        return None
    match = _RATE.match(word)
    unit = match.group(2) if match else ""
    if not match or unit not in _UNITS:
        raise UsageError(f"bad rate {text!r}: bytes/s like 512K, 4M, or bits like 512kbit")
    return float(match.group(1)) * _UNITS[unit]


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    end: int  # up to 1440; at or before start: the next morning
    rate: float | None
    all_day: bool = False

    def matches(self, local: datetime) -> bool:
        day, minute = local.weekday(), local.hour * 60 + local.minute
        if self.all_day:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        # past midnight: the evening of a listed day, or the morning after one
        return (day in self.days and minute >= self.start) or (
            (day - 1) % 7 in self.days and minute < self.end
        )


def _days(text: str) -> frozenset[int]:
    if text == "*":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise UsageError(f"bad days {text!r}: use mon..sun, ranges and commas, or *")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def _hours(text: str) -> tuple[int, int, bool]:
    if text == "*":
        return 0, 0, True
    match = _HOURS.match(text)
    if not match:
        raise UsageError(f"bad hours {text!r}: HH:MM-HH:MM or *")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or end > 24 * 60 or start == end:
        raise UsageError(f"bad hours {text!r}: HH:MM-HH:MM, 00:00 to 24:00, not empty")
    return start, end, False


def parse_windows(spec: str | None) -> list[Window]:
    """The rules of a windows SPEC; UsageError naming the bad part."""
    windows = []
    for rule in (spec or "").split(";"):
        words = rule.lower().split()
        if not words:
            continue
        if len(words) != 3:
            raise UsageError(f"bad window {rule.strip()!r}: DAYS HOURS RATE")
        start, end, all_day = _hours(words[1])
        windows.append(Window(_days(words[0]), start, end, parse_rate(words[2]), all_day))
    return windows


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r}") from None


def rate_at(
    windows: list[Window], limit: float | None, now: datetime, tz: ZoneInfo
) -> float | None:
    """The rate in force at ``now`` (aware): the first matching window's, else ``limit``."""
    local = now.astimezone(tz)
    for window in windows:
        if window.matches(local):
            return window.rate
    return limit


class Throttle:
    """A token bucket. ``rate_now()`` (bytes/s, None: unlimited, 0: paused) is asked again
    every second, so a limit changed in the settings applies within a second. At most half
    a second of tokens builds up, so over a minute the rate is within 1% of the limit."""

    def __init__(
        self,
        rate_now: Callable[[], float | None],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[], None] | None = None,
    ):
        self.rate_now = rate_now
        self.clock = clock
        self.sleep = sleep
        self.on_wait = on_wait  # while waiting (the job's heartbeat)
        self.rate: float | None = None
        self._read_at = -1e18
        self._tokens = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def current_rate(self) -> float | None:
        now = self.clock()
        if now - self._read_at >= REREAD_SECONDS:
            self._read_at = now
            try:
                self.rate = self.rate_now()
            except UsageError:
                pass  # a bad setting keeps the rate in force
        return self.rate

    def take(self, n: int) -> None:
        """Wait until ``n`` bytes may be sent (threads share the bucket, in turn)."""
        with self._lock:
            self._take(n)

    def _take(self, n: int) -> None:
        while True:
            rate = self.current_rate()
            now = self.clock()
            if rate is None:
                self._tokens, self._last = 0.0, now
                return
            self._tokens = min(self._tokens + (now - self._last) * rate, rate / 2)
            self._last = now
            if rate > 0 and self._tokens >= 0:
                self._tokens -= n  # a debt, paid by waiting below before the next take
                return
            wait = -self._tokens / rate if rate > 0 else REREAD_SECONDS
            if self.on_wait is not None:
                self.on_wait()
            self.sleep(min(max(wait, 0.001), REREAD_SECONDS))
