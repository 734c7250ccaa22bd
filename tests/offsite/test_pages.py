"""The off-site pages through the test client: the vault inventory (MSP admins only), an
appliance's vault and throttle pushed to its real agent, the off-site state for each role."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from offsite.models import ApplianceOffsite, Vault
from portal.models import AuditEvent, Role
from tests import factories as f
from tests.offsite.test_checks import HOST_KEY
from tests.support.agent_store import rpc_session
from tests.support.signin import force_login_verified

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2100, 1, 4, 12, 0, tzinfo=dt.UTC)  # the pages' clock where lag is shown
SSH_VAULT = {
    "name": "ams1",
    "data_centre": "Amsterdam",
    "endpoint": "ssh://bdr-vault@vault1.example.net/srv/bdr-vault/vault",
    "host_key": f"{HOST_KEY} root@vault1",
    "capacity_gb": "500000",
}


def test_msp_admin_adds_and_edits_a_vault(client_for):
    client = client_for(Role.MSP_ADMIN)
    response = client.post(reverse("vault_create"), SSH_VAULT)
    assert response.status_code == 302
    vault = Vault.objects.get()
    assert (vault.host_key, vault.capacity_bytes) == (HOST_KEY, 500_000 * 2**30)
    second = f.VaultFactory(name="fra1")
    response = client.post(reverse("vault_edit", args=[vault.pk]),
                           {**SSH_VAULT, "second_vault": second.pk})  # fmt: skip
    assert response.status_code == 302
    vault.refresh_from_db()
    assert vault.second_vault == second
    assert list(AuditEvent.objects.values_list("action", flat=True).order_by("id")) == [
        "vault.create", "vault.update"
    ]  # fmt: skip
    page = client.get(reverse("vault_list")).content.decode()
    assert "ams1" in page and "fra1" in page and "488.3" in page


@pytest.mark.parametrize(
    "change, field, says",
    [
        ({"host_key": ""}, "host_key", "needs its host key"),
        ({"endpoint": "ssh://vault1/srv"}, "endpoint", "ssh://user@host[:port]/DIR"),
        ({"capacity_gb": "-1"}, "capacity_gb", "greater than or equal to 0"),
    ],
)
def test_a_bad_vault_is_a_form_error_and_nothing_is_saved(client_for, change, field, says):
    client = client_for(Role.MSP_ADMIN)
    response = client.post(reverse("vault_create"), {**SSH_VAULT, **change})
    assert response.status_code == 200
    assert says in " ".join(response.context["form"].errors[field])
    assert not Vault.objects.exists()


def test_a_vault_cannot_replicate_to_itself(client_for):
    client = client_for(Role.MSP_ADMIN)
    vault = f.VaultFactory()
    response = client.post(reverse("vault_edit", args=[vault.pk]), {
        "name": vault.name, "data_centre": "x", "endpoint": vault.endpoint,
        "capacity_gb": "1", "second_vault": vault.pk})  # fmt: skip
    assert "second_vault" in response.context["form"].errors
    vault.refresh_from_db()
    assert vault.second_vault is None


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER])
def test_only_msp_admins_reach_the_vault_inventory(client_for, role):
    client = client_for(role)
    vault = f.VaultFactory()
    for url in (reverse("vault_list"), reverse("vault_create"),
                reverse("vault_edit", args=[vault.pk])):  # fmt: skip
        assert client.get(url).status_code == 404
        assert client.post(url, SSH_VAULT).status_code == 404
    assert Vault.objects.count() == 1


def _offsite_post(client, appliance, data):
    return client.post(reverse("appliance_offsite", args=[appliance.pk]), data)


def test_technician_sets_vault_and_throttle_and_the_agent_has_them(client_for, appliance, store):
    client = client_for(Role.TECHNICIAN)
    vault = f.VaultFactory(name="ams1", endpoint=SSH_VAULT["endpoint"], host_key=HOST_KEY)
    assert _offsite_post(client, appliance, {"vault-vault": vault.pk}).status_code == 302
    response = _offsite_post(client, appliance, {"throttle-windows": "mon-fri 08:00-18:00 "
                                                 "512kbit;* * 20mbit"})  # fmt: skip
    assert response.status_code == 302
    with rpc_session(store) as rpc:
        settings = rpc.call("settings.get")
    assert settings["offsite_target"] == vault.endpoint
    assert settings["offsite_host_key"] == HOST_KEY
    assert settings["offsite_windows"] == "mon-fri 08:00-18:00 512kbit; * * 20mbit"
    assert settings["serial"] == "SER-0042" and settings["timezone"] == appliance.site.timezone
    offsite = ApplianceOffsite.objects.get(appliance=appliance)
    assert offsite.pushed_at is not None and offsite.push_error == ""
    actions = AuditEvent.objects.values_list("action", flat=True).order_by("id")
    assert list(actions) == ["offsite.vault_assigned", "offsite.windows_changed"]


def test_bad_throttle_windows_are_refused_before_the_appliance_hears_of_them(
    client_for, appliance, store
):
    client = client_for(Role.TECHNICIAN)
    response = _offsite_post(client, appliance, {"throttle-windows": "weekdays 8-18 fast"})
    assert response.status_code == 200
    assert "bad hours" in " ".join(response.context["throttle_form"].errors["windows"])
    with rpc_session(store) as rpc:
        assert rpc.call("settings.get")["offsite_windows"] == ""
    assert not AuditEvent.objects.exists()


def test_a_change_for_an_offline_appliance_is_saved_and_says_when_it_goes(client_for, appliance):
    appliance.state = "offline"
    appliance.save()
    client = client_for(Role.TECHNICIAN)
    response = _offsite_post(client, appliance, {"throttle-windows": "* * 4M"})
    page = client.get(response["Location"]).content.decode()
    assert "not online; the change will be sent before its next replication" in page
    assert ApplianceOffsite.objects.get(appliance=appliance).windows == "* * 4M"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def _lagging_world(now):
    """Two customers' appliances with off-site state; the other one's vault is marked."""
    mine = f.ApplianceOffsiteFactory(
        vault=f.VaultFactory(name="ams1"), last_offsite_at=now - dt.timedelta(hours=30),
        waiting_since=now - dt.timedelta(hours=30), queued_bytes=3 * 2**30,
        eta_at=now + dt.timedelta(hours=2),
    )  # fmt: skip
    other = f.ApplianceOffsiteFactory(vault=f.VaultFactory(name="ZZOTHER-vault"))
    return mine, other


def test_a_customer_admin_sees_their_appliances_offsite_state_read_only(client, make_user, frozen):
    mine, other = _lagging_world(NOW)
    force_login_verified(client, make_user(Role.CUSTOMER_ADMIN, mine.appliance.customer))
    page = client.get(reverse("offsite_home")).content.decode()
    assert mine.appliance.name in page and "ams1" in page and "30 h" in page
    assert "ZZOTHER" not in page and other.appliance.name not in page
    assert reverse("appliance_offsite", args=[mine.appliance.pk]) not in page  # read only
    state = client.get(reverse("appliance_offsite_state", args=[mine.appliance.pk]))
    assert state.status_code == 200 and "3.0\xa0GB" in state.content.decode()
    for name in ("appliance_offsite_state", "appliance_offsite", "appliance_replicate"):
        url = reverse(name, args=[other.appliance.pk])
        assert client.get(url).status_code == 404 and client.post(url).status_code == 404
    assert client.get(reverse("appliance_offsite", args=[mine.appliance.pk])).status_code == 404


def test_a_customer_user_sees_only_appliances_of_servers_granted_to_them(client, make_user):
    mine, _ = _lagging_world(NOW)
    user = make_user(Role.CUSTOMER_USER, mine.appliance.customer)
    force_login_verified(client, user)
    url = reverse("appliance_offsite_state", args=[mine.appliance.pk])
    assert mine.appliance.name not in client.get(reverse("offsite_home")).content.decode()
    assert client.get(url).status_code == 404
    f.RestoreGrantFactory(user=user, server=f.ProtectedServerFactory(appliance=mine.appliance))
    assert mine.appliance.name in client.get(reverse("offsite_home")).content.decode()
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("name", ["offsite_home", "vault_list"])
def test_offsite_list_pages_keep_their_query_count_whatever_the_fleet(
    client_for, django_assert_max_num_queries, name
):
    client = client_for(Role.MSP_ADMIN)
    vaults = [f.VaultFactory(second_vault=f.VaultFactory()) for _ in range(2)]
    f.ApplianceOffsiteFactory(vault=vaults[0])
    with django_assert_max_num_queries(12) as small:
        assert client.get(reverse(name)).status_code == 200
    for i in range(30):
        f.ApplianceOffsiteFactory(vault=vaults[i % 2])
        f.ApplianceFactory()  # no off-site record at all
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(reverse(name)).status_code == 200


def test_technician_sets_a_servers_offsite_retention_and_the_agent_has_it(
    client_for, appliance, store
):
    client = client_for(Role.TECHNICIAN)
    server = f.ProtectedServerFactory(appliance=appliance, name="dc01")
    url = reverse("server_offsite_retention", args=[server.pk])
    assert "7" in client.get(url).content.decode()  # the defaults: seven yearly points
    form = {"daily": "14", "weekly": "8", "monthly": "24", "yearly": "7"}
    assert client.post(url, form).status_code == 302
    with rpc_session(store) as rpc:
        policies = rpc.call("settings.get")["offsite_policies"]
    assert policies == {"dc01": {"daily": 14, "weekly": 8, "monthly": 24, "yearly": 7}}
    response = client.post(url, {**form, "yearly": "-1"})
    assert response.status_code == 200 and "yearly" in response.context["form"].errors
    assert AuditEvent.objects.filter(action="offsite.retention_changed").count() == 1


@pytest.mark.parametrize("role", [Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER])
def test_customers_cannot_change_offsite_retention(client_for, role):
    client = client_for(role)
    server = f.ProtectedServerFactory(appliance__customer=client.user.customer)
    f.RestoreGrantFactory(user=client.user, server=server)
    url = reverse("server_offsite_retention", args=[server.pk])
    assert client.get(url).status_code == 404
    assert (
        client.post(url, {"daily": "0", "weekly": "0", "monthly": "0", "yearly": "0"}).status_code
        == 404
    )
