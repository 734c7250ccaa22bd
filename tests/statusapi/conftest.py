"""Two customers with statuses and alerts, and a client that speaks to the Status API with a
bearer key, as a PSA would."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from monitoring import counts
from monitoring.models import STATE_RANK, ServerStatus
from tests.factories import (
    AlertFactory,
    ApplianceFactory,
    CustomerFactory,
    ProtectedServerFactory,
)

NOW = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)


def status(server, state, reason="", retention_ok=True):
    return ServerStatus.objects.create(
        server=server, state=state, rank=STATE_RANK[state], since=NOW - dt.timedelta(hours=1),
        reason=reason, retention_ok=retention_ok,
        retention_summary="compliant" if retention_ok else "3 dailies missing",
    )  # fmt: skip


@pytest.fixture
def fleet(db):
    """Acme: dc01 unprotected, fs01 protected; Globex: web01 warning, its retention short."""
    acme, globex = CustomerFactory(name="Acme"), CustomerFactory(name="Globex")
    acme_nas = ApplianceFactory(customer=acme, name="acme-nas")
    globex_nas = ApplianceFactory(customer=globex, name="globex-nas")
    dc01 = ProtectedServerFactory(appliance=acme_nas, name="dc01")
    fs01 = ProtectedServerFactory(appliance=acme_nas, name="fs01")
    web01 = ProtectedServerFactory(appliance=globex_nas, name="web01")
    status(dc01, "unprotected", "no backup since 4 Nov 10:00 UTC")
    status(fs01, "protected")
    status(web01, "warning", "appliance disk 90% full", retention_ok=False)
    counts.refresh()  # as the cycle that wrote the statuses would
    return {
        "acme": acme, "globex": globex, "dc01": dc01, "fs01": fs01, "web01": web01,
        "acme_alert": AlertFactory(appliance=acme_nas, server=dc01, kind="protection",
                                   message="dc01 unprotected"),
        "globex_alert": AlertFactory(appliance=globex_nas, server=web01, kind="protection",
                                     message="web01 warning"),
    }  # fmt: skip


@pytest.fixture
def api():
    """An API client with ``Authorization: Bearer <plaintext>``."""

    def make(plaintext: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        return client

    return make
