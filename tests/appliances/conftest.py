import pytest

from appliances.models import ApplianceState
from tests.factories import ApplianceFactory, ProtectedServerFactory, VolumeFactory
from tests.support.agent_store import init_store, make_volume
from tests.support.sshd import start_sshd


@pytest.fixture
def agent_store(tmp_path):
    return init_store(tmp_path / "appliance")


@pytest.fixture
def sshd(tmp_path, agent_store):
    server = start_sshd(tmp_path / "sshd", agent_store)
    yield server
    server.stop()


@pytest.fixture
def ssh_appliance(db, sshd):
    """An enrolled appliance reached over real SSH, its host key pinned."""
    return ApplianceFactory(
        model="V1",
        ssh_host=sshd.host,
        ssh_port=sshd.port,
        ssh_user=sshd.user,
        host_key=sshd.host_key,
        client_private_key=sshd.client_private_key,
        client_public_key=sshd.client_public_key,
        state=ApplianceState.ONLINE,
    )


@pytest.fixture
def protected_server(ssh_appliance, tmp_path):
    server = ProtectedServerFactory(appliance=ssh_appliance, name="dc01")
    from appliances.models import RetentionPolicy, Schedule

    Schedule.objects.create(server=server, weekdays=list(range(7)))
    RetentionPolicy.objects.create(server=server)
    image = make_volume(tmp_path / "dc01-C.img", size_mib=16)
    VolumeFactory(server=server, name="C", source=str(image))
    server.image = image
    return server
