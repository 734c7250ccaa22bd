"""Restore grants in Chromium: a customer user without a grant sees no server; their admin
grants one on the user's grants page and the user then sees that server only."""

import pytest

from portal.models import Role
from tests import factories as f
from tests.browser.conftest import sign_in


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_customer_user_sees_only_the_servers_their_admin_grants(browser, live_server):
    customer = f.CustomerFactory(name="Acme")
    appliance = f.ApplianceFactory(customer=customer, name="acme-nas")
    f.ProtectedServerFactory(appliance=appliance, name="dc01", hostname="dc01.acme.local")
    f.ProtectedServerFactory(appliance=appliance, name="files01", hostname="files01.acme.local")
    f.UserFactory(role=Role.CUSTOMER_ADMIN, customer=customer, username="acme-admin")
    f.UserFactory(role=Role.CUSTOMER_USER, customer=customer, username="acme-user")

    user = browser.new_context().new_page()
    sign_in(user, live_server, "acme-user", f.DEFAULT_PASSWORD)
    user.wait_for_selector("h1:has-text('Restore files')")
    table = user.locator("main table, table").first
    assert "You may not restore from any server yet" in table.inner_text()
    assert user.locator("a:has-text('.acme.local')").count() == 0

    admin = browser.new_context().new_page()
    sign_in(admin, live_server, "acme-admin", f.DEFAULT_PASSWORD)
    admin.goto(f"{live_server.url}/users/")
    admin.locator("tr", has_text="acme-user").locator("a:has-text('0 servers')").click()
    admin.wait_for_selector("h1:has-text('Restore grants of acme-user')")
    admin.get_by_label("files01 (acme-nas)").check()
    admin.click("button:has-text('Save grants')")
    admin.wait_for_selector("text=Restore grants of acme-user saved.")

    user.reload()
    assert user.locator("a:has-text('files01.acme.local')").count() == 1
    assert user.locator("a:has-text('dc01.acme.local')").count() == 0
    user.context.close()
    admin.context.close()
