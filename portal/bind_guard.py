"""Development mode listens on loopback only: its keys are in this public repository.

With the development ``SECRET_KEY`` anyone can forge a session or a console token, and with
the development ``SECRETS_KEYS`` read every sealed appliance key; so a portal that still uses
either refuses to listen on any address but loopback (``runserver`` and the gunicorn config
both ask here).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


class PublicBindRefused(Exception):
    """Listening on a public address with the development keys; the message is one line."""


def development_keys_in_use() -> bool:
    from portal import settings as portal_settings

    return (
        settings.SECRET_KEY == portal_settings._DEV_SECRET_KEY
        or portal_settings._DEV_SECRETS_KEY in settings.SECRETS_KEYS
    )


def is_loopback(host: str) -> bool:
    host = host.strip().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str) -> None:
    """Raise PublicBindRefused when ``host`` is not loopback and the development keys are in
    use (production mode never has them: it refuses to start without its own)."""
    if is_loopback(host) or not development_keys_in_use():
        return
    raise PublicBindRefused(
        f"refusing to listen on {host}: this portal uses the public development SECRET_KEY/"
        "SECRETS_KEYS; listen on 127.0.0.1, or set BDR_ENV=production with your own keys"
    )
