import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from appliances import services
from appliances.models import ProtectedServer
from portal.models import Role
from tests.factories import ApplianceFactory, UserFactory
from tests.support.signin import force_login_verified


@pytest.mark.parametrize(("model", "limit"), [("V1", 2), ("V2", 8)])
def test_service_refuses_a_server_past_the_model_limit(db, model, limit):
    appliance = ApplianceFactory(model=model)
    for i in range(limit):
        services.add_server(appliance, actor=None, name=f"s{i}")
    with pytest.raises(ValidationError, match=f"at most {limit} servers"):
        services.add_server(appliance, actor=None, name="one-too-many")
    assert ProtectedServer.objects.filter(appliance=appliance).count() == limit


def test_admin_refuses_a_third_server_on_a_v1(client, db):
    appliance = ApplianceFactory(model="V1")
    services.add_server(appliance, actor=None, name="a")
    services.add_server(appliance, actor=None, name="b")
    force_login_verified(client, UserFactory(role=Role.MSP_ADMIN))
    response = client.post(
        reverse("admin:appliances_protectedserver_add"),
        {
            "appliance": appliance.pk,
            "name": "c",
            "os": "linux",
            "cpus": 1,
            "memory_mib": 1024,
            "is_active": "on",
        },
    )
    assert response.status_code == 200 and b"at most 2 servers" in response.content
    assert appliance.servers.count() == 2


def test_new_server_gets_default_schedule_and_retention(db):
    server = services.add_server(ApplianceFactory(), actor=None, name="dc01")
    assert server.schedule.interval_minutes == 15 and server.schedule.runs_per_day == 96
    assert (
        server.retention.daily,
        server.retention.weekly,
        server.retention.monthly,
        server.retention.yearly,
    ) == (7, 4, 12, 3)


def test_warranty_is_two_years_from_purchase(db):
    import datetime as dt

    assert ApplianceFactory(purchased_on=dt.date(2024, 2, 29)).warranty_end == dt.date(2026, 2, 28)
    assert ApplianceFactory(purchased_on=dt.date(2026, 1, 15)).warranty_end == dt.date(2028, 1, 15)


def test_api_refuses_a_third_server_on_a_v1(client, db):
    appliance = ApplianceFactory(model="V1")
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    url = reverse("api-server-list")
    for name in ("a", "b"):
        response = client.post(
            url,
            {"appliance": appliance.pk, "name": name, "os": "linux", "volumes": {"C": "/dev/sdb"}},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
    response = client.post(
        url,
        {"appliance": appliance.pk, "name": "c", "os": "linux"},
        content_type="application/json",
    )
    assert response.status_code == 400 and "at most 2 servers" in response.content.decode()
    assert appliance.servers.count() == 2
    assert appliance.servers.get(name="a").volumes.get().source == "/dev/sdb"


def test_api_cannot_add_a_server_to_another_customers_appliance(client, db):
    appliance = ApplianceFactory()
    force_login_verified(client, UserFactory(role=Role.CUSTOMER_ADMIN))
    response = client.post(
        reverse("api-server-list"),
        {"appliance": appliance.pk, "name": "x"},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert not appliance.servers.exists()


@pytest.mark.parametrize(
    ("model", "asked", "given"),
    [("V1", (16, 65536), (2, 4096)), ("V2", (16, 65536), (8, 16384)), ("V2", (4, 8192), (4, 8192))],
)
def test_a_vms_cpus_and_memory_are_cut_to_the_model_table(db, model, asked, given):
    from restores.virtualization import vm_profile
    from tests.factories import ProtectedServerFactory, RecoveryPointFactory

    server = ProtectedServerFactory(appliance=ApplianceFactory(model=model), cpus=asked[0],
                                    memory_mib=asked[1])  # fmt: skip
    assert vm_profile(RecoveryPointFactory(server=server)) == given


def test_capacity_of_a_new_appliance_comes_from_the_model_table(db):
    from tests.factories import SiteFactory

    site = SiteFactory()
    appliance = services.create_appliance(actor=None, serial="CAP-1", name="cap", model="V2",
                                          customer=site.customer, site=site)  # fmt: skip
    assert appliance.capacity_bytes == 2 * 10**12
