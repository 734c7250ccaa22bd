"""The retention editor's simulator: the projection follows the policy before it is saved,
says what it rests on, prices the overage at the price book, and is open to MSP staff and
the server's customer admins only."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from appliances.models import RetentionPolicy, Schedule
from portal.models import AuditEvent, Role
from tests.factories import (
    ApplianceFactory,
    CustomerFactory,
    PriceFactory,
    ProtectedServerFactory,
    RecoveryPointFactory,
)

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)
GIB = 2**30


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def server():
    """dc01: a full backup of 100 GiB 10 days ago (60 GiB stored), then a point a day, each
    adding 2 GiB; backups now paused, so the projection is the existing points ageing. The
    price book in force: 50 GB included per V2, $0.50 per GB over."""
    PriceFactory(model="V2", included_gb=50, overage_per_gb=Decimal("0.50"),
                 price_book__effective_from=dt.date(2026, 7, 1))  # fmt: skip
    appliance = ApplianceFactory(customer=CustomerFactory(name="Acme"), model="V2")
    dc01 = ProtectedServerFactory(appliance=appliance, name="dc01")
    Schedule.objects.create(server=dc01, weekdays=list(range(7)), enabled=False)
    RetentionPolicy.objects.create(server=dc01, intraday=0, daily=7, weekly=0, monthly=0,
                                   yearly=0)  # fmt: skip
    for n in range(10, 0, -1):
        RecoveryPointFactory(
            server=dc01,
            taken_at=NOW - dt.timedelta(days=n),
            size_bytes=100 * GIB,
            stored_bytes=60 * GIB if n == 10 else 2 * GIB,
        )
    return dc01


def policy(**counts) -> dict:
    values = {"intraday": 0, "daily": 7, "weekly": 0, "monthly": 0, "yearly": 0, **counts}
    return {f"retention-{k}": v for k, v in values.items()}


def projection(client, server, **counts) -> str:
    response = client.get(reverse("retention_simulate", args=[server.pk]), policy(**counts))
    assert response.status_code == 200
    return response.content.decode()


def cell(html: str, month: str, name: str) -> str:
    row = re.search(rf'data-month="{month}">(.*?)</tr>', html, re.S).group(1)
    return re.search(rf"data-{name}>(.*?)</td>", row, re.S).group(1).strip()


def test_the_projection_follows_the_edited_policy_with_the_overage_in_dollars(client_for, server):
    client = client_for(Role.TECHNICIAN)
    seven = projection(client, server, daily=7)
    # 7 dailies (25 Oct - 4 Nov, periods without backups do not count): one full copy plus
    # six days of 2 GiB: 112 GiB, 62 over the 50 included, at $0.50.
    assert cell(seven, "2026-11", "points") == "7"
    assert cell(seven, "2026-11", "local") == "112.0\xa0GB"
    assert cell(seven, "2026-11", "overage").startswith("$31.00")
    three = projection(client, server, daily=3)
    assert cell(three, "2026-11", "points") == "3"
    assert cell(three, "2026-11", "local") == "104.0\xa0GB"
    assert cell(three, "2026-11", "overage").startswith("$27.00")
    assert RetentionPolicy.objects.get(server=server).daily == 7  # nothing saved


def test_the_page_says_what_the_daily_change_is_measured_from(client_for, server):
    html = projection(client_for(Role.TECHNICIAN), server)
    assert "Measured: 2.0 GB a day added on average by the recovery points of 9 days" in html
    assert "(27 Oct – 4 Nov); a full copy is 100.0 GB." in html
    assert "Billed on local bytes" in html and "50 GB off-site included per V2" in html


def test_too_little_history_falls_back_to_a_stated_assumption(client_for, settings):
    settings.BDR_SIMULATOR_FALLBACK_CHANGE_PERCENT = 2.0
    appliance = ApplianceFactory(model="V2")
    fresh = ProtectedServerFactory(appliance=appliance, name="new01")
    RecoveryPointFactory(server=fresh, taken_at=NOW - dt.timedelta(hours=2), size_bytes=50 * GIB)
    html = projection(client_for(Role.TECHNICIAN), fresh)
    assert "Too little history (0 days of backups in the last 30)" in html
    assert "assuming 2.0% of the server&#x27;s 50.0 GB changes a day" in html


def test_bad_policy_input_says_why_and_saves_nothing(client_for, server):
    client = client_for(Role.MSP_ADMIN)
    html = projection(client, server, daily="seven")
    assert "Fix the policy to see its projection: Daily: Enter a whole number." in html
    response = client.post(reverse("retention_edit", args=[server.pk]), policy(daily=-1))
    assert response.status_code == 200
    assert RetentionPolicy.objects.get(server=server).daily == 7
    assert not AuditEvent.objects.exists()


def test_a_customer_admin_sees_the_projection_and_saves_their_policy(client_for, server):
    client = client_for(Role.CUSTOMER_ADMIN, server.appliance.customer)
    page = client.get(reverse("retention_edit", args=[server.pk]))
    assert page.status_code == 200 and 'id="projection"' in page.content.decode()
    response = client.post(reverse("retention_edit", args=[server.pk]), policy(daily=14))
    assert response.status_code == 302
    assert RetentionPolicy.objects.get(server=server).daily == 14
    assert AuditEvent.objects.filter(customer=server.appliance.customer).exists()


@pytest.mark.parametrize("role", [Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER])
def test_other_customers_and_customer_users_get_404(client_for, server, role):
    own = server.appliance.customer if role == Role.CUSTOMER_USER else CustomerFactory()
    client = client_for(role, own)
    for name in ("retention_edit", "retention_simulate"):
        assert client.get(reverse(name, args=[server.pk])).status_code == 404
    response = client.post(reverse("retention_edit", args=[server.pk]), policy(daily=1))
    assert response.status_code == 404
    assert RetentionPolicy.objects.get(server=server).daily == 7


def test_the_projection_takes_a_constant_number_of_queries(
    client_for, server, django_assert_max_num_queries
):
    client = client_for(Role.TECHNICIAN)
    projection(client, server)
    for n in range(40):
        RecoveryPointFactory(server=server, taken_at=NOW - dt.timedelta(hours=n, minutes=30),
                             size_bytes=100 * GIB, stored_bytes=GIB)  # fmt: skip
    with django_assert_max_num_queries(20):  # 3 the session, 2 the savepoint
        projection(client, server)
