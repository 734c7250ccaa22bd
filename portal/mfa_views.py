"""Two-factor pages: enrol an authenticator, enter a code, see the recovery codes once."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from portal import mfa

RECOVERY_CODES_SESSION_KEY = "bdr_new_recovery_codes"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


@login_required
def mfa_enrol(request):
    if mfa.has_device(request.user) and not request.user.is_verified():
        # A new authenticator replaces the old one only from a verified session.
        return redirect("mfa_verify")
    device = mfa.pending_device(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = mfa.confirm_enrolment(request, device, form.cleaned_data["code"])
        if codes is not None:
            request.session[RECOVERY_CODES_SESSION_KEY] = codes
            query = urlencode({"next": _next_url(request)})
            return redirect(f"{reverse('mfa_recovery_codes')}?{query}")
        form.add_error(
            "code", "That code is not right. Check the clock of your phone and try again."
        )
    uri = mfa.otpauth_uri(device)
    context = {
        "form": form,
        "secret": mfa.secret_of(device),
        "uri": uri,
        "qr_svg": mfa.qr_svg(uri),
        "required": mfa.mfa_required(request.user),
        "next": _next_url(request),
    }
    return render(request, "mfa/enrol.html", context)


@login_required
def mfa_verify(request):
    if request.user.is_verified():
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if mfa.verify(request, form.cleaned_data["code"]):
            return redirect(_next_url(request))
        form.add_error("code", "That code is not right (or a recovery code already used).")
    return render(request, "mfa/verify.html", {"form": form, "next": _next_url(request)})


@login_required
def mfa_recovery_codes(request):
    """Shown once, right after enrolment; reloading the page shows nothing more."""
    codes = request.session.pop(RECOVERY_CODES_SESSION_KEY, None)
    return render(request, "mfa/recovery_codes.html", {"codes": codes, "next": _next_url(request)})
