"""Issue 14, item 8, in Chromium: the portal's pages run under their Content-Security-Policy
with nothing refused (no "Refused to ..." in the console), htmx's live refresh still swaps,
the VM page's console module (noVNC, under the request's nonce) loads, and the behaviours
moved out of inline handlers (confirm before a dangerous form, put-back takes the ticked
files) still work."""

from __future__ import annotations

import pytest
from django.urls import reverse

from appliances.models import ApplianceState
from portal.models import Role
from tests import factories as f
from tests.browser.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD
from tests.support.tenants import make_store, make_tenant

REPORT_VIOLATIONS = """
window.bdrViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.bdrViolations.push(`${location.pathname}: ${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def world(tmp_path):
    acme = make_tenant(make_store(tmp_path), "Acme", users=1)
    server = acme.point.server
    ssh = f.ApplianceFactory(customer=acme.customer, ssh_host="192.0.2.1",
                             host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBDRtestkeyonly",
                             state=ApplianceState.ONLINE)  # fmt: skip
    return {
        "acme": acme,
        "admin": f.UserFactory(role=Role.MSP_ADMIN, username="ada"),
        "vm": f.VirtualMachineFactory(server=server, point=acme.point, state="running"),
        "invoice": f.InvoiceFactory(customer=acme.customer),
        "ssh_appliance": ssh,
    }


def _pages(w) -> list[str]:
    acme, appliance = w["acme"], w["acme"].point.server.appliance
    return [
        reverse("home"), reverse("customer_list"), reverse("user_list"), reverse("audit_list"),
        reverse("appliance_list"), reverse("appliance_detail", args=[appliance.pk]),
        reverse("server_detail", args=[acme.point.server.pk]), reverse("job_list"),
        reverse("alert_list"), reverse("restore_home"),
        reverse("restore_browse", args=[acme.point.pk]) + "?path=/Shared",
        reverse("restore_search", args=[acme.point.pk]) + "?q=price",
        reverse("billing_home"), reverse("billing_invoices"), reverse("billing_reports"),
        reverse("billing_invoice_detail", args=[w["invoice"].pk]), reverse("vm_list"),
        reverse("admin:index"),
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_pages_run_under_the_policy_with_nothing_refused(page, live_server, world, settings):
    settings.BDR_RPC_RETRY_DELAYS = []  # the enrolment page's appliance is nowhere
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Refused to" in m.text else None)
    page.on("pageerror", lambda exc: refused.append(str(exc)))
    # Every violation the browser reports to the page (the console does not show them all).
    page.add_init_script(REPORT_VIOLATIONS)
    sign_in(page, live_server, "ada", DEFAULT_PASSWORD)  # enrols TOTP: the QR code page
    for path in _pages(world):
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        assert "content-security-policy" in response.headers, path
        refused += page.evaluate("window.bdrViolations")
    assert refused == []

    # The VM page: noVNC's module ran under the nonce (it enables the button last), and
    # htmx's every-2-s refresh swaps the status in.
    page.goto(live_server.url + reverse("vm_detail", args=[world["vm"].pk]))
    page.wait_for_selector("#console-open:enabled", timeout=10_000)
    page.evaluate("document.getElementById('vm-status').dataset.seen = '1'")
    page.locator("#vm-status[data-seen]").wait_for(state="detached", timeout=10_000)
    assert page.locator("#vm-status").count() == 1
    assert refused + page.evaluate("window.bdrViolations") == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_behaviours_moved_out_of_inline_handlers_still_work(page, live_server, world, settings):
    settings.BDR_RPC_RETRY_DELAYS = []
    sign_in(page, live_server, "ada", DEFAULT_PASSWORD)
    # data-confirm: "Forget the pinned key" asks first; dismissed, nothing is forgotten.
    appliance = world["ssh_appliance"]
    page.goto(live_server.url + reverse("appliance_enrol", args=[appliance.pk]))
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("text=Forget the pinned key")
    assert asked and asked[0].startswith("Forget the pinned key?")
    appliance.refresh_from_db()
    assert appliance.host_key
    # data-copy-checked: put-back sends the files ticked in the browse form along.
    acme = world["acme"]
    page.goto(live_server.url + reverse("restore_browse", args=[acme.point.pk]) + "?path=/")
    page.check("input[name=paths][value='/Shared/']")
    page.click("text=Put the selected files back")
    page.evaluate("window.addEventListener('submit', (e) => e.preventDefault())")
    page.fill("input[name=folder]", "/srv/restores/here")
    page.click("text=Start restore")
    copied = page.eval_on_selector_all(
        "form[data-copy-checked] input[data-copied]", "inputs => inputs.map(i => i.value)"
    )
    assert copied == ["/Shared"]
