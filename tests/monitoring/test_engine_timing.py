"""Reminders, escalation, acknowledgement and maintenance windows, under a frozen clock, with
points from a real agent store through the local transport."""

import datetime as dt

from appliances.models import Alert, ApplianceState
from monitoring import services
from monitoring.models import AlertNotice, ServerStatus
from portal.models import AuditEvent, Role
from tests.factories import UserFactory
from tests.monitoring.conftest import T0

MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


def notices():
    return list(AlertNotice.objects.values_list("kind", "channel", "at"))


def test_reminders_every_n_hours_escalation_after_m_minutes_until_acknowledged(lab, settings):
    settings.BDR_ALERT_REMIND_HOURS = 4
    settings.BDR_ALERT_ESCALATE_MINUTES = 30
    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    stale = T0 + HOUR
    for minute in range(0, 9 * 60, 5):  # the cycle, every 5 minutes for 9 hours
        lab.cycle(stale + minute * MIN)
    opened = stale + 5 * MIN
    assert notices() == [
        ("opened", "primary", opened),
        ("escalation", "escalation", opened + 30 * MIN),
        ("reminder", "primary", opened + 4 * HOUR),
        ("reminder", "escalation", opened + 4 * HOUR),
        ("reminder", "primary", opened + 8 * HOUR),
        ("reminder", "escalation", opened + 8 * HOUR),
    ]
    alert = Alert.objects.get()
    assert alert.reminders == 2
    tech = UserFactory(role=Role.TECHNICIAN)
    acked = stale + 9 * HOUR
    assert services.acknowledge_alert(alert, actor=tech, now=acked)
    assert not services.acknowledge_alert(alert, actor=tech, now=acked)  # once
    for minute in range(0, 5 * 60, 5):
        lab.cycle(acked + minute * MIN)
    assert [n[0] for n in notices()[6:]] == ["acknowledged", "acknowledged"]
    assert AuditEvent.objects.filter(action="alert.acknowledged").count() == 1
    # Acknowledged is not resolved: it resolves when the backups are back.
    back = acked + 5 * HOUR
    lab.back_up(back - MIN)
    lab.poll(back)
    lab.cycle(back + 15 * MIN)
    alert.refresh_from_db()
    assert alert.resolved_at == back + 15 * MIN and alert.acknowledged_by == tech


def test_a_warning_is_reminded_but_never_escalated(lab, settings):
    from restores.models import RecoveryPoint

    settings.BDR_ALERT_REMIND_HOURS = 1
    lab.back_up(T0 - 5 * MIN)
    lab.poll(T0)
    RecoveryPoint.objects.update(boot_verified=False, boot_checked_at=T0)  # its boot check failed
    for minute in range(0, 5 * 60, 5):  # backups go on every 15 minutes: only the warning
        if minute % 15 == 0:
            lab.back_up(T0 + minute * MIN - MIN)
            lab.poll(T0 + minute * MIN)
        lab.cycle(T0 + minute * MIN)
    assert ServerStatus.objects.get().state == "warning"
    kinds = [n[0] for n in notices()]
    assert kinds[0] == "opened" and "escalation" not in kinds and kinds.count("reminder") == 4


def test_a_maintenance_window_pauses_the_appliance_and_holds_its_alerts(lab):
    tech = UserFactory(role=Role.TECHNICIAN)
    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    window = services.create_window(
        customer=lab.appliance.customer, appliance=lab.appliance, starts_at=T0 + 30 * MIN,
        ends_at=T0 + 3 * HOUR, reason="firmware upgrade", actor=tech,
    )  # fmt: skip
    lab.cycle(T0 + 31 * MIN)
    status = ServerStatus.objects.get()
    assert (status.state, status.reason) == (
        "paused", "maintenance until 5 Nov 13:00 UTC: firmware upgrade"
    )  # fmt: skip
    # The appliance is switched off for the upgrade: it goes offline, nobody is alerted.
    lab.appliance.state = ApplianceState.OFFLINE
    lab.appliance.save(update_fields=["state"])
    for minute in range(35, 180, 5):
        lab.cycle(T0 + minute * MIN)
    assert not Alert.objects.exists() and not AlertNotice.objects.exists()
    # The window ends and the appliance is still down: now it alerts.
    for minute in range(180, 190):
        lab.cycle(T0 + minute * MIN)
    assert list(Alert.objects.values_list("kind", flat=True)) == ["appliance_offline"]
    assert Alert.objects.get().created_at == T0 + 185 * MIN
    assert window.ends_at == T0 + 3 * HOUR


def test_a_customer_wide_window_covers_each_of_its_appliances(lab):
    tech = UserFactory(role=Role.TECHNICIAN)
    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    services.create_window(
        customer=lab.appliance.customer, appliance=None, starts_at=T0, ends_at=T0 + 4 * HOUR,
        reason="office move", actor=tech,
    )  # fmt: skip
    for minute in range(0, 3 * 60, 5):  # backups stop during the move
        lab.cycle(T0 + minute * MIN)
    assert ServerStatus.objects.get().state == "paused" and not Alert.objects.exists()


def test_ending_a_window_early_and_refusing_bad_ones(lab):
    import pytest
    from django.core.exceptions import ValidationError

    from tests.factories import ApplianceFactory

    tech = UserFactory(role=Role.TECHNICIAN)
    customer = lab.appliance.customer
    window = services.create_window(customer=customer, appliance=lab.appliance, starts_at=T0,
                                    ends_at=T0 + HOUR, reason="x", actor=tech)  # fmt: skip
    services.end_window(window, actor=tech, now=T0 + 10 * MIN)
    window.refresh_from_db()
    assert window.ends_at == T0 + 10 * MIN
    with pytest.raises(ValidationError, match="end after it starts"):
        services.create_window(customer=customer, appliance=None, starts_at=T0, ends_at=T0,
                               reason="x", actor=tech)  # fmt: skip
    with pytest.raises(ValidationError, match="another customer"):
        services.create_window(customer=customer, appliance=ApplianceFactory(), starts_at=T0,
                               ends_at=T0 + HOUR, reason="x", actor=tech)  # fmt: skip
