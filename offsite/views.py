"""Off-site pages: the vault inventory (MSP admins), each appliance's vault, throttle and
off-site state (MSP staff; customers read the state of their own), replication jobs."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from appliances import jobs
from appliances.models import ProtectedServer
from offsite import selectors, services
from offsite.forms import AssignVaultForm, OffsiteRetentionForm, ThrottleForm, VaultForm
from offsite.models import OffsiteRetention, Vault
from portal.access import any_role_required, msp_admin_required, msp_required
from portal.pagination import paginate
from portal.tenancy import get_for_user


@any_role_required
def offsite_home(request):
    page = paginate(request, selectors.appliances_offsite_for(request.user))
    context = {"page": page, "now": timezone.now(), "threshold": _threshold()}
    return render(request, "offsite/home.html", context)


def _threshold() -> dt.timedelta:
    return dt.timedelta(hours=settings.BDR_OFFSITE_LAG_ALERT_HOURS)


@msp_admin_required
def vault_list(request):
    return render(request, "offsite/vault_list.html", {"vaults": selectors.vaults_with_usage()})


@msp_admin_required
def vault_create(request):
    return _vault_form(request, Vault(), "New vault")


@msp_admin_required
def vault_edit(request, vault_pk: int):
    vault = get_object_or_404(Vault, pk=vault_pk)
    return _vault_form(request, vault, f"Vault {vault.name}")


def _vault_form(request, vault: Vault, title: str):
    form = VaultForm(request.POST or None, instance=vault)
    if request.method == "POST" and form.is_valid():
        try:
            services.save_vault(form.save(commit=False), actor=request.user, request=request,
                                capacity_gb=form.cleaned_data["capacity_gb"],
                                changed=form.changed_data if vault.pk else None)  # fmt: skip
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Vault {vault.name} saved.")
            return redirect("vault_list")
    return render(request, "portal/form.html", {"form": form, "title": title})


@msp_required
def appliance_offsite(request, appliance_pk: int):
    appliance = selectors.appliance_offsite_for(request.user, appliance_pk)
    offsite = services.offsite_of(appliance)
    assign_form = AssignVaultForm(instance=offsite, prefix="vault")
    throttle_form = ThrottleForm(instance=offsite, prefix="throttle")
    if request.method == "POST":
        if "vault-vault" in request.POST:
            assign_form = AssignVaultForm(request.POST, instance=offsite, prefix="vault")
            if assign_form.is_valid():
                problem = services.assign_vault(appliance, assign_form.cleaned_data["vault"],
                                                actor=request.user, request=request)  # fmt: skip
                return _saved(request, appliance, "Vault saved.", problem)
        else:
            throttle_form = ThrottleForm(request.POST, instance=offsite, prefix="throttle")
            if throttle_form.is_valid():
                problem = services.set_windows(appliance, throttle_form.cleaned_data["windows"],
                                               actor=request.user, request=request)  # fmt: skip
                return _saved(request, appliance, "Throttle windows saved.", problem)
    context = {
        "appliance": appliance,
        "offsite": offsite,
        "assign_form": assign_form,
        "throttle_form": throttle_form,
        "jobs": selectors.replications_for(request.user, appliance)[:10],
        "running": selectors.running_replication(appliance),
        "vault_keys_line": services.vault_authorized_keys_line(offsite),
        "now": timezone.now(),
        "threshold": _threshold(),
    }
    return render(request, "offsite/appliance.html", context)


def _saved(request, appliance, text, problem):
    messages.success(request, text)
    if problem:
        messages.warning(request, problem)
    return redirect("appliance_offsite", appliance_pk=appliance.pk)


@any_role_required
def appliance_offsite_state(request, appliance_pk: int):
    """The live off-site state of one appliance (htmx), read-only for every role that sees it."""
    appliance = selectors.appliance_offsite_for(request.user, appliance_pk)
    running = selectors.running_replication(appliance)
    if running is not None and settings.CELERY_TASK_ALWAYS_EAGER and request.user.is_msp:
        running = jobs.refresh_job(running)  # no broker: the page's polling drives progress
    context = {"appliance": appliance, "offsite": getattr(appliance, "offsite", None),
               "running": running, "now": timezone.now(), "threshold": _threshold()}  # fmt: skip
    return render(request, "offsite/partials/state.html", context)


@msp_required
@require_POST
def appliance_replicate(request, appliance_pk: int):
    appliance = selectors.appliance_offsite_for(request.user, appliance_pk)
    try:
        job = services.start_replication(appliance, actor=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("appliance_offsite", appliance_pk=appliance.pk)
    return redirect("job_detail", job_pk=job.pk)


@msp_required
@require_POST
def appliance_offsite_refresh(request, appliance_pk: int):
    """Ask the appliance to ask its vault what it holds (and where it copied it) now."""
    appliance = selectors.appliance_offsite_for(request.user, appliance_pk)
    try:
        services.refresh_from_vault(appliance)
        messages.success(request, f"{appliance.name} asked its vault; the copies are up to date.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("appliance_offsite", appliance_pk=appliance.pk)


@msp_required
def server_offsite_retention(request, server_pk: int):
    """How long the vaults keep a server's points (may be longer than the appliance)."""
    server = get_for_user(ProtectedServer, request.user, pk=server_pk)
    policy = OffsiteRetention.objects.filter(server=server).first() or OffsiteRetention()
    form = OffsiteRetentionForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        problem = services.set_offsite_retention(server, form.cleaned_data, actor=request.user,
                                                 request=request)  # fmt: skip
        messages.success(request, f"Off-site retention of {server} saved.")
        if problem:
            messages.warning(request, problem)
        return redirect("server_detail", server_pk=server.pk)
    title = f"Off-site retention of {server}"
    return render(request, "portal/form.html", {"form": form, "title": title})
