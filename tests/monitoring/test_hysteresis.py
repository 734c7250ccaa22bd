"""Hysteresis as a table: a sequence of observed levels, minute by minute, and what the
engine does (no database)."""

import datetime as dt

import pytest

from monitoring.hysteresis import Timing, Track, decide, observe

T0 = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)
TIMING = Timing()  # raise after 5 min, clear after 15, flapping: 3 turns bad in 15 min


def run(levels: str) -> list[str]:
    """``levels``: one letter a minute (o ok, w warning, c critical, h hold); the actions."""
    names = {"o": "ok", "w": "warning", "c": "critical", "h": "hold"}
    track, open_, actions = Track(), False, []
    for minute, letter in enumerate(levels):
        now = T0 + dt.timedelta(minutes=minute)
        track = observe(track, names[letter], now, TIMING)
        action = decide(track, open_, now, TIMING)
        if action:
            actions.append(f"{action}@{minute}")
            open_ = action == "raise"
    return actions


@pytest.mark.parametrize(
    "levels, actions",
    [
        ("oooo", []),
        ("occcc", []),  # bad for 3 minutes: not yet
        ("occcccc", ["raise@6"]),  # held 5 minutes
        ("occcccccc", ["raise@6"]),  # one alert per flip, never one per poll
        ("owwwwwccc", ["raise@6"]),  # worse while open: still the same alert
        ("occcccc" + "o" * 14, ["raise@6"]),  # good for 14 minutes: still open
        ("occcccc" + "o" * 16, ["raise@6", "resolve@22"]),
        # flapping: bad, good, bad, good, bad -> raised on the third turn to bad
        ("ocococooo", ["raise@5"]),
        # 10 flaps in 10 minutes: one alert, resolved 15 minutes after it settles
        ("co" * 10 + "o" * 15, ["raise@4", "resolve@34"]),
        # flaps far apart are not flapping
        ("coooooooooooooooooocooooooooooooooooooc", []),
        # on hold (appliance offline, maintenance) neither raises nor resolves
        ("ohhhhhhhhh", []),
        ("occcccchhhhhhhhhhhhhhhhhh", ["raise@6"]),
        # from hold to bad starts the wait afresh, and is no flap
        ("ohchchchcccccc", ["raise@13"]),
    ],
)
def test_alerts_follow_flips_with_hysteresis(levels, actions):
    assert run(levels) == actions
