"""How the portal reaches an appliance's ``bdr-agent rpc``: SSH (paramiko) or, in demo mode,
a local subprocess. Both give a pair of byte streams; ``client.py`` speaks the protocol.

SSH rules (shared/DESIGN.md): one Ed25519 key per appliance, its private half sealed at rest;
the appliance's host key pinned at enrolment; an unknown or changed host key is refused
(RejectPolicy), never added. Nothing here logs a key or a secret.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

CONNECT_TIMEOUT = 10.0


class TransportError(Exception):
    """The appliance could not be reached (network, refused, timed out): worth a retry."""


class AuthenticationFailed(TransportError):
    """The appliance refused our client key. Not retried."""


class HostKeyMismatch(Exception):
    """The appliance presented a host key other than the pinned one. Never retried or accepted."""

    def __init__(self, presented: str):
        super().__init__("the appliance's SSH host key changed; connection refused")
        self.presented = presented


@dataclass
class Stream:
    rfile: io.BufferedIOBase
    wfile: io.BufferedIOBase
    close: callable
    # Whatever has arrived, up to n bytes (b"" at the end), without waiting for all n as
    # rfile.read(n) does: for relays (the VM console). Bytes already taken into rfile's
    # buffer are not seen, so use it only while the other side has sent nothing unread.
    read_some: Callable[[int], bytes] | None = None


def generate_client_key() -> tuple[str, str]:
    """A new Ed25519 key pair: (private key in OpenSSH PEM, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public


def fingerprint(key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a "<type> <base64>" key line."""
    blob = base64.b64decode(key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def fetch_host_key(host: str, port: int) -> str:
    """The host key an SSH server presents, as "<type> <base64>", without authenticating."""
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise TransportError(f"cannot reach {host}:{port}: {exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=CONNECT_TIMEOUT)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(f"SSH handshake with {host}:{port} failed: {exc}") from None
    finally:
        transport.close()


def _known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def open_ssh(appliance, command: str = "bdr-agent rpc") -> Stream:
    """Open the rpc channel over SSH with the pinned host key and the appliance's client key."""
    if not appliance.host_key:
        raise TransportError("the appliance is not enrolled: no host key is pinned")
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key_type, key_b64 = appliance.host_key.split()[:2]
    client.get_host_keys().add(
        _known_host_name(appliance.ssh_host, appliance.ssh_port),
        key_type,
        paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64)),
    )
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(appliance.client_private_key))
    try:
        client.connect(
            appliance.ssh_host,
            appliance.ssh_port,
            username=appliance.ssh_user,
            pkey=pkey,
            timeout=CONNECT_TIMEOUT,
            banner_timeout=CONNECT_TIMEOUT,
            auth_timeout=CONNECT_TIMEOUT,
            look_for_keys=False,
            allow_agent=False,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyMismatch(f"{exc.key.get_name()} {exc.key.get_base64()}") from None
    except paramiko.AuthenticationException:
        client.close()
        raise AuthenticationFailed("the appliance refused the portal's key") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise TransportError(
            f"cannot connect to {appliance.ssh_host}:{appliance.ssh_port}: {exc}"
        ) from None
    channel = client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
    channel.exec_command(command)
    channel.settimeout(settings.BDR_RPC_TIMEOUT)
    threading.Thread(target=_discard_stderr, args=(channel,), daemon=True).start()

    def close():
        try:
            channel.close()
        finally:
            client.close()

    return Stream(
        rfile=channel.makefile("rb"),
        wfile=channel.makefile("wb"),
        close=close,
        read_some=channel.recv,
    )


def _discard_stderr(channel: paramiko.Channel) -> None:
    """Read and drop what the appliance writes to stderr, until the channel closes. Left
    unread, paramiko would keep all of it in memory, and the SSH window it used up would never
    be given back, so a flood of it would also stall the answers on stdout."""
    while True:
        try:
            if not channel.recv_stderr(65536):
                return
        except TimeoutError:
            if channel.closed:
                return
        except (OSError, EOFError):
            return


def local_agent_env(local_store: str) -> dict:
    """The environment of a local appliance's agent: its confinement config is the
    ``confinement.json`` beside its store folder when there is one (the demo writes it),
    else whatever ``BDR_AGENT_CONFIG`` this process has."""
    env = dict(os.environ)
    beside = Path(local_store).parent / "confinement.json"
    if beside.is_file():
        env["BDR_AGENT_CONFIG"] = str(beside)
    return env


def open_local(appliance) -> Stream:
    """Demo mode: run the agent's rpc on a store on this machine."""
    if not settings.BDR_ALLOW_LOCAL_TRANSPORT:
        raise TransportError("local appliances are disabled in production")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--store", appliance.local_store, "rpc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=local_agent_env(appliance.local_store),
    )

    def close():
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    return Stream(rfile=proc.stdout, wfile=proc.stdin, close=close, read_some=proc.stdout.read1)


def open_stream(appliance) -> Stream:
    if appliance.transport == "local":
        return open_local(appliance)
    return open_ssh(appliance)
