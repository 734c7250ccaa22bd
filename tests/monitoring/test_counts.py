"""The counts by state the cycle keeps (monitoring/counts.py): equal to the statuses after
every cycle, written only when they change, and what the fleet pages' tiles show."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appliances.models import RetentionPolicy, Schedule
from monitoring import engine
from monitoring.models import StateCount
from portal.models import Role
from tests.factories import (
    ApplianceFactory,
    CustomerFactory,
    ProtectedServerFactory,
    RecoveryPointFactory,
)
from tests.support.signin import force_login_verified

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen():
    import time_machine

    with time_machine.travel(NOW, tick=False):
        yield


def server(appliance, name, minutes_ago):
    s = ProtectedServerFactory(appliance=appliance, name=name, hostname=f"{name}.corp.local")
    type(s).objects.filter(pk=s.pk).update(created_at=NOW - dt.timedelta(days=30))
    Schedule.objects.create(server=s, weekdays=list(range(7)))
    RetentionPolicy.objects.create(server=s, daily=1, weekly=0, monthly=0, yearly=0)
    RecoveryPointFactory(server=s, taken_at=NOW - dt.timedelta(minutes=minutes_ago))
    return s


@pytest.fixture
def fleet():
    acme, globex = CustomerFactory(name="Acme"), CustomerFactory(name="Globex")
    nas = ApplianceFactory(customer=acme, name="acme-nas", model="V2", state="online")
    small = ApplianceFactory(customer=globex, name="globex-nas", model="V1", state="online",
                             used_bytes=90, capacity_bytes=100)  # fmt: skip
    found = {"acme": acme, "globex": globex, "nas": nas, "small": small}
    found |= {"dc01": server(nas, "dc01", 10), "fs01": server(nas, "fs01", 600)}
    found["web01"] = server(small, "web01", 5)  # its appliance's disk: a warning
    engine.run_cycle(NOW)
    return found


def stored():
    return {
        (c.customer.name if c.customer else "fleet", c.model, c.state): c.servers
        for c in StateCount.objects.select_related("customer")
    }


def test_the_cycle_counts_each_customers_servers_by_model_and_state(fleet):
    assert stored() == {
        ("Acme", "V2", "protected"): 1, ("Acme", "V2", "unprotected"): 1,
        ("Globex", "V1", "warning"): 1,
        ("fleet", "V2", "protected"): 1, ("fleet", "V2", "unprotected"): 1,
        ("fleet", "V1", "warning"): 1,
    }  # fmt: skip


def test_a_flip_moves_the_counts_and_an_unchanged_cycle_writes_none(fleet):
    RecoveryPointFactory(server=fleet["fs01"], taken_at=NOW - dt.timedelta(minutes=1))
    report = engine.run_cycle(NOW + dt.timedelta(minutes=1))
    assert report.counts_written == 4  # Acme's and the fleet's: unprotected gone, protected 2
    assert stored() == {
        ("Acme", "V2", "protected"): 2, ("Globex", "V1", "warning"): 1,
        ("fleet", "V2", "protected"): 2, ("fleet", "V1", "warning"): 1,
    }  # fmt: skip
    assert engine.run_cycle(NOW + dt.timedelta(minutes=2)).counts_written == 0


def test_one_appliances_cycle_moves_its_customer_and_the_fleet_totals(fleet):
    RecoveryPointFactory(server=fleet["fs01"], taken_at=NOW - dt.timedelta(minutes=1))
    engine.run_cycle(NOW + dt.timedelta(minutes=1), appliance_ids=[fleet["nas"].pk])
    assert stored()[("fleet", "V2", "protected")] == 2
    assert ("fleet", "V2", "unprotected") not in stored()
    assert stored()[("fleet", "V1", "warning")] == 1


def test_a_deleted_server_leaves_the_counts_at_the_next_full_cycle(fleet):
    fleet["web01"].delete()
    engine.run_cycle(NOW + dt.timedelta(minutes=1))
    assert ("Globex", "V1", "warning") not in stored()
    assert ("fleet", "V1", "warning") not in stored()


def tiles(client, **params):
    """The tiles' numbers by state, those above zero."""
    response = client.get(reverse("fleet"), params)
    assert response.status_code == 200
    found = re.findall(r"<b>(\d+)</b> (\w+)</a>", response.content.decode())
    return {state: int(n) for n, state in found if n != "0"}


def test_the_tiles_show_the_counts_of_the_filter(client_for, fleet):
    client = client_for(Role.TECHNICIAN)
    assert tiles(client) == {"unprotected": 1, "warning": 1, "protected": 1}
    assert tiles(client, model="V2") == {"unprotected": 1, "protected": 1}
    assert tiles(client, customer=fleet["globex"].pk, state="protected") == {"warning": 1}


def test_a_customer_admins_tiles_count_only_their_customer(client, fleet, make_user):
    force_login_verified(client, make_user(Role.CUSTOMER_ADMIN, customer=fleet["acme"]))
    assert tiles(client) == {"unprotected": 1, "protected": 1}
    assert client.get(reverse("fleet"), {"customer": fleet["globex"].pk}).status_code == 404


def test_the_dashboard_counts_no_status(client_for, fleet):
    client = client_for(Role.TECHNICIAN)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(reverse("fleet"), {"state": "warning", "model": "V1"}).status_code == 200
    statuses = [q["sql"] for q in ctx.captured_queries if "monitoring_serverstatus" in q["sql"]]
    assert len(statuses) == 1 and "COUNT(" not in statuses[0]


@pytest.mark.parametrize(
    "role, params",
    [
        (Role.TECHNICIAN, {"state": "warning", "model": "V1"}),
        (Role.TECHNICIAN, {"state": "unprotected"}),
        (Role.CUSTOMER_ADMIN, {}),
    ],
)
def test_the_filtered_list_uses_a_constant_number_of_queries(
    client, fleet, make_user, role, params, django_assert_max_num_queries
):
    force_login_verified(client, make_user(role, customer=fleet["acme"]))
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(reverse("fleet"), params).status_code == 200
    for i in range(12):  # more servers of every state, for both customers
        server(fleet["nas"], f"more{i}", 10 if i % 2 else 600)
        server(fleet["small"], f"small{i}", 5)
    engine.run_cycle(NOW)
    with django_assert_max_num_queries(len(ctx.captured_queries)):
        assert client.get(reverse("fleet"), params).status_code == 200
