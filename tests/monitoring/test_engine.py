"""The engine driven by real state changes: points made by a real agent store, mirrored
through the local transport by the poller's task, evaluated under a frozen clock."""

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext

from appliances.models import Alert, Severity
from monitoring.models import AlertNotice, ServerStatus
from tests.monitoring.conftest import T0

MIN = dt.timedelta(minutes=1)


def status(lab):
    return ServerStatus.objects.get(server=lab.server)


def test_a_fresh_backup_is_protected_and_a_stale_one_unprotected_with_the_reason(lab):
    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    assert status(lab).state == "protected"
    assert status(lab).last_point_at == T0 - 10 * MIN
    lab.cycle(T0 + dt.timedelta(hours=2))
    assert (status(lab).state, status(lab).reason) == (
        "unprotected",
        "no backup since 5 Nov 09:50 UTC (RPO 2 × 15 min + 30 min grace)",
    )
    assert status(lab).since == T0 + dt.timedelta(hours=2)


def test_one_alert_per_flip_resolved_on_the_flip_back(lab):
    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    stale = T0 + 60 * MIN  # the RPO (1 h) has passed
    for minute in range(12):  # the cycle runs every minute
        lab.cycle(stale + minute * MIN)
    alert = Alert.objects.get()
    assert (alert.kind, alert.server, alert.severity) == ("protection", lab.server, "critical")
    assert alert.created_at == stale + 5 * MIN  # held for BDR_ALERT_RAISE_MINUTES
    assert "dc01.corp.local on lab-nas: no backup since 5 Nov 09:50 UTC" in alert.message
    back = stale + 12 * MIN
    lab.back_up(back - MIN)
    lab.poll(back)
    assert status(lab).state == "protected"
    for minute in range(1, 17):
        lab.cycle(back + minute * MIN)
    alert.refresh_from_db()
    assert alert.resolved_at == back + 15 * MIN  # good for BDR_ALERT_CLEAR_MINUTES
    assert Alert.objects.count() == 1
    assert list(AlertNotice.objects.values_list("kind", "channel")) == [
        ("opened", "primary"),
        ("resolved", "primary"),
    ]


def test_an_unchanged_fleet_is_evaluated_without_a_write(lab):
    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    lab.cycle(T0 + 90 * MIN)  # unprotected, alarm held since now
    lab.cycle(T0 + 100 * MIN)  # alert raised
    with CaptureQueriesContext(connection) as ctx:
        report = lab.cycle(T0 + 101 * MIN)
    writes = [
        q["sql"] for q in ctx.captured_queries
        if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")
    ]  # fmt: skip
    assert writes == [] and report.statuses_written == 0 and report.alarms_written == 0
    assert report.counts_written == 0
    # A fixed number of reads, whatever the fleet (two of them the counts by state).
    assert len(ctx.captured_queries) <= 14


def test_a_damaged_point_found_by_verify_stops_counting(lab):
    from restores.models import RecoveryPoint

    lab.back_up(T0 - 40 * MIN)
    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    newest = RecoveryPoint.objects.order_by("-taken_at").first()
    RecoveryPoint.objects.filter(pk=newest.pk).update(verified=False)  # as a verify job marks it
    lab.cycle(T0 + 25 * MIN)
    assert status(lab).state == "unprotected"
    assert status(lab).reason.startswith("no good backup since 5 Nov 09:20 UTC: newer points")
    assert status(lab).last_good_point_at == T0 - 40 * MIN


def test_severity_follows_the_condition_while_the_alert_stays_open(lab, settings):
    from restores.models import RecoveryPoint

    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    RecoveryPoint.objects.update(boot_verified=False, boot_checked_at=T0)  # a failed boot check
    for minute in range(6):
        lab.cycle(T0 + minute * MIN)
    alert = Alert.objects.get()
    assert alert.severity == Severity.WARNING and "boot check failed" in alert.message
    lab.cycle(T0 + 2 * dt.timedelta(hours=1))  # and now the backups stopped as well
    alert.refresh_from_db()
    assert alert.severity == Severity.CRITICAL and Alert.objects.count() == 1
