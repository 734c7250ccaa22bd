"""Keep a signed-in user who still owes a second factor out of every page but sign-in's own."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from portal import mfa

# Pages an unverified session may still open: the second-factor pages and leaving.
OPEN_URL_NAMES = ("mfa_enrol", "mfa_verify", "logout", "login")


class MFARequiredMiddleware:
    """After ``OTPMiddleware``: a user who needs MFA, or has enrolled, is sent to enrol or
    verify until the session is OTP-verified. This covers every view, the API and the
    Django admin, so no view can forget it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_verified()
            and not self._is_open(request.path)
        ):
            if mfa.has_device(user):
                return self._send_to("mfa_verify", request)
            if mfa.mfa_required(user):
                return self._send_to("mfa_enrol", request)
        return self.get_response(request)

    @staticmethod
    def _is_open(path: str) -> bool:
        if path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return True
        return any(path == reverse(name) for name in OPEN_URL_NAMES)

    @staticmethod
    def _send_to(name: str, request):
        if request.path.startswith("/api/"):
            # A program gets an answer it can read, not a page to fill in.
            return JsonResponse({"detail": "Two-factor sign-in required."}, status=403)
        target = reverse(name)
        if request.method == "GET":
            target += "?" + urlencode({"next": request.get_full_path()})
        return redirect(target)
