"""Delivering the engine's notices: e-mail, and webhooks to a real local HTTP server, verified
with the Standard Webhooks reference library; retries with backoff under a frozen clock,
410 Gone, rotation, timeouts, and the refusal of addresses inside the network."""

import datetime as dt
import json
import random
import time

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from monitoring import delivery, notify_services, webhooks
from monitoring.models import Delivery, DeliveryAttempt, WebhookEndpoint
from tests.factories import CustomerFactory
from tests.monitoring.conftest import T0
from tests.monitoring.notify_lab import admin, deliver, endpoint, notice, raise_alert, receiver

__all__ = ["admin", "receiver"]  # fixtures
SEC = dt.timedelta(seconds=1)


def test_an_opened_alert_is_mailed_once_to_each_recipient_of_its_channel(lab, admin):
    customer = lab.appliance.customer
    for address, who, escalation in [("oncall@msp.example", None, False),
                                     ("it@customer.example", customer, False),
                                     ("boss@msp.example", None, True),
                                     ("it@other.example", CustomerFactory(), False)]:  # fmt: skip
        notify_services.add_recipient(customer=who, address=address, primary=not escalation,
                                      escalation=escalation, actor=admin)  # fmt: skip
    opened = raise_alert(lab)
    made, sent = deliver(lab.clock, opened.at)
    assert (made, sent) == (2, 2)
    assert sorted(m.to[0] for m in mail.outbox) == ["it@customer.example", "oncall@msp.example"]
    subject = mail.outbox[0].subject
    assert subject.startswith(f"[critical] {customer.name}: Alert: dc01.corp.local on lab-nas: ")
    assert "no backup since 5 Nov 09:50 UTC" in subject and "\n" not in subject
    assert "Appliance: lab-nas (LAB-1)" in mail.outbox[0].body
    opened.refresh_from_db()
    assert opened.delivered_at == opened.at
    deliver(lab.clock, opened.at + dt.timedelta(minutes=5))
    assert len(mail.outbox) == 2  # one message per notice per recipient


def test_an_unacknowledged_critical_alert_escalates_to_the_escalation_recipients(lab, admin):
    notify_services.add_recipient(customer=None, address="oncall@msp.example", primary=True,
                                  escalation=False, actor=admin)  # fmt: skip
    notify_services.add_recipient(customer=None, address="boss@msp.example", primary=False,
                                  escalation=True, actor=admin)  # fmt: skip
    opened = raise_alert(lab)
    deliver(lab.clock, opened.at)
    assert [m.to for m in mail.outbox] == [["oncall@msp.example"]]
    later = opened.at + dt.timedelta(minutes=30)  # BDR_ALERT_ESCALATE_MINUTES
    lab.cycle(later)
    deliver(lab.clock, later)
    escalated = mail.outbox[1]
    assert escalated.to == ["boss@msp.example"] and len(mail.outbox) == 2
    assert ": Escalated, nobody acknowledged: dc01.corp.local on lab-nas: " in escalated.subject
    assert "on the escalation channel" in escalated.body


def test_mail_that_cannot_be_sent_is_retried_later(admin, clock, settings):
    import socket

    with socket.socket() as probe:  # a port nobody listens on: the mail server is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    notify_services.add_recipient(customer=None, address="oncall@msp.example", primary=True,
                                  escalation=False, actor=admin)  # fmt: skip
    notice()
    deliver(clock, T0)
    d = Delivery.objects.get()
    [attempt] = d.tries.all()
    assert d.state == "pending" and attempt.error.startswith("mail: ") and not attempt.ok
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    deliver(clock, d.next_attempt_at)
    d.refresh_from_db()
    assert d.state == "delivered" and [m.to for m in mail.outbox] == [["oncall@msp.example"]]


def test_a_webhook_is_signed_per_standard_webhooks_and_verifies_with_the_reference(
    lab, admin, receiver
):
    hook, secret = endpoint(admin, receiver.url("/bdr?src=portal"))
    opened = raise_alert(lab)
    deliver(lab.clock, opened.at)
    [got] = receiver.received
    assert got.path == "/bdr?src=portal"
    assert got.headers["webhook-timestamp"] == str(int(opened.at.timestamp()))
    assert got.headers["webhook-signature"].startswith("v1,")
    message = Webhook(secret).verify(got.body, got.headers)
    assert message["type"] == "alert.opened"
    assert message["data"]["server"]["hostname"] == "dc01.corp.local"
    assert message["data"]["appliance"]["name"] == "lab-nas"
    assert got.headers["webhook-id"] == Delivery.objects.get().message_id
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(got.body, got.headers)
    tampered = got.body.replace("critical", "warning")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, got.headers)


def test_a_failed_webhook_is_retried_with_exponential_backoff_and_jitter(admin, receiver, clock):
    receiver.answers = [500, 503]
    endpoint(admin, receiver.url())
    notice()
    deliver(clock, T0)
    d = Delivery.objects.get()
    assert (d.state, d.failures) == ("pending", 1)
    first_wait = d.next_attempt_at - T0
    assert 24 * SEC <= first_wait <= 36 * SEC  # 30 s ± 20 %
    assert deliver(clock, T0 + 20 * SEC) == (0, 0)  # not due yet: nothing sent
    second = d.next_attempt_at
    deliver(clock, second)
    d.refresh_from_db()
    assert d.failures == 2 and 48 * SEC <= d.next_attempt_at - second <= 72 * SEC
    deliver(clock, d.next_attempt_at)
    d.refresh_from_db()
    assert (d.state, d.attempts) == ("delivered", 3)
    log = list(DeliveryAttempt.objects.values_list("status_code", "ok", "response"))
    assert [(code, ok) for code, ok, _ in log] == [(500, False), (503, False), (200, True)]
    assert log[0][2] == "status 500 from the test receiver"
    ids = {r.headers["webhook-id"] for r in receiver.received}
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.received]
    assert ids == {d.message_id} and stamps == sorted(set(stamps))  # same id, fresh timestamps


@pytest.mark.parametrize(
    "failures, seconds",
    [(1, 30), (2, 60), (3, 120), (5, 480), (7, 1920), (8, 3600), (12, 3600)],
)
def test_retry_delays_double_up_to_the_cap_within_twenty_percent(failures, seconds):
    for seed in range(20):
        wait = delivery.retry_delay(failures, random.Random(seed)).total_seconds()
        assert seconds * 0.8 <= wait <= seconds * 1.2
    waits = {delivery.retry_delay(failures, random.Random(s)) for s in range(20)}
    assert len(waits) > 10  # jitter: retries of many deliveries do not line up


def test_a_delivery_gives_up_after_the_last_attempt(admin, receiver, clock, settings):
    settings.BDR_NOTIFY_MAX_ATTEMPTS = 2
    receiver.answers = [500, 500, 500]
    endpoint(admin, receiver.url())
    notice()
    deliver(clock, T0)
    deliver(clock, T0 + dt.timedelta(minutes=5))
    d = Delivery.objects.get()
    assert (d.state, d.attempts, d.next_attempt_at) == ("failed", 2, None)
    deliver(clock, T0 + dt.timedelta(hours=5))
    assert len(receiver.received) == 2


def test_an_endpoint_answering_410_is_disabled_with_the_reason(admin, receiver, clock):
    receiver.answers = [410]
    hook, _ = endpoint(admin, receiver.url())
    notice()
    deliver(clock, T0)
    hook.refresh_from_db()
    assert not hook.enabled
    assert hook.disabled_reason == "answered 410 Gone at 2026-11-05 10:00 UTC"
    assert Delivery.objects.get().state == "failed"
    notice(at=T0 + dt.timedelta(minutes=1))
    assert deliver(clock, T0 + dt.timedelta(minutes=1)) == (0, 0)  # no delivery to it anymore
    assert len(receiver.received) == 1


def test_during_a_rotation_both_secrets_sign_then_only_the_new_one(admin, receiver, clock):
    hook, old = endpoint(admin, receiver.url())
    new = notify_services.rotate_secret(hook, now=T0, actor=admin)
    notice()
    deliver(clock, T0 + dt.timedelta(hours=1))
    during = receiver.received[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(during.body, during.headers)
    assert Webhook(new).verify(during.body, during.headers)
    notice(at=T0 + dt.timedelta(hours=25))
    deliver(clock, T0 + dt.timedelta(hours=25))  # the 24 h overlap is over
    after = receiver.received[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_a_slow_endpoint_times_out_without_holding_up_the_others(admin, clock, settings):
    from tests.support import webhook_receiver

    settings.BDR_WEBHOOK_TIMEOUT = 0.5
    slow, fast = webhook_receiver.start(), webhook_receiver.start()
    slow.delay = 3.0
    endpoint(admin, slow.url())
    endpoint(admin, fast.url())
    for _ in range(3):
        notice()
    started = time.monotonic()
    deliver(clock, T0)
    assert time.monotonic() - started < 2.5  # not 3 x 3 s: parallel, each cut at 0.5 s
    states = sorted(Delivery.objects.values_list("endpoint__url", "state"))
    assert states == sorted([(fast.url(), "delivered")] * 3 + [(slow.url(), "pending")] * 3)
    errors = list(DeliveryAttempt.objects.filter(ok=False).values_list("error", flat=True))
    assert errors == ["timed out"]  # one timeout per run; its other deliveries wait
    assert len(slow.received) == 1 and len(fast.received) == 3
    for r in (slow, fast):
        r.server.shutdown()


UNSPECIFIED = ".".join("0000")  # 0.0.0.0, spelled so no linter takes it for a bind address
INSIDE = ["127.0.0.1", "10.1.2.3", "192.168.1.10", "172.16.0.1", "169.254.169.254",
          "100.64.0.1", UNSPECIFIED, "::1", "::ffff:127.0.0.1", "fd00::1", "fe80::1%eth0",
          "224.0.0.1"]  # fmt: skip
OUTSIDE = ["8.8.8.8", "2606:4700::1111"]


@pytest.mark.parametrize(
    "address, refused", [(a, True) for a in INSIDE] + [(a, False) for a in OUTSIDE]
)
def test_addresses_inside_the_network_are_refused(address, refused):
    assert webhooks.refused(address) is refused


def test_private_endpoints_are_refused_in_production_mode(admin, receiver, clock, settings):
    hook, _ = endpoint(admin, receiver.url())  # allowed while tests allow private addresses
    settings.BDR_WEBHOOK_ALLOW_PRIVATE = False
    for url in (receiver.url(), "http://localhost:9/x", "http://[::1]/x", "ftp://example.com/"):
        with pytest.raises(ValidationError):
            endpoint(admin, url)
    assert WebhookEndpoint.objects.count() == 1
    notice()
    deliver(clock, T0)
    assert receiver.received == []  # the stored endpoint is refused when sending too
    [attempt] = DeliveryAttempt.objects.all()
    assert attempt.error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1")


def test_the_secret_is_sealed_at_rest_and_never_audited(admin, receiver):
    from django.db import connection

    from portal.models import AuditEvent

    hook, secret = endpoint(admin, receiver.url())
    new = notify_services.rotate_secret(hook, now=T0, actor=admin)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret, previous_secret FROM monitoring_webhookendpoint")
        stored = cursor.fetchone()
    assert secret.startswith("whsec_") and len(webhooks._key(secret)) == 32
    assert all(v.startswith("gAAAA") and "whsec" not in v for v in stored)
    audited = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert secret not in audited and new not in audited and "whsec_" not in audited
