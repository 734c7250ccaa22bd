"""The notification pages: MSP admins only, tenant-scoped, CSRF, the secret shown once, the
delivery log with replay (same webhook-id), a disabled endpoint shown with its reason, and a
constant number of queries."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from monitoring.models import Delivery, EmailRecipient, WebhookEndpoint
from portal.models import Role
from tests.factories import CustomerFactory
from tests.monitoring.conftest import T0
from tests.monitoring.notify_lab import admin, deliver, endpoint, notice, receiver
from tests.support.signin import force_login_verified

__all__ = ["admin", "receiver"]  # fixtures
pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(client, admin):
    force_login_verified(client, admin)
    return client


def test_an_admin_adds_a_recipient_for_one_customer(boss):
    acme = CustomerFactory(name="Acme")
    url = reverse("recipient_new")
    none = boss.post(url, {"address": "it@acme.example", "customer": acme.pk})
    assert none.status_code == 200 and "Choose the primary channel" in none.content.decode()
    response = boss.post(url, {"address": "IT@acme.example", "customer": acme.pk,
                               "primary": "on"})  # fmt: skip
    assert response.status_code == 302
    recipient = EmailRecipient.objects.get()
    assert (recipient.address, recipient.customer, recipient.primary) == (
        "it@acme.example", acme, True)  # fmt: skip
    again = boss.post(url, {"address": "it@acme.example", "customer": acme.pk, "primary": "on"})
    assert "already receives these notices" in again.content.decode()
    html = boss.get(reverse("notifications")).content.decode()
    assert 'data-recipient="it@acme.example"' in html and "Acme" in html
    boss.post(reverse("recipient_delete", args=[recipient.pk]))
    assert not EmailRecipient.objects.exists()


def test_the_secret_is_shown_once_when_made_and_when_rotated(boss, receiver):
    response = boss.post(reverse("webhook_new"), {"name": "PSA", "url": receiver.url(),
                                                  "primary": "on"})  # fmt: skip
    html = response.content.decode()
    hook = WebhookEndpoint.objects.get()
    assert "shown only this once" in html and hook.secret in html
    assert "no-store" in response["Cache-Control"]
    detail = boss.get(reverse("webhook_endpoint", args=[hook.pk])).content.decode()
    assert hook.secret not in detail and "whsec_" not in detail
    rotated = boss.post(reverse("webhook_rotate", args=[hook.pk])).content.decode()
    hook.refresh_from_db()
    assert hook.secret in rotated and hook.previous_secret not in rotated
    assert "previous secret keeps signing too" in rotated


def test_a_bad_url_is_one_clear_line_and_changes_nothing(boss, settings):
    settings.BDR_WEBHOOK_ALLOW_PRIVATE = False
    response = boss.post(reverse("webhook_new"), {"name": "x", "url": "http://127.0.0.1:8000/",
                                                  "primary": "on"})  # fmt: skip
    html = response.content.decode()
    assert response.status_code == 200 and "an address inside the network" in html
    assert "Traceback" not in html and not WebhookEndpoint.objects.exists()


def test_replay_from_the_page_resends_the_same_message(boss, admin, receiver, clock):
    hook, secret = endpoint(admin, receiver.url())
    notice()
    deliver(clock, T0)
    d = Delivery.objects.get()
    page = boss.get(reverse("webhook_endpoint", args=[hook.pk])).content.decode()
    assert d.message_id in page and "HTTP 200" in page and "Replay" in page
    later = T0 + dt.timedelta(hours=2)
    clock.move_to(later)
    response = boss.post(reverse("delivery_replay", args=[d.pk]))
    assert response.status_code == 302
    deliver(clock, later)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == d.message_id
    assert first.body == second.body
    assert second.headers["webhook-timestamp"] == str(int(later.timestamp()))
    assert Webhook(secret).verify(second.body, second.headers)
    d.refresh_from_db()
    assert (d.state, d.attempts) == ("delivered", 2)


def test_a_disabled_endpoint_shows_why_and_refuses_replay_until_enabled(
    boss, admin, receiver, clock
):
    receiver.answers = [410]
    hook, _ = endpoint(admin, receiver.url())
    notice()
    deliver(clock, T0)
    page = boss.get(reverse("webhook_endpoint", args=[hook.pk])).content.decode()
    assert "disabled: answered 410 Gone at 2026-11-05 10:00 UTC" in page
    listing = boss.get(reverse("notifications")).content.decode()
    assert "answered 410 Gone" in listing
    d = Delivery.objects.get()
    follow = boss.post(reverse("delivery_replay", args=[d.pk]), follow=True).content.decode()
    assert "enable it first" in follow
    boss.post(reverse("webhook_enable", args=[hook.pk]))
    boss.post(reverse("delivery_replay", args=[d.pk]))
    deliver(clock, T0 + dt.timedelta(minutes=1))
    d.refresh_from_db()
    assert d.state == "delivered" and len(receiver.received) == 2


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER])
def test_only_msp_admins_reach_the_notification_pages(client_for, admin, role, receiver):
    hook, _ = endpoint(admin, receiver.url())
    client = client_for(role)
    for url in (reverse("notifications"), reverse("recipient_new"), reverse("webhook_new"),
                reverse("webhook_endpoint", args=[hook.pk])):  # fmt: skip
        assert client.get(url).status_code == 404
    for name in ("webhook_rotate", "webhook_delete", "webhook_enable"):
        assert client.post(reverse(name, args=[hook.pk])).status_code == 404
    hook.refresh_from_db()
    assert WebhookEndpoint.objects.count() == 1


def test_posts_without_the_csrf_token_are_refused(admin, receiver):
    hook, _ = endpoint(admin, receiver.url())
    client = Client(enforce_csrf_checks=True)
    force_login_verified(client, admin)
    secret = hook.secret
    assert client.post(reverse("webhook_rotate", args=[hook.pk])).status_code == 403
    assert client.post(reverse("webhook_new"), {"name": "x", "url": receiver.url(),
                                                "primary": "on"}).status_code == 403  # fmt: skip
    hook.refresh_from_db()
    assert hook.secret == secret and WebhookEndpoint.objects.count() == 1


def _grow(admin, receiver, clock, n):
    for i in range(n):
        customer = CustomerFactory()
        EmailRecipient.objects.create(customer=customer, address=f"r{i}@x.example")
        endpoint(admin, receiver.url(f"/c{i}"), customer=customer)
        notice(customer)
    hook = WebhookEndpoint.objects.filter(customer__isnull=True).first()
    for _ in range(n):
        notice()
    deliver(clock, T0)
    return hook


@pytest.mark.parametrize("name", ["notifications", "webhook_endpoint"])
def test_notification_pages_use_a_constant_number_of_queries(
    boss, admin, receiver, clock, name, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    endpoint(admin, receiver.url())
    hook = _grow(admin, receiver, clock, 2)
    args = [hook.pk] if name == "webhook_endpoint" else []
    with CaptureQueriesContext(connection) as ctx:
        assert boss.get(reverse(name, args=args)).status_code == 200
    _grow(admin, receiver, clock, 12)
    assert Delivery.objects.filter(endpoint=hook).count() == 28  # it gets every customer's
    with django_assert_max_num_queries(len(ctx.captured_queries)):
        assert boss.get(reverse(name, args=args)).status_code == 200
