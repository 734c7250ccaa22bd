"""A technician, in Chromium: enrol the demo-style appliance, protect a server, back it up,
and watch the progress bar run to "Succeeded"."""

import pytest

from appliances.models import Appliance
from portal.models import Role
from restores.models import RecoveryPoint
from tests.browser.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, SiteFactory, UserFactory
from tests.support.agent_store import init_store, make_volume


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_technician_enrols_adds_a_server_and_watches_a_backup_finish(page, live_server, tmp_path):
    store = init_store(tmp_path / "lab")
    image = make_volume(tmp_path / "fs01.img", size_mib=96)
    UserFactory(role=Role.TECHNICIAN, username="tina")
    site = SiteFactory(name="Warehouse")
    appliance = Appliance.objects.create(
        serial="LAB-1",
        name="lab-nas",
        model="V2",
        customer=site.customer,
        site=site,
        transport="local",
        local_store=str(store),
    )
    sign_in(page, live_server, "tina", DEFAULT_PASSWORD)
    page.click("text=Appliances")
    page.click("text=lab-nas")
    page.click("text=Enrol")
    page.click("button:has-text('Connect')")
    page.wait_for_selector("text=is enrolled and online")
    page.click("text=Protect a server")
    page.fill("input[name=name]", "fs01")
    page.fill("input[name=hostname]", "fs01.corp.local")
    page.fill("input[name=volume_source]", str(image))
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=is now protected by lab-nas")
    page.click("button:has-text('Back up now')")
    page.wait_for_selector("#job-progress")
    page.wait_for_selector("#job-progress >> text=Succeeded", timeout=60_000)
    assert "100%" in page.inner_text("#job-progress")
    page.screenshot(path=str(tmp_path / "job.png"), full_page=True)
    server = appliance.servers.get()
    assert RecoveryPoint.objects.filter(server=server).count() == 1
    page.click("text=fs01.corp.local")
    assert page.locator("text=Intraday (1)").count() == 1
