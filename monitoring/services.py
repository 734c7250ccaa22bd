"""Writes people make in monitoring: acknowledging an alert, maintenance windows. Each one is
audited. (The evaluation cycle's own writes are in monitoring/engine.py.)"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction

from appliances.models import Alert, Appliance
from monitoring import notices
from monitoring.models import MaintenanceWindow, NoticeKind
from portal import audit
from portal.models import Customer, User

MAX_WINDOW = dt.timedelta(days=14)


@transaction.atomic
def acknowledge_alert(
    alert: Alert, *, actor: User | None, now: dt.datetime, request=None, via: str = ""
) -> bool:
    """Stop an open alert's reminders and escalation; it still resolves on its own. False
    (and no change) when it was resolved or acknowledged already. ``via``: how, when not
    on a page (e.g. "API key 1a2b3c4d5e6f"), for the audit log."""
    locked = Alert.objects.select_for_update().get(pk=alert.pk)
    if locked.resolved_at is not None or locked.acknowledged_at is not None:
        return False
    locked.acknowledged_at, locked.acknowledged_by = now, actor
    locked.save(update_fields=["acknowledged_at", "acknowledged_by"])
    notices.record(locked, NoticeKind.ACKNOWLEDGED, now, both=locked.escalated_at is not None)
    detail = {"kind": locked.kind, "message": locked.message}
    if via:
        detail["via"] = via
    audit.record(actor, "alert.acknowledged", locked, request=request, detail=detail)
    return True


@transaction.atomic
def create_window(
    *,
    customer: Customer,
    appliance: Appliance | None,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    reason: str,
    actor: User,
    request=None,
) -> MaintenanceWindow:
    """A maintenance window for one appliance, or (``appliance`` None) all of a customer's."""
    if appliance is not None and appliance.customer_id != customer.pk:
        raise ValidationError("That appliance belongs to another customer.")
    if ends_at <= starts_at:
        raise ValidationError("A maintenance window must end after it starts.")
    if ends_at - starts_at > MAX_WINDOW:
        raise ValidationError("A maintenance window lasts at most 14 days.")
    window = MaintenanceWindow.objects.create(
        customer=customer, appliance=appliance, starts_at=starts_at, ends_at=ends_at,
        reason=reason.strip()[:200], created_by=actor,
    )  # fmt: skip
    audit.record(actor, "maintenance.created", window, request=request,
                 detail={"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                         "appliance": appliance.name if appliance else None})  # fmt: skip
    return window


@transaction.atomic
def end_window(window: MaintenanceWindow, *, actor: User, now: dt.datetime, request=None) -> None:
    """End a window now (one not begun yet is deleted)."""
    if window.starts_at >= now:
        audit.record(actor, "maintenance.cancelled", window, request=request)
        window.delete()
        return
    if window.ends_at > now:
        window.ends_at = now
        window.save(update_fields=["ends_at"])
        audit.record(actor, "maintenance.ended", window, request=request)
