"""A technician, in Chromium: sets a throttle window, starts a replication and watches its
progress, sees a recovery point's three copies (local, vault 1, vault 2: the test runs
``bdr-agent vault replicate`` between two local vault directories) and the off-site ETA."""

import re

import pytest

from appliances import sync
from appliances.models import ApplianceState
from offsite.models import Vault
from portal.models import Role
from tests import factories as f
from tests.browser.conftest import sign_in
from tests.offsite.conftest import make_vault_dir
from tests.support.agent_store import agent, init_store, make_volume, mutate, rpc_session

WINDOWS = "mon-fri 08:00-18:00 4M; * * 4M"  # 4 MiB/s whatever the day and hour


@pytest.fixture
def lab(db, tmp_path):
    """An online appliance (a local agent store) with one backed-up server, two vaults."""
    store = init_store(tmp_path / "lab")
    image = make_volume(tmp_path / "fs01.img", size_mib=96)
    site = f.SiteFactory(name="Warehouse")
    appliance = f.ApplianceFactory(serial="LAB-1", name="lab-nas", customer=site.customer,
                                   site=site, transport="local", local_store=str(store),
                                   state=ApplianceState.ONLINE)  # fmt: skip
    server = f.ProtectedServerFactory(appliance=appliance, name="fs01", hostname="fs01.corp")
    f.VolumeFactory(server=server, name="C", source=str(image))
    agent(store, "backup", "fs01", str(image), "--volume", "C")
    sync.poll_appliance(appliance)
    dc2 = Vault.objects.create(name="fra1", data_centre="Frankfurt",
                               endpoint=str(make_vault_dir(tmp_path / "dc2", "dc2")))  # fmt: skip
    Vault.objects.create(name="ams1", data_centre="Amsterdam", second_vault=dc2,
                         endpoint=str(make_vault_dir(tmp_path / "dc1", "dc1")))  # fmt: skip
    return store, image, server


def _watch_job(page) -> list[int]:
    """The percentages the job page shows until it says Succeeded."""
    seen = []
    page.wait_for_selector("#job-progress")
    for _ in range(600):
        text = page.inner_text("#job-progress")
        seen.append(int(re.search(r"(\d+)%", text).group(1)))
        if "Succeeded" in text or "Failed" in text:
            assert "Succeeded" in text, text
            return seen
        page.wait_for_timeout(200)
    raise AssertionError(f"the replication did not finish: {seen[-5:]}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_technician_throttles_replicates_and_sees_three_copies_and_the_eta(
    page, live_server, tmp_path, lab
):
    store, image, server = lab
    f.UserFactory(role=Role.TECHNICIAN, username="tina")
    sign_in(page, live_server, "tina", f.DEFAULT_PASSWORD)
    page.click("nav >> text=Off-site")
    page.click("a:has-text('lab-nas')")
    page.select_option("select[name=vault-vault]", label="ams1 (Amsterdam)")
    page.click("button:has-text('Save vault')")
    page.wait_for_selector("text=Vault saved.")
    page.fill("input[name=throttle-windows]", WINDOWS)
    page.click("button:has-text('Save throttle')")
    page.wait_for_selector("text=Throttle windows saved.")
    with rpc_session(store) as rpc:
        assert rpc.call("settings.get")["offsite_windows"] == WINDOWS

    page.click("button:has-text('Replicate now')")
    seen = _watch_job(page)
    assert seen[-1] == 100 and any(0 < p < 100 for p in seen), seen
    page.screenshot(path=str(tmp_path / "replication.png"), full_page=True)

    agent(tmp_path / "unused", "vault", "replicate", str(tmp_path / "dc1"), str(tmp_path / "dc2"))
    page.click("a:has-text('lab-nas')")
    page.click("text=state, vault, throttle")
    page.click("button:has-text('Ask the vault')")
    page.wait_for_selector("text=the copies are up to date")
    page.click("a:has-text('lab-nas')")
    page.click("a:has-text('fs01.corp')")
    row = page.locator("tbody tr", has=page.locator(".copies")).first
    for copy in ("local", "vault 1", "vault 2"):
        assert row.locator(f".copy-yes:has-text('{copy}')").count() == 1, row.inner_html()

    mutate(image, seed=7)  # a new point waits to go off-site: the page gives its ETA
    agent(store, "backup", "fs01", str(image), "--volume", "C")
    page.click("a:has-text('lab-nas')")
    page.click("button:has-text('Check now')")
    page.click("text=state, vault, throttle")
    eta = page.inner_text("#offsite-eta")
    assert "at the current limit" in eta, page.inner_text("#offsite-state")
    assert "limit 33.6 Mbit/s (4 MiB/s)" in page.inner_text("#offsite-rate")
    page.screenshot(path=str(tmp_path / "offsite.png"), full_page=True)
