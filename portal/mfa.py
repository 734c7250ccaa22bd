"""Two-factor sign-in (TOTP from an authenticator app, single-use recovery codes).

django-otp keeps the devices; this module says who must have one and does the writes
(enrol, verify), each audited. A session is "verified" once ``django_otp.login`` has stored
the device that checked a code in it; ``MFARequiredMiddleware`` keeps unverified sessions of
users who need MFA (or who enrolled voluntarily) out of every page but these.
"""

from __future__ import annotations

import base64
import io
from urllib.parse import quote

import qrcode
import qrcode.image.svg
from django.db import transaction
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import audit
from portal.models import User

ISSUER = "BDR portal"
RECOVERY_CODE_COUNT = 10


def mfa_required(user: User) -> bool:
    """MSP staff always; a customer's users when their customer asks for it."""
    if user.is_msp:
        return True
    return bool(user.customer_id and user.customer.require_mfa)


def has_device(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def pending_device(user: User) -> TOTPDevice:
    """The unconfirmed authenticator being enrolled (the same secret on every reload)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def secret_of(device: TOTPDevice) -> str:
    """The device's key as the base32 text authenticator apps take."""
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def otpauth_uri(device: TOTPDevice) -> str:
    label = quote(f"{ISSUER}:{device.user.get_username()}")
    return (
        f"otpauth://totp/{label}?secret={secret_of(device)}&issuer={quote(ISSUER)}"
        f"&digits={device.digits}&period={device.step}"
    )


def qr_svg(text: str) -> str:
    """An inline SVG QR code of ``text``, drawn here (no external service)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue().decode()


@transaction.atomic
def confirm_enrolment(request, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirm ``device`` with a code from the app; return new recovery codes, None if wrong.

    The session is verified with the new device, older authenticators of the user are
    removed, and the recovery codes replace any earlier ones.
    """
    user = device.user
    if not device.verify_token(token):
        audit.record(user, "auth.mfa_enrol_failed", user, request=request, customer=user.customer)
        return None
    device.confirmed = True
    device.save()
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    codes = _new_recovery_codes(user)
    otp_login(request, device)
    audit.record(user, "auth.mfa_enrol", user, request=request, customer=user.customer)
    return codes


def _new_recovery_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    static = StaticDevice.objects.create(user=user, name="recovery codes", confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=static, token=c) for c in codes)
    return codes


@transaction.atomic
def verify(request, token: str) -> bool:
    """Check a code (authenticator or recovery code) for the signed-in user; audited.

    A recovery code is used up by this check (django-otp deletes it). Devices throttle
    repeated failures themselves (django-otp's ThrottlingMixin).
    """
    user = request.user
    token = token.strip().replace(" ", "").lower()
    # Six digits is the app's code, anything else a recovery code: each is checked against
    # its own device only, so a wrong guess throttles just that device.
    model = TOTPDevice if token.isdigit() and len(token) == 6 else StaticDevice
    device = model.objects.select_for_update().filter(user=user, confirmed=True).first()
    if device is None or not device.verify_token(token):
        audit.record(user, "auth.mfa_failed", user, request=request, customer=user.customer)
        return False
    otp_login(request, device)
    kind = "recovery code" if isinstance(device, StaticDevice) else "authenticator"
    audit.record(
        user,
        "auth.mfa_verified",
        user,
        request=request,
        customer=user.customer,
        detail={"device": kind},
    )
    return True
