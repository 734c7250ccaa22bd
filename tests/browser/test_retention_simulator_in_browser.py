"""A customer admin, in Chromium, edits their server's retention policy and sees the
12-month projection (points, GB, overage in dollars) change before saving."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from appliances.models import RetentionPolicy, Schedule
from portal.models import Role
from tests.browser.conftest import sign_in
from tests.factories import (
    DEFAULT_PASSWORD,
    ApplianceFactory,
    CustomerFactory,
    PriceFactory,
    ProtectedServerFactory,
    RecoveryPointFactory,
    UserFactory,
)

NOW = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)
GIB = 2**30
NOVEMBER = "tr[data-month='2026-11']"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_customer_admin_sees_the_projection_change_as_they_edit_the_policy(
    page, live_server, tmp_path
):
    with time_machine.travel(NOW, tick=True):
        PriceFactory(model="V2", included_gb=50, overage_per_gb=Decimal("0.50"),
                     price_book__effective_from=dt.date(2026, 7, 1))  # fmt: skip
        acme = CustomerFactory(name="Acme")
        UserFactory(role=Role.CUSTOMER_ADMIN, customer=acme, username="carla")
        dc01 = ProtectedServerFactory(appliance=ApplianceFactory(customer=acme, model="V2"),
                                      name="dc01")  # fmt: skip
        Schedule.objects.create(server=dc01, weekdays=list(range(7)), enabled=False)
        RetentionPolicy.objects.create(server=dc01, intraday=0, daily=7, weekly=0, monthly=0,
                                       yearly=0)  # fmt: skip
        for n in range(10, 0, -1):
            RecoveryPointFactory(server=dc01, taken_at=NOW - dt.timedelta(days=n),
                                 size_bytes=100 * GIB,
                                 stored_bytes=60 * GIB if n == 10 else 2 * GIB)  # fmt: skip

        sign_in(page, live_server, "carla", DEFAULT_PASSWORD)
        page.goto(f"{live_server.url}/fleet/servers/{dc01.pk}/retention/")
        page.click("text=Edit the policy")
        page.wait_for_selector("#projection")
        assert page.inner_text(f"{NOVEMBER} [data-points]") == "7"
        assert page.inner_text(f"{NOVEMBER} [data-overage]").startswith("$31.00")
        assert "Measured: 2.0 GB a day" in page.inner_text("[data-basis]")

        page.fill("input[name='retention-daily']", "3")
        page.wait_for_selector(f"{NOVEMBER} [data-points]:text-is('3')")
        assert page.inner_text(f"{NOVEMBER} [data-local]") == "104.0\xa0GB"
        assert page.inner_text(f"{NOVEMBER} [data-overage]").startswith("$27.00")
        page.screenshot(path=str(tmp_path / "retention-simulator.png"), full_page=True)
        assert RetentionPolicy.objects.get(server=dc01).daily == 7  # not saved yet

        page.click("button:has-text('Save retention')")
        page.wait_for_selector("text=Retention saved.")
        assert RetentionPolicy.objects.get(server=dc01).daily == 3
