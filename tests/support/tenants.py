"""Customers whose appliances are one real agent store on this machine (the local transport,
as the demo): each has a server whose point holds a file big enough that a slow client keeps
its download open, and a small folder to browse."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from appliances.models import ApplianceState
from portal.models import Customer, Role, User
from restores.models import RecoveryPoint
from tests import factories as f
from tests.agent.fs_images import make_disk
from tests.support.agent_store import agent, agent_json

BIG = random.Random(14).randbytes(12 << 20)  # 12 MiB: more than the sockets buffer


def make_store(root: Path) -> tuple[Path, dict]:
    """(store, the agent's record of its one point) made under ``root``."""
    store = root / "store"
    agent(store, "init", "--key-file", str(root / "key"))
    image = root / "disk.img"
    make_disk(image, [("ext4", {"/big.bin": BIG, "/Shared/price list.txt": b"crown 900\n"})])
    point = agent_json(store, "backup", "files01", str(image), "--volume", "disk0",
                       "--at", "2026-03-01T22:00:00Z")  # fmt: skip
    return store, point


@dataclass
class Tenant:
    customer: Customer
    point: RecoveryPoint
    users: list[User]


def make_tenant(limits_store, name: str, users: int = 3) -> Tenant:
    """A customer with an appliance on the shared store, one server, its point, and
    ``users`` customer admins (they see every server of theirs without grants)."""
    store, agent_point = limits_store
    customer = f.CustomerFactory(name=name)
    appliance = f.ApplianceFactory(customer=customer, transport="local", local_store=str(store),
                                   state=ApplianceState.ONLINE)  # fmt: skip
    server = f.ProtectedServerFactory(appliance=appliance, name="files01")
    point = f.RecoveryPointFactory(
        server=server, agent_id=agent_point["id"], volume="disk0",
        taken_at=dt.datetime.fromisoformat(agent_point["taken_at"]),
        size_bytes=agent_point["size"],
    )  # fmt: skip
    people = [f.UserFactory(role=Role.CUSTOMER_ADMIN, customer=customer) for _ in range(users)]
    return Tenant(customer, point, people)
