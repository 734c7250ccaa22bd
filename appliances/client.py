"""The portal's client of the agent protocol (see agent/rpc.py for the wire format).

The only code in the portal that talks to appliances. Connection errors are retried with
backoff; host key mismatches and refused keys are not. Nothing secret is logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from appliances import transport
from appliances.transport import AuthenticationFailed, HostKeyMismatch, TransportError

log = logging.getLogger(__name__)
PROTOCOL_VERSION = 1

__all__ = [
    "AgentClient",
    "AgentError",
    "AuthenticationFailed",
    "HostKeyMismatch",
    "TransportError",
    "connect",
]


class AgentError(Exception):
    """The agent answered with a structured error."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class AgentClient:
    """One rpc session. Use as a context manager: ``with connect(appliance) as agent:``."""

    def __init__(self, stream: transport.Stream):
        self.stream = stream
        self.next_id = 0
        self.hello: dict = {}

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.stream.close()

    def _read_message(self) -> dict:
        """One JSON message; never more than BDR_RPC_MAX_LINE bytes are read for it, so an
        appliance that sends an endless line costs that much memory, then the session."""
        limit = settings.BDR_RPC_MAX_LINE
        try:
            line = self.stream.rfile.readline(limit + 1)
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"connection lost: {exc}") from None
        if not line:
            raise TransportError("the appliance closed the connection")
        if len(line) > limit:
            raise TransportError(
                f"the appliance sent a message longer than {_size(limit)}; connection dropped"
            )
        try:
            message = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            message = None
        if not isinstance(message, dict):
            raise TransportError("the appliance sent something that is not the protocol")
        return message

    def _read_payload(self, size) -> bytes:
        """The ``binary`` bytes announced by an answer: at most BDR_RPC_MAX_PAYLOAD (the agent
        sends windows of at most 8 MiB), and exactly as many as announced."""
        limit = settings.BDR_RPC_MAX_PAYLOAD
        if type(size) is not int or not 0 <= size <= limit:
            raise TransportError(
                f"the appliance announced a payload of {size!r} bytes, more than the "
                f"{_size(limit)} allowed; connection dropped"
            )
        try:
            payload = self.stream.rfile.read(size)
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"connection lost: {exc}") from None
        if len(payload) != size:
            raise TransportError("the appliance closed the connection in the middle of a payload")
        return payload

    def call(self, method: str, on_event: Callable[[Any], None] | None = None, **params) -> Any:
        """Call ``method`` and return its result; events (if any) go to ``on_event``."""
        result, _ = self._call(method, on_event, params)
        return result

    def call_binary(self, method: str, **params) -> tuple[Any, bytes]:
        return self._call(method, None, params)

    def open_relay(self, method: str, **params) -> tuple[transport.Stream, bytes]:
        """Call ``method`` (e.g. ``vm.console``), whose ok answer turns the session into a raw
        byte relay: returns the stream and the relayed bytes that came with the answer.

        The answer line is read with raw reads (a buffered readline would keep relayed bytes
        that follow it). Refused: AgentError; connection lost or not the protocol: TransportError.
        """
        self._send(method, params)
        buffer = b""
        try:
            while b"\n" not in buffer:
                data = self.stream.read_some(65536)
                if not data:
                    raise TransportError("the appliance closed the connection")
                buffer += data
                if len(buffer) > settings.BDR_RPC_MAX_LINE:
                    raise TransportError("the appliance sent something that is not the protocol")
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"connection lost: {exc}") from None
        line, _, rest = buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            raise TransportError("the appliance sent something that is not the protocol") from None
        self._raise_for(answer)
        return self.stream, rest

    def _send(self, method: str, params: dict) -> None:
        self.next_id += 1
        request = {"id": self.next_id, "method": method, "params": params}
        try:
            self.stream.wfile.write(json.dumps(request).encode() + b"\n")
            self.stream.wfile.flush()
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"connection lost: {exc}") from None

    @staticmethod
    def _raise_for(answer: dict) -> None:
        if not answer.get("ok"):
            error = answer.get("error") or {}
            raise AgentError(error.get("code", "unknown"), error.get("message", "unknown error"))

    def _call(self, method, on_event, params) -> tuple[Any, bytes]:
        self._send(method, params)
        while True:
            message = self._read_message()
            if message.get("id") != self.next_id:
                continue
            if "event" in message:
                if on_event is not None:
                    on_event(message["event"])
                continue
            payload = b""
            if "binary" in message:
                payload = self._read_payload(message["binary"])
            self._raise_for(message)
            return message.get("result"), payload


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"


def connect(appliance, *, retries: tuple[float, ...] | None = None) -> AgentClient:
    """Open a session and say hello, retrying connection errors with backoff."""
    if retries is None:
        retries = tuple(settings.BDR_RPC_RETRY_DELAYS)
    for attempt, delay in enumerate((*retries, None)):
        try:
            stream = transport.open_stream(appliance)
            client = AgentClient(stream)
            try:
                client.hello = client.call("hello", version=PROTOCOL_VERSION, client="bdr-portal")
            except BaseException:
                client.close()
                raise
            return client
        except (HostKeyMismatch, AuthenticationFailed):
            raise
        except TransportError as exc:
            if delay is None:
                raise
            log.warning(
                "appliance %s unreachable (attempt %d): %s", appliance.serial, attempt + 1, exc
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
