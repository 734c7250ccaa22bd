"""Restore grants: a customer user restores only from the servers their admin granted them."""

import pytest
from django.urls import reverse

from portal.models import AuditEvent, Role
from restores.models import RestoreGrant
from tests import factories as f
from tests.support.signin import force_login_verified


@pytest.fixture
def acme(db):
    customer = f.CustomerFactory(name="Acme")
    appliance = f.ApplianceFactory(customer=customer)
    dc01 = f.ProtectedServerFactory(appliance=appliance, name="dc01", hostname="dc01.acme")
    files01 = f.ProtectedServerFactory(appliance=appliance, name="files01", hostname="files01.acme")
    return {
        "customer": customer,
        "dc01": dc01,
        "files01": files01,
        "admin": f.UserFactory(role=Role.CUSTOMER_ADMIN, customer=customer),
        "user": f.UserFactory(role=Role.CUSTOMER_USER, customer=customer),
    }


def _home(client) -> str:
    return client.get(reverse("restore_home")).content.decode()


def test_customer_user_without_a_grant_sees_no_server(client, acme):
    force_login_verified(client, acme["user"])
    page = _home(client)
    assert "dc01.acme" not in page and "files01.acme" not in page
    url = reverse("restore_server_points", args=[acme["dc01"].pk])
    assert client.get(url).status_code == 404


def test_customer_user_sees_only_the_granted_server(client, acme):
    f.RestoreGrantFactory(user=acme["user"], server=acme["files01"])
    point = f.RecoveryPointFactory(server=acme["dc01"])
    force_login_verified(client, acme["user"])
    page = _home(client)
    assert "files01.acme" in page and "dc01.acme" not in page
    assert (
        client.get(reverse("restore_server_points", args=[acme["files01"].pk])).status_code == 200
    )
    assert client.get(reverse("restore_browse", args=[point.pk])).status_code == 404


def test_customer_admin_sees_every_server_of_their_customer_without_grants(client, acme):
    force_login_verified(client, acme["admin"])
    page = _home(client)
    assert "files01.acme" in page and "dc01.acme" in page


def test_customer_admin_grants_a_server_audited(client, acme):
    force_login_verified(client, acme["admin"])
    url = reverse("restore_grants", args=[acme["user"].pk])
    page = client.get(url).content.decode()
    assert "dc01" in page and "files01" in page
    response = client.post(url, {"servers": [acme["files01"].pk]})
    assert response.status_code == 302
    assert list(RestoreGrant.objects.values_list("user", "server")) == [
        (acme["user"].pk, acme["files01"].pk)
    ]
    event = AuditEvent.objects.get(action="restore.grants_changed")
    assert event.actor == acme["admin"] and event.customer == acme["customer"]
    assert event.detail == {"added": [f"{acme['files01'].appliance.name}/files01"], "removed": []}
    client.post(url, {"servers": [acme["dc01"].pk]})
    assert list(RestoreGrant.objects.values_list("server", flat=True)) == [acme["dc01"].pk]
    client.post(url, {"servers": [acme["dc01"].pk]})  # nothing changed: nothing audited
    assert AuditEvent.objects.filter(action="restore.grants_changed").count() == 2


def test_a_forged_grant_of_another_customers_server_is_refused(client, acme):
    other = f.ProtectedServerFactory(name="ZZOTHER")
    f.RestoreGrantFactory(user=acme["user"], server=acme["files01"])
    force_login_verified(client, acme["admin"])
    url = reverse("restore_grants", args=[acme["user"].pk])
    assert "ZZOTHER" not in client.get(url).content.decode()
    response = client.post(url, {"servers": [acme["dc01"].pk, other.pk]})
    assert response.status_code == 400
    assert "not one of this customer" in response.content.decode()
    assert list(RestoreGrant.objects.values_list("server", flat=True)) == [acme["files01"].pk]
    assert client.post(url, {"servers": ["x"]}).status_code == 400
    assert not AuditEvent.objects.filter(action="restore.grants_changed").exists()


def test_msp_admin_grants_but_technicians_and_customer_users_may_not(client, acme):
    url = reverse("restore_grants", args=[acme["user"].pk])
    for role in (Role.TECHNICIAN,):
        force_login_verified(client, f.UserFactory(role=role))
        assert client.post(url, {"servers": [acme["dc01"].pk]}).status_code == 404
    force_login_verified(client, acme["user"])
    assert client.post(url, {"servers": [acme["dc01"].pk]}).status_code == 404
    assert not RestoreGrant.objects.exists()
    force_login_verified(client, f.UserFactory(role=Role.MSP_ADMIN))
    assert client.post(url, {"servers": [acme["dc01"].pk]}).status_code == 302
    assert RestoreGrant.objects.get().server == acme["dc01"]


def test_only_customer_users_have_a_grants_page(client, acme):
    force_login_verified(client, acme["admin"])
    assert client.get(reverse("restore_grants", args=[acme["admin"].pk])).status_code == 404


def test_user_list_links_each_customer_user_to_their_grants(client, acme):
    f.RestoreGrantFactory(user=acme["user"], server=acme["files01"])
    force_login_verified(client, acme["admin"])
    page = client.get(reverse("user_list")).content.decode()
    assert reverse("restore_grants", args=[acme["user"].pk]) in page and "1 server<" in page


def test_unticking_every_server_removes_every_grant(client, acme):
    f.RestoreGrantFactory(user=acme["user"], server=acme["files01"])
    force_login_verified(client, acme["admin"])
    response = client.post(reverse("restore_grants", args=[acme["user"].pk]), {})
    assert response.status_code == 302 and not RestoreGrant.objects.exists()
    event = AuditEvent.objects.get(action="restore.grants_changed")
    assert event.detail["removed"] == [f"{acme['files01'].appliance.name}/files01"]
