"""How the off-site pages write rates and waits."""

from __future__ import annotations

import datetime as dt

from django import template

register = template.Library()


@register.filter
def rate(bytes_per_second) -> str:
    """Bytes per second as people read a link's speed: "512 kbit/s", "20.0 Mbit/s"."""
    if bytes_per_second is None:
        return "no limit"
    bits = int(bytes_per_second) * 8
    for unit, size in (("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)):
        if bits >= size:
            value = bits / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{bits} bit/s"


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
