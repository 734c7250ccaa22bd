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
from tests.appliances import conftest as appliance_fixtures
from tests.factories import ProtectedServerFactory, SiteFactory
from tests.support.agent_store import agent, init_store, make_volume
from tests.support.sshd import _start

T0 = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)
# The appliance tests' sshd fixtures: a real agent store behind OpenSSH.
agent_store = appliance_fixtures.agent_store
sshd = appliance_fixtures.sshd
ssh_appliance = appliance_fixtures.ssh_appliance
protected_server = appliance_fixtures.protected_server


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


class Office:
    """An appliance behind a real sshd (its store is ``store``) with its servers."""

    def __init__(self, appliance, servers, store, sshd, clock):
        self.appliance, self.servers, self.store = appliance, servers, store
        self.sshd, self.clock = sshd, clock

    def back_up(self, server, at: dt.datetime) -> None:
        image = str(self.servers[0].image)
        agent(self.store, "backup", server.name, image, "--volume", "C", "--at", at.isoformat())

    def poll(self, now: dt.datetime) -> None:
        self.clock.move_to(now)
        tasks.poll_appliance(self.appliance.pk)

    def cycle(self, now: dt.datetime) -> engine.CycleReport:
        self.clock.move_to(now)
        return engine.run_cycle(now)

    def down(self) -> None:
        self.sshd.stop()

    def up(self) -> None:
        self.sshd.process = _start(self.sshd.dir / "sshd_config", self.sshd.port)

    def states(self) -> list[str]:
        from monitoring.models import ServerStatus

        return sorted(ServerStatus.objects.values_list("state", flat=True))


@pytest.fixture
def bare_office(ssh_appliance, protected_server, agent_store, sshd, settings):
    """A V1 behind sshd with two servers protected for 30 days, nothing backed up yet, under
    a frozen clock at T0."""
    settings.BDR_RPC_RETRY_DELAYS = [0.05]
    created = T0 - dt.timedelta(days=30)
    with time_machine.travel(T0, tick=False) as clock:
        ProtectedServer.objects.filter(pk=protected_server.pk).update(created_at=created)
        protected_server.created_at = created
        second = protect(ssh_appliance, "fs01", protected_server.image, created)
        second.image = protected_server.image
        yield Office(ssh_appliance, [protected_server, second], agent_store, sshd, clock)


@pytest.fixture
def office(bare_office):
    """The office with both servers backed up ten minutes before T0, polled at T0."""
    for server in bare_office.servers:
        bare_office.back_up(server, T0 - dt.timedelta(minutes=10))
    bare_office.poll(T0)
    return bare_office
