"""Boot verification in the portal: the appliance's results mirrored onto recovery points."""

from __future__ import annotations

import pytest
from django.urls import reverse

from appliances import sync
from appliances.models import Alert
from portal.models import Role
from restores.models import RecoveryPoint
from tests.factories import RestoreGrantFactory, UserFactory
from tests.support.agent_store import agent
from tests.support.bootable import bootable_appliance, needs_qemu, use_tcg
from tests.support.signin import force_login_verified

pytestmark = [pytest.mark.django_db, needs_qemu]


@pytest.fixture
def world(tmp_path, monkeypatch):
    use_tcg(monkeypatch)
    return bootable_appliance(tmp_path, markers=("MARKER-ONE", "MARKER-TWO"))


def _bootcheck(store, point, marker, timeout="10"):
    return agent(
        store,
        "bootcheck",
        point.agent_id,
        "--marker",
        marker,
        "--timeout",
        timeout,
        "--memory",
        "64",
        check=False,
    )


def test_a_passed_boot_check_shows_on_the_point_with_its_screenshot(world, client):
    appliance, server, store = world
    one, two = RecoveryPoint.objects.filter(server=server).order_by("taken_at")
    assert _bootcheck(store, two, "MARKER-TWO").returncode == 0
    sync.poll_appliance(appliance)
    two.refresh_from_db()
    one.refresh_from_db()
    assert two.boot_verified is True and 0 < two.boot_seconds < 10 and two.boot_checked_at
    assert bytes(two.boot_screenshot)[:8] == b"\x89PNG\r\n\x1a\n"
    assert one.boot_verified is None and one.boot_checked_at is None
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    page = client.get(reverse("restore_server_points", args=[server.pk])).content.decode()
    assert f'src="{reverse("point_boot_png", args=[two.pk])}"' in page
    assert "yes, in" in page and "not yet" in page
    assert f'href="{reverse("vm_start", args=[two.pk])}"' in page
    png = client.get(reverse("point_boot_png", args=[two.pk]))
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert not Alert.objects.filter(kind="bootcheck_failed").exists()


def test_a_failed_boot_check_raises_one_alert_per_point(world, client):
    appliance, server, store = world
    one = RecoveryPoint.objects.filter(server=server).earliest("taken_at")
    assert _bootcheck(store, one, "NEVER", timeout="3").returncode == 3
    sync.poll_appliance(appliance)
    one.refresh_from_db()
    assert one.boot_verified is False and one.boot_seconds is None
    alert = Alert.objects.get(kind="bootcheck_failed")
    assert alert.appliance == appliance and alert.severity == "critical"
    assert "did not boot" in alert.message and "'NEVER' not seen" in alert.message
    sync.poll_appliance(appliance)  # the same result again: nothing new
    assert _bootcheck(store, one, "NEVER", timeout="3").returncode == 3
    sync.poll_appliance(appliance)  # checked again and failed again: still one alert
    assert Alert.objects.filter(kind="bootcheck_failed").count() == 1
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    page = client.get(reverse("restore_server_points", args=[server.pk])).content.decode()
    assert "<strong>failed</strong>" in page


def test_customer_users_see_the_verdict_but_not_the_screenshot(world, client):
    appliance, server, store = world
    two = RecoveryPoint.objects.filter(server=server).latest("taken_at")
    _bootcheck(store, two, "MARKER-TWO")
    sync.poll_appliance(appliance)
    force_login_verified(client, RestoreGrantFactory(server=server).user)
    assert client.get(reverse("point_boot_png", args=[two.pk])).status_code == 404
    page = client.get(reverse("restore_server_points", args=[server.pk])).content.decode()
    assert "yes, in" in page and "boot.png" not in page and "Start VM" not in page
