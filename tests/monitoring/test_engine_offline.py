"""An appliance behind a real sshd taken down and brought back: one appliance alert, its
servers' alerts suppressed meanwhile, and no storm from a flapping link."""

import datetime as dt

import pytest

from appliances.models import Alert, ApplianceState
from monitoring.models import AlertNotice, ServerStatus
from tests.monitoring.conftest import T0

MIN = dt.timedelta(minutes=1)
pytestmark = pytest.mark.django_db


def test_offline_appliance_gives_one_alert_and_silences_its_servers(office):
    assert office.states() == ["protected", "protected"]
    office.down()
    office.poll(T0 + MIN)
    office.appliance.refresh_from_db()
    assert office.appliance.state == ApplianceState.OFFLINE
    assert office.states() == ["unknown", "unknown"]
    reason = ServerStatus.objects.first().reason
    assert reason == f"appliance {office.appliance.name} offline (last seen 5 Nov 10:00 UTC)"
    # Polled every 5 minutes and evaluated every minute for three hours, long past the RPO.
    for minute in range(2, 181):
        if minute % 5 == 0:
            office.poll(T0 + minute * MIN)
        else:
            office.cycle(T0 + minute * MIN)
    alert = Alert.objects.get()
    assert (alert.kind, alert.server, alert.severity) == ("appliance_offline", None, "critical")
    assert alert.created_at == T0 + 6 * MIN
    assert alert.escalated_at == alert.created_at + 30 * MIN
    # Back: a backup of each server, the poll sees them and the appliance.
    office.up()
    back = T0 + 181 * MIN
    for server in office.servers:
        office.back_up(server, back - MIN)
    office.poll(back)
    assert office.states() == ["protected", "protected"]
    for minute in range(1, 16):
        office.cycle(back + minute * MIN)
    alert.refresh_from_db()
    assert alert.resolved_at == back + 15 * MIN and Alert.objects.count() == 1
    assert list(AlertNotice.objects.values_list("kind", "channel")) == [
        ("opened", "primary"),
        ("escalation", "escalation"),
        ("resolved", "primary"),
        ("resolved", "escalation"),
    ]


def test_a_servers_open_alert_stays_quiet_while_its_appliance_is_offline(office, settings):
    settings.BDR_ALERT_REMIND_HOURS = 1
    stale = T0 + 61 * MIN  # the servers' RPO has passed: both unprotected
    for minute in range(0, 6):
        office.cycle(stale + minute * MIN)
    assert Alert.objects.filter(kind="protection").count() == 2
    office.down()
    office.poll(stale + 10 * MIN)
    for minute in range(15, 200, 5):
        office.poll(stale + minute * MIN)
    reminders = AlertNotice.objects.filter(kind__in=["reminder", "escalation"])
    # Only the appliance's alert reminded and escalated; the servers' were suppressed.
    assert set(reminders.values_list("alert__kind", flat=True)) == {"appliance_offline"}
    assert Alert.objects.filter(kind="protection", resolved_at__isnull=True).count() == 2


def test_ten_flaps_in_ten_minutes_give_one_alert_and_its_resolution(office):
    moment = T0
    for _ in range(10):
        office.down()
        moment += 30 * dt.timedelta(seconds=1)
        office.poll(moment)
        office.up()
        for server in office.servers:
            office.back_up(server, moment)
        moment += 30 * dt.timedelta(seconds=1)
        office.poll(moment)
    assert moment == T0 + 10 * MIN
    for minute in range(1, 21):
        office.cycle(moment + minute * MIN)
    alerts = list(Alert.objects.all())
    assert [(a.kind, a.resolved_at is not None) for a in alerts] == [("appliance_offline", True)]
    assert alerts[0].created_at == T0 + 2 * MIN + 30 * dt.timedelta(seconds=1)  # third drop
    assert alerts[0].resolved_at == moment + 15 * MIN
    assert AlertNotice.objects.filter(kind="opened").count() == 1
