"""Outbound webhooks per the Standard Webhooks specification (standardwebhooks.com).

Each message carries ``webhook-id`` (the same on every retry and replay), ``webhook-timestamp``
(seconds since the epoch, of this attempt) and ``webhook-signature``: ``v1,`` and the base64 of
HMAC-SHA256 over ``{id}.{timestamp}.{body}`` keyed with the endpoint's secret, which is
``whsec_`` and the base64 of 32 random bytes. During a rotation's overlap both secrets sign:
the header holds both signatures, space-separated.

Sending refuses addresses inside the network (loopback, private, link-local...) unless
``BDR_WEBHOOK_ALLOW_PRIVATE``: the check is made on the address the socket actually connected
to, so a name that resolves differently at save time and at send time (DNS rebinding) is
refused too. Redirects are not followed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
USER_AGENT = "bdr-portal-webhooks/1"


class RefusedAddress(ValueError):
    """The endpoint's address is not one the portal may call."""


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """One ``v1,`` signature of the message with ``secret``."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: list[str], message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The Standard Webhooks headers, signed with every secret in ``secrets_``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def refused(address: str) -> bool:
    """True for an address inside the network: loopback, private, link-local, multicast,
    reserved or unspecified (IPv4-mapped IPv6 judged as the IPv4 it maps)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(url: str) -> None:
    """Refuse a URL the portal must not call, with one line saying why (RefusedAddress):
    not http(s), plain http in production, or a host that resolves inside the network."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedAddress("The URL must start with https:// and name a host.")
    if parts.scheme == "http" and settings.PRODUCTION:
        raise RefusedAddress("The URL must use https://.")
    if settings.BDR_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedAddress(f"{parts.hostname} does not resolve.") from exc
    for info in infos:
        if refused(info[4][0]):
            raise RefusedAddress(
                f"{parts.hostname} resolves to {info[4][0]}, an address inside the network: "
                "webhooks go to public addresses only."
            )


@dataclass
class Answer:
    ok: bool
    status_code: int | None
    duration_ms: int
    response: str = ""
    error: str = ""


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        context = ssl.create_default_context()
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    return conn, path


def post(url: str, body: str, message_headers: dict[str, str]) -> Answer:
    """POST ``body`` to ``url`` once, within BDR_WEBHOOK_TIMEOUT seconds. Never raises: a
    refused address, a network error or a timeout is an Answer with ``error``."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    conn = None
    try:
        check_url(url)  # scheme and resolution; the connected address is checked below
        conn, path = _connection(url, settings.BDR_WEBHOOK_TIMEOUT)
        conn.connect()
        peer = conn.sock.getpeername()[0]
        if not settings.BDR_WEBHOOK_ALLOW_PRIVATE and refused(peer):
            raise RefusedAddress(f"connected to {peer}, an address inside the network")
        conn.request("POST", path, body=body.encode(), headers=message_headers)
        reply = conn.getresponse()
        text = reply.read(settings.BDR_WEBHOOK_MAX_RESPONSE).decode("utf-8", "replace")
        ok = 200 <= reply.status < 300
        return Answer(ok, reply.status, took(), text[:1000])
    except RefusedAddress as exc:
        return Answer(False, None, took(), error=f"refused: {exc}"[:300])
    except TimeoutError:
        return Answer(False, None, took(), error="timed out")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(False, None, took(), error=f"{type(exc).__name__}: {exc}"[:300])
    finally:
        if conn is not None:
            conn.close()
