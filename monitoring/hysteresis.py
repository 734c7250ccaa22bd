"""When an alarm's level change becomes an alert: a pure function of the alarm's memory.

The Healthchecks model: an alert is a state flip, never a poll. Each subject (a server's
protection, an appliance's reachability or disk) keeps a ``Track``: its level, since when,
and how often it turned bad lately. ``observe`` folds one evaluation into it; ``decide``
says whether to raise or resolve. A bad level raises once it has held ``raise_after``, or
at once when it turned bad ``flaps`` times within ``flap_window`` (flapping); the alert
resolves only once the good level has held ``clear_after``, so a flapping subject gives one
alert and, when it settles, one resolution. HOLD (appliance offline, maintenance, catching
up) neither raises nor resolves, and turning bad from HOLD is not a flap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from monitoring.models import AlarmLevel

BAD = frozenset({AlarmLevel.WARNING, AlarmLevel.CRITICAL})


@dataclass(frozen=True)
class Timing:
    raise_after: dt.timedelta = dt.timedelta(minutes=5)
    clear_after: dt.timedelta = dt.timedelta(minutes=15)
    flaps: int = 3
    flap_window: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Track:
    level: str = AlarmLevel.OK
    since: dt.datetime | None = None  # None: as it is for ever
    flips: int = 0
    flips_since: dt.datetime | None = None


def observe(track: Track, level: str, now: dt.datetime, timing: Timing) -> Track:
    """The track after one evaluation found ``level``."""
    was_bad, is_bad = track.level in BAD, level in BAD
    if was_bad and is_bad:
        return replace(track, level=level)  # worse or better, still the same trouble
    if track.level == level:
        return track
    flips, flips_since = track.flips, track.flips_since
    if is_bad and track.level == AlarmLevel.OK:
        if flips_since is None or now - flips_since > timing.flap_window:
            flips, flips_since = 0, now
        flips += 1
    return Track(level=level, since=now, flips=flips, flips_since=flips_since)


def decide(track: Track, alert_open: bool, now: dt.datetime, timing: Timing) -> str | None:
    """'raise', 'resolve' or None."""
    held = dt.timedelta.max if track.since is None else now - track.since
    if track.level in BAD and not alert_open:
        flapping = (
            track.flips >= timing.flaps
            and track.flips_since is not None
            and now - track.flips_since <= timing.flap_window
        )
        if held >= timing.raise_after or flapping:
            return "raise"
    if track.level == AlarmLevel.OK and alert_open and held >= timing.clear_after:
        return "resolve"
    return None
