"""The notices the engine makes about its alerts: opened, reminders, escalation, resolved.

A notice is a row (``AlertNotice``) naming the alert, what happened and the channel; delivery
(e-mail, webhooks) is separate and reads them. An open engine alert that nobody acknowledged
reminds every ``BDR_ALERT_REMIND_HOURS`` on each channel it reached, and a critical one goes
to the escalation channel after ``BDR_ALERT_ESCALATE_MINUTES``. Suppressed meanwhile: every
alert of an appliance in a maintenance window, and a server's alerts while its appliance is
not online (the appliance's own alert speaks for them).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import F

from appliances.models import ENGINE_ALERT_KINDS, Alert, ApplianceState, Severity
from monitoring.models import AlertNotice, Channel


def record(alert: Alert, kind: str, now: dt.datetime, *, both: bool = False) -> None:
    """One notice on the primary channel (and on the escalation channel with ``both``)."""
    channels = [Channel.PRIMARY, Channel.ESCALATION] if both else [Channel.PRIMARY]
    AlertNotice.objects.bulk_create(
        [AlertNotice(alert=alert, kind=kind, channel=c, at=now) for c in channels]
    )


def suppressed(alert: dict, maintenance: dict) -> bool:
    if alert["appliance_id"] in maintenance:
        return True
    return alert["server_id"] is not None and alert["appliance__state"] != ApplianceState.ONLINE


def remind_and_escalate(now: dt.datetime, fleet, appliance_ids=None) -> int:
    """Make the reminders and escalations due at ``now``; return how many notices."""
    remind_every = dt.timedelta(hours=settings.BDR_ALERT_REMIND_HOURS)
    escalate_after = dt.timedelta(minutes=settings.BDR_ALERT_ESCALATE_MINUTES)
    alerts = Alert.objects.filter(
        resolved_at__isnull=True, acknowledged_at__isnull=True, kind__in=ENGINE_ALERT_KINDS
    )
    if appliance_ids is not None:
        alerts = alerts.filter(appliance_id__in=appliance_ids)
    rows = alerts.values(
        "id", "appliance_id", "server_id", "severity", "created_at", "notified_at",
        "escalated_at", "appliance__state",
    )  # fmt: skip
    made: list[AlertNotice] = []
    for row in rows.order_by():
        if suppressed(row, fleet.maintenance):
            continue
        made += _due(row, now, remind_every, escalate_after)
    AlertNotice.objects.bulk_create(made, batch_size=2000)
    return len(made)


def _due(row: dict, now, remind_every, escalate_after) -> list[AlertNotice]:
    made = []
    escalated = row["escalated_at"] is not None
    if (
        not escalated
        and row["severity"] == Severity.CRITICAL
        and now - row["created_at"] >= escalate_after
    ):
        made.append(AlertNotice(alert_id=row["id"], kind="escalation", channel=Channel.ESCALATION,
                                at=now))  # fmt: skip
        Alert.objects.filter(pk=row["id"]).update(escalated_at=now)
        escalated = True
    last = row["notified_at"] or row["created_at"]
    if now - last >= remind_every:
        channels = [Channel.PRIMARY] + ([Channel.ESCALATION] if escalated else [])
        made += [AlertNotice(alert_id=row["id"], kind="reminder", channel=c, at=now)
                 for c in channels]  # fmt: skip
        Alert.objects.filter(pk=row["id"]).update(notified_at=now, reminders=F("reminders") + 1)
    return made
