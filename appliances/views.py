"""Appliance pages for MSP staff: inventory, enrolment, servers, backups, jobs, alerts."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from appliances import backups, enrolment, jobs, key_rotation, selectors, services, sync
from appliances.forms import ApplianceForm, PinHostKeyForm, RetentionForm, ScheduleForm, ServerForm
from appliances.models import Appliance, Job, ProtectedServer
from portal.access import msp_required
from portal.pagination import paginate
from portal.params import BadParameter, choice_param
from portal.tenancy import get_for_user
from restores.models import Tier


@msp_required
def appliance_list(request):
    page = paginate(request, selectors.appliances_for(request.user))
    return render(request, "appliances/appliance_list.html", {"page": page})


@msp_required
def appliance_create(request):
    form = ApplianceForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            appliance = services.create_appliance(
                actor=request.user,
                request=request,
                customer=form.cleaned_data["site"].customer,
                **form.cleaned_data,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{appliance.name} added. Enrol it next.")
            return redirect("appliance_enrol", appliance_pk=appliance.pk)
    return render(request, "portal/form.html", {"form": form, "title": "New appliance"})


@msp_required
def appliance_detail(request, appliance_pk: int):
    appliance = get_for_user(Appliance, request.user, pk=appliance_pk)
    context = {
        "appliance": appliance,
        "servers": selectors.servers_for(request.user).filter(appliance=appliance),
        "jobs": selectors.jobs_for(request.user).filter(appliance=appliance)[:20],
    }
    return render(request, "appliances/appliance_detail.html", context)


@msp_required
def appliance_enrol(request, appliance_pk: int):
    """Step 1: the authorized_keys line. Step 2: test, showing the host key. Step 3: pin it."""
    appliance = get_for_user(Appliance, request.user, pk=appliance_pk)
    enrolment.ensure_client_key(appliance, actor=request.user, request=request)
    context = {
        "appliance": appliance,
        "authorized_keys_line": enrolment.authorized_keys_line(appliance),
    }
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "test":
                key, fp = enrolment.probe_host_key(appliance)
                context.update(
                    presented_key=key,
                    fingerprint=fp,
                    pin_form=PinHostKeyForm(initial={"fingerprint": fp}),
                )
            elif action == "pin":
                form = PinHostKeyForm(request.POST)
                if form.is_valid():
                    enrolment.pin_host_key(
                        appliance,
                        form.cleaned_data["fingerprint"],
                        actor=request.user,
                        request=request,
                    )
                    messages.success(request, f"{appliance.name} is enrolled and online.")
                    return redirect("appliance_detail", appliance_pk=appliance.pk)
            elif action == "reset":
                enrolment.reset_enrolment(appliance, actor=request.user, request=request)
                messages.success(
                    request, "Enrolment reset: test the connection and pin the new key."
                )
                return redirect("appliance_enrol", appliance_pk=appliance.pk)
        except enrolment.EnrolmentError as exc:
            messages.error(request, str(exc))
    return render(request, "appliances/appliance_enrol.html", context)


KEY_ACTIONS = {
    "start": key_rotation.start_rotation,
    "finish": key_rotation.finish_rotation,
    "cancel": key_rotation.cancel_rotation,
}


@msp_required
def appliance_key(request, appliance_pk: int):
    """The portal's SSH key for this appliance, and its rotation (appliances/key_rotation.py)."""
    appliance = get_for_user(Appliance, request.user, pk=appliance_pk)
    if request.method == "POST":
        action = choice_param(request.POST, "action", KEY_ACTIONS)
        if not action:
            raise BadParameter("action must be one of start, finish, cancel.")
        try:
            result = KEY_ACTIONS[action](appliance, actor=request.user, request=request)
        except enrolment.EnrolmentError as exc:
            messages.error(request, str(exc))
        else:
            if action == "finish":
                messages.success(request, "The portal now uses the new key. On the appliance, "
                                 f"remove the old line, the one that ends {result}")  # fmt: skip
        return redirect("appliance_key", appliance_pk=appliance.pk)
    waiting = appliance.next_client_public_key
    context = {
        "appliance": appliance,
        "current_line": enrolment.authorized_keys_line(appliance),
        "next_line": enrolment.authorized_keys_line(appliance, waiting) if waiting else "",
    }
    return render(request, "appliances/appliance_key.html", context)


@msp_required
@require_POST
def appliance_poll(request, appliance_pk: int):
    appliance = get_for_user(Appliance, request.user, pk=appliance_pk)
    try:
        sync.poll_appliance(appliance)
        messages.success(request, f"{appliance.name} answered; recovery points are up to date.")
    except sync.ApplianceUnavailable as exc:
        messages.error(request, str(exc))
    return redirect("appliance_detail", appliance_pk=appliance.pk)


@msp_required
def server_create(request, appliance_pk: int):
    appliance = get_for_user(Appliance, request.user, pk=appliance_pk)
    form = ServerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        volumes = {data.pop("volume_name"): data.pop("volume_source")}
        try:
            server = services.add_server(
                appliance, actor=request.user, request=request, volumes=volumes, **data
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            problem = services.push_config(server)
            if problem:
                messages.warning(request, problem)
            messages.success(request, f"{server} is now protected by {appliance.name}.")
            return redirect("server_detail", server_pk=server.pk)
    return render(
        request,
        "portal/form.html",
        {"form": form, "title": f"Protect a server on {appliance.name}"},
    )


@msp_required
def server_detail(request, server_pk: int):
    server = get_for_user(ProtectedServer, request.user, pk=server_pk)
    services.ensure_defaults(server)  # servers made outside the service (admin) lack them
    schedule_form = ScheduleForm(instance=server.schedule, prefix="schedule")
    retention_form = RetentionForm(instance=server.retention, prefix="retention")
    if request.method == "POST":
        if "schedule-interval_minutes" in request.POST:
            schedule_form = ScheduleForm(request.POST, instance=server.schedule, prefix="schedule")
            if schedule_form.is_valid():
                services.update_schedule(
                    server.schedule,
                    actor=request.user,
                    request=request,
                    **schedule_form.cleaned_data,
                )
                return _pushed(request, server, "Schedule saved.")
        else:
            retention_form = RetentionForm(
                request.POST, instance=server.retention, prefix="retention"
            )
            if retention_form.is_valid():
                services.update_retention(
                    server.retention,
                    actor=request.user,
                    request=request,
                    **retention_form.cleaned_data,
                )
                return _pushed(request, server, "Retention saved.")
    points = selectors.points_by_tier(request.user, server)
    context = {
        "server": server,
        "volumes": server.volumes.all(),
        "tiers": [(label, points.get(value, [])) for value, label in Tier.choices],
        "jobs": selectors.jobs_for(request.user).filter(server=server)[:10],
        "schedule_form": schedule_form,
        "retention_form": retention_form,
    }
    return render(request, "appliances/server_detail.html", context)


def _pushed(request, server, text):
    problem = services.push_config(server)
    messages.success(request, text)
    if problem:
        messages.warning(request, problem)
    return redirect("server_detail", server_pk=server.pk)


@msp_required
@require_POST
def server_backup_now(request, server_pk: int):
    return _queued_job_page(request, server_pk, backups.start_backup)


@msp_required
@require_POST
def server_verify_now(request, server_pk: int):
    return _queued_job_page(request, server_pk, backups.start_verify)


def _queued_job_page(request, server_pk: int, start):
    server = get_for_user(ProtectedServer, request.user, pk=server_pk)
    try:
        job = start(server, actor=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("server_detail", server_pk=server.pk)
    return redirect("job_detail", job_pk=job.pk)


@msp_required
def job_list(request):
    page = paginate(request, selectors.jobs_for(request.user))
    return render(request, "appliances/job_list.html", {"page": page})


@msp_required
def job_detail(request, job_pk: int):
    job = get_for_user(Job, request.user, pk=job_pk)
    return render(request, "appliances/job_detail.html", {"job": job})


@msp_required
def job_progress(request, job_pk: int):
    """The live part of the job page, polled by htmx while the job runs."""
    job = get_for_user(Job, request.user, pk=job_pk)
    if settings.CELERY_TASK_ALWAYS_EAGER and job.is_active:
        # Without a broker there is no follower task: the page's polling drives progress.
        job = jobs.refresh_job(job)
    return render(request, "appliances/partials/job_progress.html", {"job": job})


@msp_required
def alert_list(request):
    page = paginate(request, selectors.open_alerts_for(request.user))
    return render(request, "appliances/alert_list.html", {"page": page})
