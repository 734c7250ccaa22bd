"""The fleet pages: worst first with the reason, filters and search, live refresh, tenant
scoping, acknowledging, maintenance windows, and a constant number of queries."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from appliances.models import Alert, RetentionPolicy, Schedule
from monitoring import engine, retention_status
from monitoring.models import MaintenanceWindow
from portal.models import Role
from tests.factories import (
    ApplianceFactory,
    CustomerFactory,
    ProtectedServerFactory,
    RecoveryPointFactory,
    SiteFactory,
)
from tests.support.signin import force_login_verified

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen():
    import time_machine

    with time_machine.travel(NOW, tick=False):
        yield


def server(appliance, name, minutes_ago=None):
    """A server protected for a month, its newest point ``minutes_ago`` (None: never)."""
    s = ProtectedServerFactory(appliance=appliance, name=name, hostname=f"{name}.corp.local")
    type(s).objects.filter(pk=s.pk).update(created_at=NOW - dt.timedelta(days=30))
    Schedule.objects.create(server=s, weekdays=list(range(7)))
    RetentionPolicy.objects.create(server=s, daily=1, weekly=0, monthly=0, yearly=0)
    if minutes_ago is not None:
        RecoveryPointFactory(server=s, taken_at=NOW - dt.timedelta(minutes=minutes_ago))
    return s


@pytest.fixture
def fleet():
    acme = CustomerFactory(name="Acme")
    hq = SiteFactory(customer=acme, name="HQ")
    nas = ApplianceFactory(customer=acme, site=hq, name="acme-nas", model="V2", state="online")
    server(nas, "dc01", minutes_ago=10)
    server(nas, "fs01", minutes_ago=600)
    globex = CustomerFactory(name="Globex")
    lab = SiteFactory(customer=globex, name="Lab")
    small = ApplianceFactory(customer=globex, site=lab, name="globex-nas", model="V1",
                             state="online", used_bytes=90, capacity_bytes=100)  # fmt: skip
    server(small, "web01", minutes_ago=5)
    engine.run_cycle(NOW)
    retention_status.refresh(NOW)
    return {"acme": acme, "globex": globex, "hq": hq, "nas": nas}


def page(client, name="fleet", **params):
    response = client.get(reverse(name), params)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def rows(html):
    import re

    return re.findall(r'data-server="([^"]+)"', html)


def test_unprotected_and_warning_servers_come_first_with_their_reason(client_for, fleet):
    client = client_for(Role.TECHNICIAN)
    html = page(client)
    assert rows(html) == ["fs01", "web01", "dc01"]
    assert "no backup since 5 Nov 00:00 UTC" in html and "appliance disk 90% full" in html
    assert "<b>1</b> unprotected" in html and "<b>1</b> warning" in html
    assert "<b>1</b> protected" in html


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"state": "protected"}, ["dc01"]),
        ({"model": "V1"}, ["web01"]),
        ({"q": "ACME"}, ["fs01", "dc01"]),  # customer name, any case
        ({"q": "fs0"}, ["fs01"]),
        ({"q": "globex-nas"}, ["web01"]),
        ({"q": "nothing like it"}, []),
    ],
)
def test_filters_and_search(client_for, fleet, params, expected):
    assert rows(page(client_for(Role.TECHNICIAN), **params)) == expected


def test_customer_and_site_filters_by_id(client_for, fleet):
    client = client_for(Role.MSP_ADMIN)
    assert rows(page(client, customer=fleet["acme"].pk)) == ["fs01", "dc01"]
    html = page(client, site=fleet["hq"].pk, state="unprotected")
    assert rows(html) == ["fs01"] and "Site: HQ" in html


@pytest.mark.parametrize("params", [{"state": "bad"}, {"model": "V9"}, {"customer": "x"},
                                    {"page": "²"}])  # fmt: skip
def test_bad_parameters_are_a_clear_400(client_for, fleet, params):
    response = client_for(Role.TECHNICIAN).get(reverse("fleet"), params)
    assert response.status_code == 400
    assert list(params)[0] in response.content.decode()


def test_htmx_refresh_gets_only_the_live_part(client_for, fleet):
    client = client_for(Role.TECHNICIAN)
    html = client.get(reverse("fleet"), {"state": "unprotected"}, HTTP_HX_REQUEST="true")
    text = html.content.decode()
    assert text.startswith('<div id="fleet-live"') and "<html" not in text
    assert 'hx-get="/fleet/?state=unprotected"' in text and rows(text) == ["fs01"]


def test_a_customer_admin_sees_only_their_own_customers_servers(client, fleet, make_user):
    admin = make_user(Role.CUSTOMER_ADMIN, customer=fleet["acme"])
    force_login_verified(client, admin)
    html = page(client)
    assert rows(html) == ["fs01", "dc01"] and "globex" not in html.lower()
    assert "Open alerts" not in html
    other = client.get(reverse("fleet"), {"customer": fleet["globex"].pk})
    assert other.status_code == 404
    fs01 = fleet["nas"].servers.get(name="fs01")
    assert client.get(reverse("server_retention", args=[fs01.pk])).status_code == 200


def test_customer_users_do_not_get_the_fleet_pages(client_for, fleet):
    client = client_for(Role.CUSTOMER_USER, customer=fleet["acme"])
    for name in ("fleet", "fleet_retention", "maintenance_list"):
        assert client.get(reverse(name)).status_code == 404


def test_retention_pages(client_for, fleet):
    client = client_for(Role.TECHNICIAN)
    html = page(client, "fleet_retention")
    # Every server has points only from today: yesterday's daily is missing.
    assert "1 daily missing: no backup was taken on 4 Nov" in html
    fs01 = fleet["nas"].servers.get(name="fs01")
    html = client.get(reverse("server_retention", args=[fs01.pk])).content.decode()
    assert "1 daily missing: no backup was taken on 4 Nov" in html and "Wed 4 Nov" in html


def test_a_technician_acknowledges_an_alert_and_goes_back(client_for, fleet):
    for minute in range(6):
        engine.run_cycle(NOW + dt.timedelta(minutes=minute))
    alert = Alert.objects.get(kind="protection")
    client = client_for(Role.TECHNICIAN)
    assert "Acknowledge" in page(client)
    response = client.post(reverse("alert_acknowledge", args=[alert.pk]), {"next": "/fleet/?q=fs"})
    assert response.status_code == 302 and response["Location"] == "/fleet/?q=fs"
    alert.refresh_from_db()
    assert alert.acknowledged_by == client.user
    evil = client.post(
        reverse("alert_acknowledge", args=[alert.pk]), {"next": "https://evil.example/"}
    )
    assert evil["Location"] == reverse("fleet")


def test_maintenance_windows_from_the_appliance_page(client_for, fleet):
    client = client_for(Role.TECHNICIAN)
    url = reverse("maintenance_appliance", args=[fleet["nas"].pk])
    bad = client.post(url, {"starts_at": "2026-11-05T12:00", "ends_at": "2026-11-05T11:00",
                            "reason": "firmware"})  # fmt: skip
    assert bad.status_code == 200 and "must end after it starts" in bad.content.decode()
    client.post(url, {"starts_at": "2026-11-05T09:00", "ends_at": "2026-11-05T12:00",
                      "reason": "firmware"})  # fmt: skip
    window = MaintenanceWindow.objects.get()
    assert (window.appliance, window.ends_at.hour) == (fleet["nas"], 12)
    assert "firmware" in page(client, "maintenance_list")
    engine.run_cycle(NOW)
    assert "maintenance until 5 Nov 12:00 UTC: firmware" in page(client, q="fs01")
    client.post(reverse("maintenance_end", args=[window.pk]))
    window.refresh_from_db()
    assert window.ends_at == timezone.now()


def _grow(n):
    for i in range(n):
        customer = CustomerFactory()
        appliance = ApplianceFactory(customer=customer, state="online")
        server(appliance, f"grow{i}a", minutes_ago=10)
        server(appliance, f"grow{i}b", minutes_ago=900)
        MaintenanceWindow.objects.create(
            customer=customer,
            appliance=appliance,
            reason="x",
            starts_at=NOW,
            ends_at=NOW + dt.timedelta(hours=1),
        )
    for minute in range(6):
        engine.run_cycle(NOW + dt.timedelta(minutes=minute))
    retention_status.refresh(NOW)


@pytest.mark.parametrize("name", ["fleet", "fleet_retention", "maintenance_list", "alert_list",
                                  "home"])  # fmt: skip
def test_fleet_pages_use_a_constant_number_of_queries(
    client_for, fleet, name, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(Role.TECHNICIAN)
    _grow(2)
    with CaptureQueriesContext(connection) as ctx:
        page(client, name)
    _grow(15)
    with django_assert_max_num_queries(len(ctx.captured_queries)):
        page(client, name)


def test_the_retention_timeline_uses_a_constant_number_of_queries(
    client_for, fleet, django_assert_max_num_queries
):
    client = client_for(Role.TECHNICIAN)
    fs01 = fleet["nas"].servers.get(name="fs01")
    url = reverse("server_retention", args=[fs01.pk])
    # session, user, second factor; the server; it with its policies; history; points
    with django_assert_max_num_queries(12):
        client.get(url)
    RecoveryPointFactory.create_batch(40, server=fs01)
    MaintenanceWindow.objects.create(customer=fleet["acme"], reason="x", starts_at=NOW,
                                     ends_at=NOW + dt.timedelta(hours=1))  # fmt: skip
    with django_assert_max_num_queries(12):
        assert client.get(url).status_code == 200
