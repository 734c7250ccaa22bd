"""The appliance's offsite.status mirrored into the portal (the agent's documented JSON,
written out by hand), the copies each point page shows, and the lag alert's life."""

import datetime as dt

import pytest
from django.urls import reverse

from appliances.models import Alert
from offsite import mirror
from offsite.models import ApplianceOffsite
from portal.models import Role
from tests import factories as f
from tests.support.signin import force_login_verified

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2100, 3, 1, 12, 0, tzinfo=dt.UTC)
T8, T9, T10 = (f"2100-03-01T{h:02}:00:00+00:00" for h in (8, 9, 10))


def _answer(**overrides) -> dict:
    """offsite.status as agent/README.md documents it: three local points, one on both
    vaults, one on the first, one waiting; one more kept off-site only (on both)."""
    points = [
        {"id": "dc01/C/21000301T080000Z", "taken_at": T8, "copies": ["local", "dc1", "dc2"]},
        {"id": "dc01/C/21000301T090000Z", "taken_at": T9, "copies": ["local", "dc1"]},
        {"id": "dc01/C/21000301T100000Z", "taken_at": T10, "copies": ["local"]},
        {"id": "dc01/C/20990101T000000Z", "taken_at": "2099-01-01T00:00:00+00:00",
         "copies": ["dc1", "dc2"]},
    ]  # fmt: skip
    return {"target": "ssh://v@dc1/srv/v", "vault": "dc1", "points": points,
            "pending_points": 1, "backlog_bytes": 73400320, "rate": 65536, "limit": 65536,
            "eta_seconds": 1120.0, "lag_seconds": 7200,
            "newest_offsite": {"id": "dc01/C/21000301T090000Z", "taken_at": T9},
            "running": None, **overrides}  # fmt: skip


@pytest.mark.parametrize(
    "overrides, on_vault, on_second, lag",
    [
        ({}, 3, 2, dt.timedelta(hours=2)),
        ({"pending_points": 0, "lag_seconds": 0}, 3, 2, None),
        # a vault whose name the state does not know: the first copy is vault 1
        ({"vault": None}, 3, 2, dt.timedelta(hours=2)),
        # nonsense from an agent reads as nothing known, never a crash
        (
            {
                "points": [{"id": 5}, "x", {"id": "a", "copies": [1, None]}],
                "rate": "fast",
                "eta_seconds": -1,
                "lag_seconds": "?",
                "newest_offsite": "x",
            },
            0,
            0,
            dt.timedelta(0),
        ),  # fmt: skip
    ],
)
def test_the_status_is_read_the_way_the_agent_writes_it(overrides, on_vault, on_second, lag):
    status = mirror.parse_status(_answer(**overrides))
    assert (len(status.on_vault), len(status.on_second_vault)) == (on_vault, on_second)
    assert status.lag == lag


def _appliance_with_points():
    offsite = f.ApplianceOffsiteFactory(vault__name="ams1")
    server = f.ProtectedServerFactory(appliance=offsite.appliance, name="dc01")
    for hour in (8, 9, 10):
        f.RecoveryPointFactory(server=server, agent_id=f"dc01/C/21000301T{hour:02}0000Z",
                               taken_at=NOW.replace(hour=hour))  # fmt: skip
    return offsite.appliance, server


def test_a_status_marks_each_points_copies_and_the_appliances_state():
    appliance, server = _appliance_with_points()
    mirror.apply_status(appliance, _answer(), now=NOW)
    copies = dict(
        server.points.values_list("agent_id", "on_vault").order_by("taken_at")
    )  # fmt: skip
    assert list(copies.values()) == [True, True, False]
    assert list(server.points.filter(on_second_vault=True).values_list("agent_id", flat=True)) == [
        "dc01/C/21000301T080000Z"
    ]
    offsite = ApplianceOffsite.objects.get(appliance=appliance)
    assert offsite.last_offsite_at == NOW.replace(hour=9)
    assert offsite.waiting_since == NOW - dt.timedelta(hours=2)
    assert (offsite.points_local, offsite.points_offsite) == (3, 3)
    assert (offsite.queued_bytes, offsite.rate_bps, offsite.limit_bps) == (73400320, 65536, 65536)
    assert offsite.eta_at == NOW + dt.timedelta(seconds=1120)


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CUSTOMER_ADMIN])
def test_the_point_pages_show_local_vault_1_and_vault_2(client, make_user, role):
    appliance, server = _appliance_with_points()
    mirror.apply_status(appliance, _answer(), now=NOW)
    force_login_verified(client, make_user(role, appliance.customer))
    page = client.get(reverse("restore_server_points", args=[server.pk])).content.decode()
    assert page.count('class="copy copy-yes" title="on the appliance">local') == 3
    assert page.count('copy-yes" title="on vault 1">vault 1') == 2
    assert page.count('copy-yes" title="on vault 2">vault 2') == 1
    if role == Role.TECHNICIAN:
        page = client.get(reverse("server_detail", args=[server.pk])).content.decode()
        assert page.count('copy-yes" title="on vault 2">vault 2') == 1


def test_the_lag_alert_is_raised_once_past_the_threshold_and_resolved_when_it_drops(settings):
    settings.BDR_OFFSITE_LAG_ALERT_HOURS = 24
    appliance, _ = _appliance_with_points()
    for hours in (23, 25, 30, 26):
        mirror.apply_status(appliance, _answer(lag_seconds=hours * 3600), now=NOW)
    (alert,) = Alert.objects.filter(kind="offsite_lag")
    assert alert.resolved_at is None and "off-site copy 25 h behind" in alert.message
    mirror.apply_status(appliance, _answer(pending_points=0, lag_seconds=0), now=NOW)
    alert.refresh_from_db()
    assert alert.resolved_at == NOW
    mirror.apply_status(appliance, _answer(lag_seconds=48 * 3600), now=NOW)
    assert Alert.objects.filter(kind="offsite_lag", resolved_at__isnull=True).count() == 1


def test_an_appliance_without_a_vault_has_no_lag_alert():
    appliance, _ = _appliance_with_points()
    mirror.apply_status(appliance, _answer(lag_seconds=99 * 3600), now=NOW)
    ApplianceOffsite.objects.filter(appliance=appliance).update(vault=None)
    mirror.check_lag_alert(ApplianceOffsite.objects.get(appliance=appliance), now=NOW)
    assert not Alert.objects.filter(kind="offsite_lag", resolved_at__isnull=True).exists()
