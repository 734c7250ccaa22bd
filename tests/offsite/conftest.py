import pytest

from appliances.models import ApplianceState
from tests import factories as f
from tests.appliances.conftest import (  # noqa: F401  (the appliance behind real sshd)
    agent_store,
    protected_server,
    ssh_appliance,
    sshd,
)
from tests.support.agent_store import agent, init_store


@pytest.fixture
def store(tmp_path):
    return init_store(tmp_path / "appliance")


@pytest.fixture
def appliance(db, store):
    """An online appliance whose agent is a real store on the local transport."""
    return f.ApplianceFactory(transport="local", local_store=str(store), serial="SER-0042",
                              state=ApplianceState.ONLINE)  # fmt: skip


def make_vault_dir(path, name: str):
    """A real vault directory made by ``bdr-agent vault init``."""
    agent(path.parent / "unused-store", "vault", "init", str(path), "--name", name)
    return path


@pytest.fixture
def vault_dirs(tmp_path):
    """Two local vault directories, dc1 and dc2."""
    return make_vault_dir(tmp_path / "vault1", "dc1"), make_vault_dir(tmp_path / "vault2", "dc2")
