"""The Status API with bearer keys: what each scope reads, filters, cursor pages, and
acknowledging alerts; a constant number of queries whatever the fleet's size."""

from __future__ import annotations

import pytest
from django.urls import reverse

from appliances.models import Alert
from portal.models import AuditEvent
from tests.factories import ProtectedServerFactory, issue_api_key
from tests.statusapi.conftest import status

pytestmark = pytest.mark.django_db
SERVERS = reverse("api-status-server-list")
ALERTS = reverse("api-status-alert-list")
FLEET = reverse("api-status-fleet")


def names(response) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    return [row["name"] for row in response.json()["results"]]


def test_msp_key_reads_every_customers_servers_with_state_reason_and_retention(fleet, api):
    _, key = issue_api_key()
    body = api(key).get(SERVERS).json()
    rows = {row["name"]: row for row in body["results"]}
    assert set(rows) == {"dc01", "fs01", "web01"}
    assert rows["dc01"]["state"] == "unprotected"
    assert rows["dc01"]["reason"] == "no backup since 4 Nov 10:00 UTC"
    assert rows["dc01"]["customer"] == "Acme" and rows["dc01"]["appliance"] == "acme-nas"
    assert rows["web01"]["retention"] == "short"
    assert rows["web01"]["retention_summary"] == "3 dailies missing"
    assert rows["fs01"]["retention"] == "compliant"


def test_servers_filter_by_state_and_customer(fleet, api):
    _, key = issue_api_key()
    client = api(key)
    assert names(client.get(SERVERS, {"state": "unprotected"})) == ["dc01"]
    assert names(client.get(SERVERS, {"customer": fleet["globex"].pk})) == ["web01"]
    bad = client.get(SERVERS, {"state": "fine"})
    assert bad.status_code == 400 and "state must be one of" in bad.json()["detail"]


def test_fleet_counts_servers_by_state(fleet, api):
    _, key = issue_api_key()
    body = api(key).get(FLEET).json()
    counts = {row["state"]: row["servers"] for row in body["by_state"]}
    assert counts == {"unprotected": 1, "warning": 1, "unknown": 0, "paused": 0, "protected": 1}
    assert body["servers"] == 3 and body["retention_short"] == 1


def test_customer_key_counts_and_lists_only_its_customer(fleet, api):
    _, key = issue_api_key(customer=fleet["acme"])
    client = api(key)
    assert sorted(names(client.get(SERVERS))) == ["dc01", "fs01"]
    assert client.get(FLEET).json()["servers"] == 2
    alerts = client.get(ALERTS).json()["results"]
    assert [a["message"] for a in alerts] == ["dc01 unprotected"]
    # Asking for the other customer's servers by filter is a 404 too, not an empty list.
    assert client.get(SERVERS, {"customer": fleet["globex"].pk}).status_code == 404


def test_customer_key_reading_another_customers_server_gets_404(fleet, api):
    _, key = issue_api_key(customer=fleet["acme"])
    client = api(key)
    url = reverse("api-status-server-detail", args=[fleet["web01"].pk])
    response = client.get(url)
    assert response.status_code == 404 and b"web01" not in response.content
    assert (
        client.get(reverse("api-status-server-detail", args=[fleet["dc01"].pk])).json()["state"]
        == "unprotected"
    )


def test_cursor_pagination_walks_every_server_once(fleet, api):
    appliance = fleet["dc01"].appliance
    for n in range(7):
        status(ProtectedServerFactory(appliance=appliance, name=f"extra{n}"), "protected")
    _, key = issue_api_key()
    client, seen, url = api(key), [], SERVERS + "?page_size=4"
    while url:
        body = client.get(url).json()
        assert "count" not in body  # cursor pages never COUNT the fleet
        seen += [row["name"] for row in body["results"]]
        url = body["next"]
    assert len(seen) == 10 and len(set(seen)) == 10


def test_alerts_list_filters_by_state(fleet, api):
    _, key = issue_api_key()
    client = api(key)
    Alert.objects.filter(pk=fleet["globex_alert"].pk).update(
        acknowledged_at=fleet["dc01"].created_at
    )
    body = client.get(ALERTS, {"state": "open"}).json()
    assert [a["message"] for a in body["results"]] == ["dc01 unprotected"]
    acked = client.get(ALERTS, {"state": "acknowledged"}).json()["results"]
    assert [a["state"] for a in acked] == ["acknowledged"]


def test_read_write_key_acknowledges_an_alert_and_the_audit_names_the_key(fleet, api):
    key, plaintext = issue_api_key(access="write")
    url = reverse("api-status-alert-acknowledge", args=[fleet["acme_alert"].pk])
    response = api(plaintext).post(url)
    assert response.status_code == 200 and response.json()["state"] == "acknowledged"
    alert = Alert.objects.get(pk=fleet["acme_alert"].pk)
    assert alert.acknowledged_at is not None and alert.acknowledged_by == key.created_by
    event = AuditEvent.objects.get(action="alert.acknowledged")
    assert event.detail["via"] == f"API key {key.prefix}"
    assert api(plaintext).post(url).status_code == 409  # once only


def test_read_only_key_acknowledging_gets_403_and_changes_nothing(fleet, api):
    _, plaintext = issue_api_key(access="read")
    url = reverse("api-status-alert-acknowledge", args=[fleet["acme_alert"].pk])
    response = api(plaintext).post(url)
    assert response.status_code == 403
    assert Alert.objects.get(pk=fleet["acme_alert"].pk).acknowledged_at is None
    assert not AuditEvent.objects.filter(action="alert.acknowledged").exists()


def test_customer_read_write_key_cannot_acknowledge_another_customers_alert(fleet, api):
    _, plaintext = issue_api_key(customer=fleet["acme"], access="write")
    url = reverse("api-status-alert-acknowledge", args=[fleet["globex_alert"].pk])
    assert api(plaintext).post(url).status_code == 404
    assert Alert.objects.get(pk=fleet["globex_alert"].pk).acknowledged_at is None


@pytest.mark.parametrize("url", [SERVERS, ALERTS])
def test_list_endpoints_take_a_constant_number_of_queries(
    fleet, api, url, django_assert_max_num_queries
):
    _, key = issue_api_key()
    client = api(key)
    client.get(url)  # the first use writes "last used"; later ones within a minute do not
    appliance = fleet["dc01"].appliance
    for n in range(30):
        server = ProtectedServerFactory(appliance=appliance, name=f"more{n}")
        status(server, "warning")
        Alert.objects.create(customer=appliance.customer, appliance=appliance, server=server,
                             kind="backup_failed", message=f"more{n} failed")  # fmt: skip
    with django_assert_max_num_queries(4):  # the key, the page (and the request's savepoint)
        response = client.get(url, {"page_size": 50})
    assert len(response.json()["results"]) >= 31
