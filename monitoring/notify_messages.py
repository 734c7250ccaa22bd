"""What a notice says: the webhook's JSON body (fixed when the delivery is made) and the
e-mail made from it, with the server or appliance and the reason in words."""

from __future__ import annotations

import datetime as dt
import json

from monitoring.models import AlertNotice

# The words of each notice in an e-mail's subject.
SUBJECT_VERBS = {
    "opened": "Alert",
    "reminder": "Still open",
    "escalation": "Escalated, nobody acknowledged",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
}


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def payload(notice: AlertNotice) -> str:
    """The Standard Webhooks body of a notice: ``type``, ``timestamp`` and ``data``."""
    alert = notice.alert
    appliance, server = alert.appliance, alert.server
    data = {
        "alert_id": alert.pk,
        "notice": notice.kind,
        "channel": notice.channel,
        "kind": alert.kind,
        "severity": alert.severity,
        "message": alert.message,
        "customer": {"id": alert.customer_id, "name": alert.customer.name},
        "appliance": {"id": appliance.pk, "name": appliance.name, "serial": appliance.serial}
        if appliance
        else None,
        "server": {"id": server.pk, "name": server.name, "hostname": server.hostname}
        if server
        else None,
        "opened_at": _iso(alert.created_at),
    }
    body = {"type": f"alert.{notice.kind}", "timestamp": _iso(notice.at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def email(body: str) -> tuple[str, str]:
    """The subject and text of the e-mail for a delivery's body."""
    message = json.loads(body)
    data = message["data"]
    verb = SUBJECT_VERBS.get(data["notice"], data["notice"])
    subject = f"[{data['severity']}] {data['customer']['name']}: {verb}: {data['message']}"
    subject = " ".join(subject.split())[:200]  # one line, whatever the message holds
    lines = [
        f"{verb}: {data['message']}",
        "",
        f"Customer: {data['customer']['name']}",
    ]
    if data["appliance"]:
        lines.append(f"Appliance: {data['appliance']['name']} ({data['appliance']['serial']})")
    if data["server"]:
        lines.append(f"Server: {data['server']['hostname'] or data['server']['name']}")
    lines += [
        f"Severity: {data['severity']}",
        f"Alert opened: {data['opened_at']}",
        f"This notice: {message['timestamp']} on the {data['channel']} channel",
        "",
        "Acknowledge it on the portal's fleet page to stop the reminders and escalation.",
    ]
    return subject, "\n".join(lines) + "\n"
