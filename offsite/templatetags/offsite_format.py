"""How the off-site pages write rates and waits."""

from __future__ import annotations

import datetime as dt

from django import template

register = template.Library()


def _bits(bits: int) -> str:
    for unit, size in (("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)):
        if bits >= size:
            value = bits / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{bits} bit/s"


def _bytes(n: int) -> str:
    for unit, size in (("GiB/s", 1 << 30), ("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B/s"


@register.filter
def rate(bytes_per_second) -> str:
    """Bytes per second as links are sold and as limits are typed: "33.6 Mbit/s (4 MiB/s)";
    None is no limit."""
    if bytes_per_second is None:
        return "no limit"
    n = int(bytes_per_second)
    return f"{_bits(n * 8)} ({_bytes(n)})" if n else "0 (paused)"


@register.filter
def wait(delta: dt.timedelta | None) -> str:
    """A lag in hours and minutes ("26 h 5 min", "12 min", "none")."""
    if not delta:
        return "none"
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"{hours // 24} days {hours % 24} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


@register.simple_tag
def lag_of(offsite, now: dt.datetime) -> dt.timedelta:
    """The appliance's off-site lag at ``now`` (zero without a record)."""
    return offsite.lag(now) if offsite else dt.timedelta(0)
