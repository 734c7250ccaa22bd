"""Rotating the portal's SSH key for one appliance with no moment when it cannot be reached.

The portal cannot write the appliance's authorized_keys (its key may only run ``bdr-agent
rpc``, and the agent refuses SSH files), so a person does, between two steps:

1. ``start_rotation``: a new key pair waits beside the current one, which keeps working; the
   page shows the new authorized_keys line to add on the appliance.
2. ``finish_rotation``: the portal signs in with the new key; when the appliance accepts it,
   the new key replaces the old, and the page says which old line to remove.
"""

from __future__ import annotations

import copy

from django.db import transaction

from appliances import sync, transport
from appliances.client import AuthenticationFailed, TransportError
from appliances.enrolment import EnrolmentError
from appliances.models import Appliance
from portal import audit
from portal.models import User


def _fingerprint(public_key_line: str) -> str:
    return transport.fingerprint(public_key_line) if public_key_line else ""


@transaction.atomic
def start_rotation(appliance: Appliance, *, actor: User, request=None) -> Appliance:
    """Make the new key pair that will replace the appliance's client key (a rotation
    started before is replaced by this one)."""
    if appliance.transport == "local":
        raise EnrolmentError("A demo appliance is reached without SSH: it has no key to rotate.")
    private, public = transport.generate_client_key()
    appliance.next_client_private_key = private
    appliance.next_client_public_key = f"{public} bdr-portal@{appliance.serial}"
    appliance.save(update_fields=["next_client_private_key", "next_client_public_key"])
    detail = {"new": _fingerprint(appliance.next_client_public_key)}
    audit.record(actor, "appliance.key_rotation_started", appliance, request=request,
                 detail=detail)  # fmt: skip
    return appliance


def finish_rotation(appliance: Appliance, *, actor: User, request=None) -> str:
    """Switch to the waiting key if the appliance accepts it; returns the old public key,
    whose authorized_keys line is to be removed. Refused (EnrolmentError) while the appliance
    does not accept it yet: the current key stays in use."""
    if not appliance.next_client_public_key:
        raise EnrolmentError("No new key is waiting: start the rotation first.")
    trial = copy.copy(appliance)
    trial.client_private_key = appliance.next_client_private_key
    try:
        with sync.open_agent(trial, retries=()):
            pass
    except AuthenticationFailed:
        raise EnrolmentError(
            "The appliance does not accept the new key yet: add its line to authorized_keys, "
            "then try again. The current key is still in use."
        ) from None
    except (TransportError, sync.ApplianceUnavailable) as exc:
        raise EnrolmentError(f"The new key could not be tried: {exc}") from None
    return _switch(appliance, actor=actor, request=request)


@transaction.atomic
def _switch(appliance: Appliance, *, actor: User, request=None) -> str:
    old = appliance.client_public_key
    appliance.client_private_key = appliance.next_client_private_key
    appliance.client_public_key = appliance.next_client_public_key
    appliance.next_client_private_key = appliance.next_client_public_key = ""
    appliance.save(update_fields=["client_private_key", "client_public_key",
                                  "next_client_private_key", "next_client_public_key"])  # fmt: skip
    detail = {"old": _fingerprint(old), "new": _fingerprint(appliance.client_public_key)}
    audit.record(actor, "appliance.key_rotated", appliance, request=request, detail=detail)
    return old


@transaction.atomic
def cancel_rotation(appliance: Appliance, *, actor: User, request=None) -> Appliance:
    """Forget the waiting key (its line, if added, should be removed again)."""
    detail = {"dropped": _fingerprint(appliance.next_client_public_key)}
    appliance.next_client_private_key = appliance.next_client_public_key = ""
    appliance.save(update_fields=["next_client_private_key", "next_client_public_key"])
    audit.record(actor, "appliance.key_rotation_cancelled", appliance, request=request,
                 detail=detail)  # fmt: skip
    return appliance
