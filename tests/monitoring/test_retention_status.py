"""Retention status with real points: an appliance behind sshd taken down for three days
(the engine records the spell as its alert), backups on the other days, the poller's task
refreshing the status, the fleet view listing it."""

import datetime as dt

import pytest

from appliances.models import Alert, RetentionPolicy
from monitoring import retention_status
from monitoring.models import ServerStatus
from tests.monitoring.conftest import T0

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)


def evening(days_before: int) -> dt.datetime:
    """17:30 UTC, ``days_before`` days before T0's date (T0 is Thursday 5 Nov 10:00)."""
    return dt.datetime.combine((T0 - days_before * DAY).date(), dt.time(17, 30), dt.UTC)


def test_missing_dailies_are_explained_by_the_appliance_going_offline(bare_office):
    office = bare_office
    RetentionPolicy.objects.update(daily=7, weekly=1, monthly=0, yearly=0)
    # Down from Saturday 31 Oct 22:00 to Wednesday 4 Nov 07:00, as the poller saw it.
    down, up = T0 - 4 * DAY - dt.timedelta(hours=12), T0 - dt.timedelta(hours=27)
    office.down()
    for minute in range(0, 10):
        office.poll(down + dt.timedelta(minutes=minute))
    office.up()
    office.poll(up)
    office.cycle(up + dt.timedelta(minutes=20))
    spell = Alert.objects.get(kind="appliance_offline")
    assert spell.resolved_at == up + dt.timedelta(minutes=20)
    # Every evening's backup, except while it was down.
    for days_before in range(1, 13):
        if days_before not in (2, 3, 4):
            for server in office.servers:
                office.back_up(server, evening(days_before))
    office.poll(T0)
    status = ServerStatus.objects.get(server=office.servers[0])
    assert status.retention_ok is False
    assert status.retention_summary == "3 dailies missing: the appliance was offline on 1–3 Nov"
    assert status.retention_since == T0
    # Nothing changed: the next refresh writes nothing.
    assert retention_status.refresh(T0 + dt.timedelta(minutes=5)) == 0
    _, timeline = retention_status.server_timeline(office.servers[0], T0)
    days = {s.label: (s.status, s.local) for s in timeline.tiers["daily"]}
    assert days == {
        "Wed 4 Nov": ("ok", 1), "Tue 3 Nov": ("missing", 0), "Mon 2 Nov": ("missing", 0),
        "Sun 1 Nov": ("missing", 0), "Sat 31 Oct": ("ok", 1), "Fri 30 Oct": ("ok", 1),
        "Thu 29 Oct": ("ok", 1),
    }  # fmt: skip
    assert [s.status for s in timeline.tiers["weekly"]] == ["ok"]
    # A week later the gap has left the promise's calendar.
    later = T0 + 7 * DAY
    for days_after in range(0, 7):
        for server in office.servers:
            office.back_up(server, evening(-days_after))
    office.poll(later)
    status.refresh_from_db()
    assert (status.retention_ok, status.retention_summary) == (True, "compliant")
