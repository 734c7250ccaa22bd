"""Helpers for the notification tests: alerts raised by the real engine, notices made by hand
where the engine's timing is not what a test is about, and the webhook receiver."""

from __future__ import annotations

import datetime as dt

import pytest

from monitoring import delivery, notify_services
from monitoring.models import AlertNotice
from portal.models import Role
from tests.factories import AlertFactory, UserFactory
from tests.monitoring.conftest import T0
from tests.support import webhook_receiver

MIN = dt.timedelta(minutes=1)


@pytest.fixture
def receiver():
    r = webhook_receiver.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def admin(db):
    return UserFactory(role=Role.MSP_ADMIN, username="msp-boss")


def raise_alert(lab) -> AlertNotice:
    """Let the lab's server go stale until the engine opens its alert; return the notice."""
    lab.back_up(T0 - 10 * MIN)
    lab.poll(T0)
    stale = T0 + 60 * MIN
    for minute in range(6):
        lab.cycle(stale + minute * MIN)
    return AlertNotice.objects.get(kind="opened")


def notice(customer=None, kind: str = "opened", at: dt.datetime = T0) -> AlertNotice:
    owner = {"appliance__customer": customer} if customer else {}
    alert = AlertFactory(**owner, severity="critical", message="dc01 on nas-1: stale since 09:50")
    return AlertNotice.objects.create(alert=alert, kind=kind, at=at)


def endpoint(admin, url: str, customer=None, primary=True, escalation=False):
    return notify_services.add_endpoint(
        customer=customer, name="PSA", url=url, primary=primary, escalation=escalation,
        actor=admin,
    )  # fmt: skip


def deliver(clock, now: dt.datetime):
    clock.move_to(now)
    return delivery.run(now)
