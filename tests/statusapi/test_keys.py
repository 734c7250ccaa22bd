"""API keys: issued by MSP admins, shown once, stored hashed, expiring, revocable; every
refusal tested by trying it."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

import pytest
import time_machine
from django.urls import reverse

from portal.models import Role
from statusapi.models import ApiKey
from tests.factories import issue_api_key

pytestmark = pytest.mark.django_db
SERVERS = reverse("api-status-server-list")
NOW = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)


def test_the_key_is_stored_only_as_prefix_and_sha256(fleet):
    key, plaintext = issue_api_key()
    assert plaintext.startswith(f"bdr_{key.prefix}_")
    assert key.digest == hashlib.sha256(plaintext.encode()).hexdigest()
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert not any(plaintext in str(value) for value in row.values())


def test_expired_key_is_refused(fleet, api):
    with time_machine.travel(NOW, tick=False) as clock:
        _, plaintext = issue_api_key(now=NOW, expires_at=NOW + dt.timedelta(days=1))
        assert api(plaintext).get(SERVERS).status_code == 200
        clock.move_to(NOW + dt.timedelta(days=1))
        response = api(plaintext).get(SERVERS)
    assert response.status_code == 401
    assert response.json()["detail"] == "Unknown, expired or revoked API key."
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_refused(fleet, api, client_for):
    key, plaintext = issue_api_key()
    assert api(plaintext).get(SERVERS).status_code == 200
    client = client_for(Role.MSP_ADMIN)
    client.post(reverse("apikey_revoke", args=[key.pk]))
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert api(plaintext).get(SERVERS).status_code == 401


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # right prefix, wrong secret
        lambda k: k.replace("bdr_", "xyz_"),
        lambda k: "bdr_000000000000_" + k.split("_", 2)[2],  # unknown prefix
        lambda k: "",
        lambda k: k + " extra",
        lambda k: "bdr_é",
    ],
)
def test_forged_keys_are_refused(fleet, api, mangle):
    _, plaintext = issue_api_key()
    response = api(mangle(plaintext)).get(SERVERS)
    assert response.status_code == 401


def test_no_key_and_no_session_is_refused(fleet, client):
    assert client.get(SERVERS).status_code in (401, 403)


def test_last_used_time_is_recorded_at_most_once_a_minute(fleet, api):
    with time_machine.travel(NOW, tick=False) as clock:
        key, plaintext = issue_api_key(now=NOW)
        assert key.last_used_at is None
        api(plaintext).get(SERVERS)
        assert ApiKey.objects.get(pk=key.pk).last_used_at == NOW
        clock.move_to(NOW + dt.timedelta(seconds=30))
        api(plaintext).get(SERVERS)
        assert ApiKey.objects.get(pk=key.pk).last_used_at == NOW
        clock.move_to(NOW + dt.timedelta(minutes=2))
        api(plaintext).get(SERVERS)
        assert ApiKey.objects.get(pk=key.pk).last_used_at == NOW + dt.timedelta(minutes=2)


def test_msp_admin_issues_a_key_shown_once(fleet, client_for, api):
    client = client_for(Role.MSP_ADMIN)
    response = client.post(reverse("apikey_list"), {
        "name": "ConnectWise", "customer": fleet["acme"].pk, "access": "write",
        "lifetime_days": 90,
    })  # fmt: skip
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(name="ConnectWise")
    html = response.content.decode()
    plaintext = html.split("data-key>")[1].split("<")[0]
    assert plaintext.startswith(f"bdr_{key.prefix}_")
    assert key.customer == fleet["acme"] and key.can_write
    assert plaintext not in client.get(reverse("apikey_list")).content.decode()
    assert sorted(r["name"] for r in api(plaintext).get(SERVERS).json()["results"]) == [
        "dc01", "fs01",
    ]  # fmt: skip


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER])
def test_only_msp_admins_issue_or_revoke_keys(fleet, client_for, role):
    key, _ = issue_api_key()
    customer = fleet["acme"] if role in (Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER) else None
    client = client_for(role, customer)
    assert client.get(reverse("apikey_list")).status_code == 404
    response = client.post(reverse("apikey_list"), {"name": "x", "access": "write",
                                                    "lifetime_days": 90})  # fmt: skip
    assert response.status_code == 404
    assert client.post(reverse("apikey_revoke", args=[key.pk])).status_code == 404
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().revoked_at is None


def test_bad_key_form_input_says_why_and_issues_nothing(fleet, client_for):
    client = client_for(Role.MSP_ADMIN)
    response = client.post(reverse("apikey_list"), {"name": "x", "access": "admin",
                                                    "lifetime_days": 9999})  # fmt: skip
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_key_never_appears_in_logs_or_the_audit_log(fleet, api, client_for, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(Role.MSP_ADMIN)
    response = client.post(reverse("apikey_list"), {"name": "RMM", "access": "write",
                                                    "lifetime_days": 30})  # fmt: skip
    plaintext = response.content.decode().split("data-key>")[1].split("<")[0]
    api(plaintext).get(SERVERS)
    api(plaintext + "x").get(SERVERS)  # a refused key is not logged either
    api(plaintext).post(reverse("api-status-alert-acknowledge", args=[fleet["acme_alert"].pk]))
    secret = plaintext.split("_", 2)[2]
    assert caplog.records and secret not in caplog.text
    from portal.models import AuditEvent

    for event in AuditEvent.objects.all():
        assert secret not in str(event.detail) and secret not in event.object_repr
