"""Signing a test client in the way a person ends up signed in: password, then, for users who
need it, a second factor. ``force_login`` alone leaves MSP staff at the code page, as it
should; these helpers add what django-otp's own sign-in stores in the session."""

from __future__ import annotations

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import mfa


def authenticator_for(user) -> TOTPDevice:
    """The user's confirmed authenticator, made if they have none (as after enrolment)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def force_login_verified(client, user) -> None:
    """``client.force_login`` plus the OTP verification a user who needs MFA would have done."""
    client.force_login(user)
    if mfa.mfa_required(user) or mfa.has_device(user):
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = authenticator_for(user).persistent_id
        session.save()
