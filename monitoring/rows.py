"""The fleet table's rows as HTML, made in Python.

The fleet page is the portal's hottest (every technician's browser refreshes it), and Django's
template engine spent about 0.6 ms a row on its links, dates and lookups (bench/fleet.py);
this makes a row in a few dozen microseconds. Every value goes through ``format_html``, so
everything is escaped as a template would.
"""

from __future__ import annotations

import datetime as dt
from html import escape

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from monitoring.models import ProtectionState

SENTINEL = "987654321"  # a pk no table reaches, replaced by the row's own
LABELS = {value: escape(str(label)) for value, label in ProtectionState.choices}


def ago(moment: dt.datetime, now: dt.datetime) -> str:
    """'4 min', '3 h 5 min', '2 days': how long before ``now``."""
    minutes = max(0, int((now - moment).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{minutes // 1440} days"


def shown(moment: dt.datetime) -> str:
    """As the pages show moments: 'Thu 5 Nov, 09:55' in the portal's time zone."""
    local = timezone.localtime(moment)
    return f"{local:%a} {local.day} {local:%b, %H:%M}"


class FleetRows:
    """Makes the rows of one request's fleet table (links depend on the user and the filter)."""

    def __init__(self, request, now: dt.datetime):
        self.now, self.msp = now, request.user.is_msp
        self.server_url = reverse("server_detail", args=[SENTINEL])
        self.appliance_url = reverse("appliance_detail", args=[SENTINEL])
        self.retention_url = reverse("server_retention", args=[SENTINEL])
        params = request.GET.copy()
        for key in ("customer", "site", "page"):
            params.pop(key, None)
        self.base = params.urlencode()

    def _url(self, pattern: str, pk: int) -> str:
        return pattern.replace(SENTINEL, str(pk))

    def _narrow(self, key: str, pk: int) -> str:
        return "?" + (f"{self.base}&" if self.base else "") + f"{key}={pk}"

    def _link(self, pattern: str, pk: int, text: str) -> str:
        if not self.msp:
            return escape(text)
        return f'<a href="{self._url(pattern, pk)}">{escape(text)}</a>'

    def row(self, status: dict) -> SafeString:
        """One row from the values ``selectors.fleet_servers`` gives."""
        server_id, appliance_id = status["server_id"], status["appliance_id"]
        last = "never"
        if status["last_point_at"]:
            when, since = shown(status["last_point_at"]), ago(status["last_point_at"], self.now)
            last = f"{when}<br><small>{since} ago</small>"
        retention = {None: "not checked", True: "compliant", False: "short"}[status["retention_ok"]]
        state = escape(status["state"])
        server = status["hostname"] or status["name"]
        return mark_safe(  # noqa: S308 (every value below is escaped)
            f'<tr class="protection-row-{state}" data-server="{escape(status["name"])}">'
            f'<td><span class="protection protection-{state}">{LABELS[status["state"]]}</span>'
            f"<br><small>since {shown(status['since'])}</small></td>"
            f"<td>{self._link(self.server_url, server_id, server)}</td>"
            f"<td>{self._link(self.appliance_url, appliance_id, status['appliance'])} "
            f"<small>{escape(status['model'])}</small></td>"
            f'<td><a href="{escape(self._narrow("customer", status["customer_id"]))}">'
            f"{escape(status['customer'])}</a> · "
            f'<a href="{escape(self._narrow("site", status["site_id"]))}">'
            f"{escape(status['site'])}</a></td>"
            f'<td class="reason">{escape(status["reason"] or "backed up within its RPO")}</td>'
            f'<td>{last}</td><td><a href="{self._url(self.retention_url, server_id)}">'
            f"{retention}</a></td></tr>"
        )
