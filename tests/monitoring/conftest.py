"""A lab for the engine: real agent stores reached through the local transport (as the demo)
or over a real sshd, points made by the agent's CLI at chosen times, and a frozen clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
import time_machine

from appliances import tasks
from appliances.models import (
    Appliance,
    ApplianceState,
    ProtectedServer,
    RetentionPolicy,
    Schedule,
    Volume,
)
from monitoring import engine
from tests.appliances.conftest import agent_store, protected_server, ssh_appliance, sshd  # noqa: F401
from tests.factories import ProtectedServerFactory, SiteFactory
from tests.support.agent_store import agent, init_store, make_volume

T0 = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)


@dataclass
class Lab:
    appliance: Appliance
    server: ProtectedServer
    store: Path
    image: Path
    clock: time_machine.Coordinates

    def back_up(self, at: dt.datetime, server: ProtectedServer | None = None) -> None:
        """A real backup of the server's volume, its point taken at ``at``."""
        server = server or self.server
        agent(self.store, "backup", server.name, str(self.image), "--volume", "C",
              "--at", at.isoformat())  # fmt: skip

    def poll(self, now: dt.datetime) -> None:
        """The poller's task at ``now``: mirror the appliance, evaluate it, refresh retention."""
        self.clock.move_to(now)
        tasks.poll_appliance(self.appliance.pk)

    def cycle(self, now: dt.datetime) -> engine.CycleReport:
        self.clock.move_to(now)
        return engine.run_cycle(now)


def protect(appliance: Appliance, name: str, image: Path, created: dt.datetime):
    server = ProtectedServerFactory(appliance=appliance, name=name)
    ProtectedServer.objects.filter(pk=server.pk).update(created_at=created)
    server.refresh_from_db()
    Schedule.objects.create(server=server, weekdays=list(range(7)))
    RetentionPolicy.objects.create(server=server)
    Volume.objects.create(server=server, name="C", source=str(image))
    return server


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def lab(db, tmp_path, clock) -> Lab:
    store = init_store(tmp_path / "lab")
    image = make_volume(tmp_path / "dc01-C.img", size_mib=4)
    site = SiteFactory(name="Head office")
    appliance = Appliance.objects.create(
        serial="LAB-1", name="lab-nas", model="V2", customer=site.customer, site=site,
        transport="local", local_store=str(store), state=ApplianceState.ONLINE,
    )  # fmt: skip
    server = protect(appliance, "dc01", image, T0 - dt.timedelta(days=30))
    return Lab(appliance, server, store, image, clock)
