"""The VM console in the browser: the appliance end of the relay.

The path of the bytes: noVNC in the browser -> websocket to ``manage.py console_proxy``
(restores/console_proxy.py) with a one-time token (restores/console_access.py, which also
says who may keep a console open) -> ``open_console`` opens the appliance's rpc over the
usual pinned SSH connection (or the local agent in demo mode) and calls ``vm.console``
(``AgentClient.open_relay``: only appliances/client.py writes protocol lines) -> the agent
relays to qemu's VNC Unix socket. Nothing new listens on the appliance and its
``restrict``ed key needs no port forwarding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliances import sync
from appliances.client import AgentClient, AgentError, TransportError
from restores.console_access import ConsoleRefused
from restores.models import VirtualMachine


@dataclass
class ConsoleSession:
    """The appliance end of one console: raw RFB bytes in both directions."""

    agent: AgentClient
    pending: bytes = b""  # RFB bytes that arrived with the rpc answer
    closed: bool = field(default=False)

    def read(self) -> bytes:
        """The next bytes from the VM's VNC server, b"" when the relay has ended. Blocking."""
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        while not self.closed:
            try:
                return self.agent.stream.read_some(65536)
            except TimeoutError:
                continue  # an idle screen sends nothing for a while; that is not an end
            except (OSError, ValueError):  # ValueError: read on a stream closed meanwhile
                return b""
        return b""

    def write(self, data: bytes) -> None:
        self.agent.stream.wfile.write(data)
        self.agent.stream.wfile.flush()

    def close(self) -> None:
        self.closed = True
        self.agent.close()


def open_console(vm: VirtualMachine) -> ConsoleSession:
    """Open the appliance's rpc and turn it into a relay to the VM's VNC socket. Blocking."""
    try:
        agent = sync.open_agent(vm.server.appliance, retries=())
    except (TransportError, sync.ApplianceUnavailable) as exc:
        raise ConsoleRefused(f"the appliance is unreachable: {exc}") from None
    try:
        _, pending = agent.open_relay("vm.console", vm_id=vm.agent_id)
    except AgentError as exc:
        agent.close()
        raise ConsoleRefused(f"the appliance refused the console: {exc}") from None
    except TransportError as exc:
        agent.close()
        raise ConsoleRefused(f"connection to the appliance lost: {exc}") from None
    except BaseException:
        agent.close()
        raise
    return ConsoleSession(agent, pending)
