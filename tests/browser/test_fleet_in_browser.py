"""A technician, in Chromium: a server turns unprotected on the fleet dashboard when its
backups stop, the alert is acknowledged, and it resolves after a backup. Points come from a
real agent store through the local transport; the clock is moved as hours pass."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from appliances import tasks
from appliances.models import Alert, Appliance, ApplianceState
from monitoring import engine
from portal.models import Role
from tests.browser.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, SiteFactory, UserFactory
from tests.monitoring.conftest import T0, protect
from tests.support.agent_store import agent, init_store, make_volume

ROW = "tr[data-server='dc01']"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_technician_sees_a_server_turn_unprotected_acknowledges_and_sees_it_resolve(
    page, live_server, tmp_path, settings
):
    settings.BDR_FLEET_REFRESH_SECONDS = 1
    with time_machine.travel(T0, tick=True) as clock:
        store = init_store(tmp_path / "lab")
        image = make_volume(tmp_path / "dc01.img", size_mib=4)
        UserFactory(role=Role.TECHNICIAN, username="tina")
        site = SiteFactory(name="Warehouse")
        appliance = Appliance.objects.create(
            serial="LAB-1", name="lab-nas", model="V2", customer=site.customer, site=site,
            transport="local", local_store=str(store), state=ApplianceState.ONLINE,
        )  # fmt: skip
        protect(appliance, "dc01", image, T0 - dt.timedelta(days=30))

        def back_up_and_poll(taken: dt.datetime) -> None:
            agent(store, "backup", "dc01", str(image), "--volume", "C", "--at", taken.isoformat())
            tasks.poll_appliance(appliance.pk)

        back_up_and_poll(T0 - dt.timedelta(minutes=5))
        sign_in(page, live_server, "tina", DEFAULT_PASSWORD)
        page.click("nav >> text=Fleet")
        page.wait_for_selector(f"{ROW} .protection-protected")
        # The backups stop. Two hours on, the beat's evaluation finds the RPO long passed.
        clock.move_to(T0 + dt.timedelta(hours=2))
        engine.run_cycle(timezone.now())
        page.wait_for_selector(f"{ROW} .protection-unprotected", timeout=15_000)
        assert "no backup since 5 Nov 09:55 UTC" in page.inner_text(ROW)
        # Held for five minutes: the alert opens, and the technician acknowledges it.
        clock.move_to(T0 + dt.timedelta(hours=2, minutes=6))
        engine.run_cycle(timezone.now())
        page.wait_for_selector("table.alerts button:has-text('Acknowledge')", timeout=15_000)
        page.screenshot(path=str(tmp_path / "fleet-unprotected.png"), full_page=True)
        page.click("table.alerts button:has-text('Acknowledge')")
        page.wait_for_selector("text=Acknowledged: dc01.corp.local on lab-nas")
        assert Alert.objects.get().acknowledged_by.username == "tina"
        # A backup comes in and the poller mirrors it: protected again at once ...
        clock.move_to(T0 + dt.timedelta(hours=2, minutes=10))
        back_up_and_poll(T0 + dt.timedelta(hours=2, minutes=8))
        page.wait_for_selector(f"{ROW} .protection-protected", timeout=15_000)
        # ... and once it has held for BDR_ALERT_CLEAR_MINUTES the alert resolves.
        clock.move_to(T0 + dt.timedelta(hours=2, minutes=26))
        engine.run_cycle(timezone.now())
        page.wait_for_selector("table.alerts >> text=No open alerts.", timeout=15_000)
        assert Alert.objects.get().resolved_at is not None
