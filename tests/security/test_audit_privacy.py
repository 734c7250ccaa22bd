"""Issue 14, item 8: customer admins do not learn the MSP's people or addresses from the
audit log. A technician and a customer user each open a folder of the customer's backup; the
customer admin's audit pages show the technician as "MSP staff" with no address (their own
user by name and address); the MSP's admin still sees everything."""

from __future__ import annotations

from django.urls import reverse

from portal.models import AuditEvent, Role
from tests import factories as f
from tests.support.signin import force_login_verified
from tests.support.tenants import make_tenant

STAFF_ADDRESS, CUSTOMER_ADDRESS = "203.0.113.7", "198.51.100.9"


def _page(client, user, url: str) -> str:
    client.logout()
    force_login_verified(client, user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_customer_admins_see_msp_staff_not_their_names_or_addresses(client, db, limits_store):
    acme = make_tenant(limits_store, "Acme", users=1)
    acme_admin = acme.users[0]
    tech = f.UserFactory(role=Role.TECHNICIAN, username="tina-tech")
    clerk = f.UserFactory(role=Role.CUSTOMER_USER, customer=acme.customer, username="carl-clerk")
    f.RestoreGrantFactory(user=clerk, server=acme.point.server)
    browse = reverse("restore_browse", args=[acme.point.pk])
    for user, address in ((tech, STAFF_ADDRESS), (clerk, CUSTOMER_ADDRESS)):
        force_login_verified(client, user)
        assert client.get(browse, {"path": "/Shared"}, REMOTE_ADDR=address).status_code == 200
    assert AuditEvent.objects.filter(action="restore.browse", actor_is_msp=True).count() == 1

    for url in (reverse("audit_list"), reverse("restore_audit")):
        seen = _page(client, acme_admin, url)
        assert "MSP staff" in seen and "carl-clerk" in seen
        assert "tina-tech" not in seen and STAFF_ADDRESS not in seen
    assert CUSTOMER_ADDRESS in _page(client, acme_admin, reverse("audit_list"))

    msp_admin = f.UserFactory(role=Role.MSP_ADMIN)
    seen = _page(client, msp_admin, reverse("audit_list"))
    assert "tina-tech" in seen and STAFF_ADDRESS in seen and "MSP staff" not in seen
    assert "carl-clerk" in seen and CUSTOMER_ADDRESS in seen
    assert "tina-tech" in _page(client, msp_admin, reverse("restore_audit"))
