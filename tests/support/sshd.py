"""OpenSSH's sshd on 127.0.0.1 with a temporary config and the agent as forced command."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from appliances.transport import generate_client_key

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SshServer:
    host: str
    port: int
    user: str
    host_key: str  # "<type> <base64>"
    client_private_key: str
    client_public_key: str
    process: subprocess.Popen
    dir: Path
    authorized_keys: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def restart_with_new_host_key(self) -> str:
        """Simulate a reinstalled (or impersonated) appliance: same address, a new host key."""
        self.stop()
        key = self.dir / "ssh_host_ed25519_key"
        key.unlink()
        Path(f"{key}.pub").unlink()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        self.host_key = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        self.process = _start(self.dir / "sshd_config", self.port)
        return self.host_key


def _carried_env() -> str:
    # sshd gives the forced command a fresh environment: carry a moved test clock and the
    # run's confinement config across (on an appliance the config is /etc/bdr-agent's).
    carried = ("BDR_TEST_CLOCK_OFFSET", "BDR_AGENT_CONFIG")
    return "".join(f"{k}={os.environ[k]} " for k in carried if os.environ.get(k))


def forced_command(store: Path) -> str:
    return f"{_carried_env()}{sys.executable} -m agent --store {store} rpc"


def vault_forced_command(vault: Path, appliance: str = "") -> str:
    """The forced command of a vault host: ``bdr-agent vault serve DIR``."""
    only = f" --appliance {appliance}" if appliance else ""
    return f"{_carried_env()}{sys.executable} -m agent vault serve {vault}{only}"


def authorize(server: SshServer, public_key: str, command: str) -> None:
    """Let ``public_key`` in as well, with its own forced command."""
    with open(server.authorized_keys, "a") as f:
        f.write(f'restrict,command="{command}" {public_key.strip()} added@test\n')


def _start(config: Path, port: int) -> subprocess.Popen:
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(config.parent / "sshd.log", "ab"),
    )  # noqa: SIM115
    return wait_listening(proc, port, config.parent / "sshd.log", timeout=10)


def wait_listening(
    proc: subprocess.Popen, port: int, log: Path, timeout: float
) -> subprocess.Popen:
    """``proc`` once it accepts connections on 127.0.0.1:``port``; RuntimeError with its
    log's tail if it exits or does not listen in time."""
    name = Path(proc.args[0]).name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start listening")


def start_sshd(
    workdir: Path, store: Path, *, extra_env: dict | None = None, command: str = ""
) -> SshServer:
    """Start sshd whose only authorized key runs ``bdr-agent rpc`` on ``store`` (or
    ``command``, e.g. ``vault_forced_command``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    private, public = generate_client_key()
    authorized = workdir / "authorized_keys"
    env_prefix = " ".join(f"{k}={v}" for k, v in (extra_env or {}).items())
    command = f"{env_prefix} {command or forced_command(store)}".strip()
    authorized.write_text(f'restrict,command="{command}" {public} bdr-portal@test\n')
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {workdir / 'sshd.pid'}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    proc = _start(config, port)
    return SshServer(
        host="127.0.0.1",
        port=port,
        user=getpass.getuser(),
        host_key=" ".join(Path(f"{host_key}.pub").read_text().split()[:2]),
        client_private_key=private,
        client_public_key=public,
        process=proc,
        dir=workdir,
        authorized_keys=authorized,
    )
