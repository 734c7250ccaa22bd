"""The Status API keys page (MSP admins): issue a key (shown once), see when each was last
used, revoke one."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from portal.access import msp_admin_required
from portal.pagination import paginate
from portal.tenancy import get_for_user
from statusapi import services
from statusapi.forms import ApiKeyForm
from statusapi.models import ApiKey


def _page(request, form, issued=None, plaintext=None):
    keys = ApiKey.objects.for_user(request.user).select_related("customer", "created_by")
    context = {"form": form, "page": paginate(request, keys), "issued": issued,
               "plaintext": plaintext, "now": timezone.now()}  # fmt: skip
    response = render(request, "statusapi/keys.html", context)
    if plaintext:
        response["Cache-Control"] = "no-store"  # the key must not outlive this page
    return response


@msp_admin_required
def apikey_list(request):
    form = ApiKeyForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        now = timezone.now()
        data = form.cleaned_data
        try:
            key, plaintext = services.issue_key(
                name=data["name"], customer=data["customer"], access=data["access"],
                expires_at=form.expires_at(now), actor=request.user, now=now, request=request,
            )  # fmt: skip
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            # Rendered, not redirected: the key is in this one response and nowhere else.
            return _page(request, ApiKeyForm(user=request.user), key, plaintext)
    return _page(request, form)


@msp_admin_required
@require_POST
def apikey_revoke(request, key_pk: int):
    key = get_for_user(ApiKey, request.user, pk=key_pk)
    if services.revoke_key(key, actor=request.user, now=timezone.now(), request=request):
        messages.success(request, f"Revoked {key}. Requests with it are refused from now on.")
    else:
        messages.info(request, f"{key} was revoked already.")
    return redirect("apikey_list")
