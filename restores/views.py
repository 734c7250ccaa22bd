"""Restore pages: customers and staff find a recovery point and restore files from it.

Customer users may open these pages (and their account pages) only; putting files back,
exporting a volume and bare-metal restore are for the MSP's staff.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST

from appliances import jobs
from appliances.file_names import display_name, path_param
from appliances.models import Job, ProtectedServer
from portal.access import admins_required, msp_required, roles_required
from portal.models import Role, User
from portal.pagination import paginate
from portal.params import choice_param, int_param
from portal.tenancy import get_for_user
from restores import grants, selectors, services, session_limits
from restores.forms import BareMetalForm, ExportForm, PutBackForm, RestoreGrantForm
from restores.models import RecoveryPoint, SessionKind, Tier

any_role_required = roles_required(*Role)
restore_auditors = roles_required(Role.MSP_ADMIN, Role.TECHNICIAN, Role.CUSTOMER_ADMIN)


@any_role_required
def restore_home(request):
    servers = selectors.restorable_servers(request.user)
    return render(request, "restores/home.html", {"servers": servers})


@any_role_required
def server_points(request, server_pk: int):
    server = get_for_user(ProtectedServer, request.user, pk=server_pk)
    tier = choice_param(request.GET, "tier", Tier.values)
    points = selectors.points_of(request.user, server)
    if tier:
        points = points.filter(tier=tier)
    page = paginate(request, points, per_page=100)
    context = {"server": server, "page": page, "tiers": Tier.choices, "tier": tier}
    return render(request, "restores/server_points.html", context)


def _partition(request) -> int | None:
    """``?partition=`` (or the form's): a partition number, or None for the first readable."""
    data = request.POST if request.method == "POST" else request.GET
    return int_param(data, "partition", maximum=128)


def _point(request, point_pk: int) -> RecoveryPoint:
    return selectors.point_for(request.user, point_pk)


def _not_found(request, message: str = "That file is not in this backup."):
    # A response, not Http404: the request's transaction must keep the audit of the refusal.
    return render(request, "404.html", {"message": message}, status=404)


def _too_many(request, exc):
    # Too many appliance sessions at once (restores/session_limits.py): say so, nothing opened.
    return render(request, "restores/busy.html", {"message": str(exc)}, status=429)


def _unavailable(request, point, exc):
    context = {"point": point, "message": str(exc)}
    # 200, not 5xx: the portal works; the appliance is away, and the page says so plainly.
    return render(request, "restores/unavailable.html", context)


@any_role_required
@transaction.non_atomic_requests
def browse(request, point_pk: int):
    point = _point(request, point_pk)
    path = request.GET.get("path") or "/"
    partition = _partition(request)
    try:
        appliance = point.server.appliance
        with services.appliance_session(appliance, request.user, SessionKind.BROWSE) as agent:
            parts = services.partitions(agent, request.user, point)
            listing = services.browse(agent, request.user, point, path, partition,
                                      request=request)  # fmt: skip
    except services.PathRefused:
        return _not_found(request, "That folder is not in this backup.")
    except services.RestoreUnavailable as exc:
        return _unavailable(request, point, exc)
    except session_limits.LimitReached as exc:
        return _too_many(request, exc)
    number = listing["partition"]
    for entry in listing["entries"]:
        entry["changed"] = selectors.when(entry.get("mtime"))
        entry["label"], entry["param"] = display_name(entry["name"]), path_param(entry["path"])
        if entry["type"] == "file":
            token = services.sign_download(request.user, point, [entry["path"]], number)
            entry["download_url"] = reverse("restore_download", args=[token])
    context = {
        "point": point,
        "listing": listing,
        "path": listing["path"],
        "crumbs": selectors.breadcrumbs(listing["path"]),
        "partitions": [p for p in parts if p["filesystem"]],
        "partition": number,
        "put_back_form": PutBackForm() if request.user.is_msp else None,
    }
    return render(request, "restores/browse.html", context)


@any_role_required
@transaction.non_atomic_requests
def search(request, point_pk: int):
    point = _point(request, point_pk)
    query = request.GET.get("q", "")
    partition = _partition(request)
    try:
        result = services.search(request.user, point, query, partition, request=request)
    except services.RestoreUnavailable as exc:
        return _unavailable(request, point, exc)
    except session_limits.LimitReached as exc:
        return _too_many(request, exc)
    for entry in result["matches"]:
        if entry["type"] == "file":
            token = services.sign_download(request.user, point, [entry["path"]],
                                           entry.get("partition"))  # fmt: skip
            entry["download_url"] = reverse("restore_download", args=[token])
        folder = entry["path"].rsplit("/", 1)[0] or "/"
        entry["folder"], entry["folder_label"] = path_param(folder), display_name(folder)
        entry["label"] = display_name(entry["name"])
    context = {"point": point, "query": query, "result": result}
    return render(request, "restores/search.html", context)


@any_role_required
@require_POST
def download_selected(request, point_pk: int):
    """The selected files and folders: one file as is, anything more as a zip."""
    point = _point(request, point_pk)
    paths = request.POST.getlist("paths")
    try:
        token = services.sign_download(request.user, point, paths, _partition(request),
                                       request=request)  # fmt: skip
    except services.PathRefused:
        return _not_found(request)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect(f"{reverse('restore_browse', args=[point.pk])}?path=/")
    return redirect("restore_download", token=token)


@any_role_required
@transaction.non_atomic_requests
def download(request, token: str):
    """Stream a download from the appliance; the link is the user's own and short-lived."""
    try:
        dl = services.open_download(request.user, token, request=request)
    except services.LinkRefused as exc:
        return _not_found(request, str(exc))
    try:
        size, body = services.start_download(request.user, dl, request=request)
    except services.PathRefused:
        return _not_found(request)
    except services.RestoreUnavailable as exc:
        return _unavailable(request, dl.point, exc)
    except session_limits.LimitReached as exc:
        return _too_many(request, exc)
    kind = "application/zip" if dl.is_zip else "application/octet-stream"
    response = StreamingHttpResponse(body, content_type=kind)
    response["Content-Disposition"] = content_disposition_header(True, services.download_name(dl))
    if size is not None:
        response["Content-Length"] = str(size)
    response["Cache-Control"] = "no-store"
    return response


@msp_required
@require_POST
def put_back(request, point_pk: int):
    point = _point(request, point_pk)
    form = PutBackForm(request.POST)
    if not form.is_valid():
        errors = form.errors.get("folder") or ["Name a folder to restore into."]
        messages.error(request, errors[0])
        return redirect(f"{reverse('restore_browse', args=[point.pk])}?path=/")
    try:
        job = services.put_back(request.user, point, request.POST.getlist("paths"),
                                form.cleaned_data["folder"], _partition(request),
                                form.cleaned_data["overwrite"], request=request)  # fmt: skip
    except services.PathRefused:
        return _not_found(request)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect(f"{reverse('restore_browse', args=[point.pk])}?path=/")
    return redirect("restore_job", job_pk=job.pk)


@msp_required
def volume(request, point_pk: int):
    """Whole-volume restores of a point: export as an image, or bare metal to a target."""
    point = _point(request, point_pk)
    export_form = ExportForm(request.POST if "export" in request.POST else None, prefix="export")
    bm_form = BareMetalForm(request.POST if "baremetal" in request.POST else None, prefix="bm")
    try:
        if request.method == "POST" and export_form.is_bound and export_form.is_valid():
            d = export_form.cleaned_data
            job = services.export_volume(request.user, point, d["folder"], d["format"],
                                         request=request,
                                         download=d["deliver"] == "download")  # fmt: skip
            return redirect("restore_job", job_pk=job.pk)
        if request.method == "POST" and bm_form.is_bound and bm_form.is_valid():
            d = bm_form.cleaned_data
            job = services.bare_metal(request.user, point, d["target"], d["port"],
                                      d["host_key"], d["device"], request=request)  # fmt: skip
            return redirect("restore_job", job_pk=job.pk)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    context = {"point": point, "export_form": export_form, "bm_form": bm_form}
    return render(request, "restores/volume.html", context)


@msp_required
def job(request, job_pk: int):
    job = get_for_user(Job, request.user, pk=job_pk)
    return render(request, "restores/job.html", _job_context(request, job))


@msp_required
@transaction.non_atomic_requests
def export_download(request, job_pk: int):
    """Stream a finished export image from the appliance to the technician."""
    job = get_for_user(Job, request.user, pk=job_pk)
    try:
        name, size, body = services.export_download(request.user, job, request=request)
    except services.RestoreUnavailable as exc:
        return render(request, "restores/unavailable.html", {"message": str(exc)})
    except session_limits.LimitReached as exc:
        return _too_many(request, exc)
    response = StreamingHttpResponse(body, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, name)
    if size:
        response["Content-Length"] = str(size)
    response["Cache-Control"] = "no-store"
    return response


@msp_required
def job_progress(request, job_pk: int):
    job = get_for_user(Job, request.user, pk=job_pk)
    from django.conf import settings

    if settings.CELERY_TASK_ALWAYS_EAGER and job.is_active:
        job = jobs.refresh_job(job)
    return render(request, "restores/partials/job_progress.html", _job_context(request, job))


def _job_context(request, job: Job) -> dict:
    return {"job": job, "eta": services.job_eta_seconds(job)}


@restore_auditors
def restore_audit(request):
    """Who restored what: browse, search, download and restore events of the user's customers."""
    page = paginate(request, selectors.restore_events_for(request.user))
    return render(request, "restores/audit.html", {"page": page})


@admins_required
def restore_grants(request, user_pk: int):
    """A customer user's restore grants, edited by their customer's admin (or an MSP admin)."""
    user = get_for_user(User, request.user, pk=user_pk, role=Role.CUSTOMER_USER)
    servers = grants.grantable_servers(request.user, user)
    initial = {"servers": sorted(grants.granted_server_ids(user))}
    data = request.POST if request.method == "POST" else None  # none ticked: an empty POST
    form = RestoreGrantForm(data, servers=servers, initial=initial)
    if request.method == "POST":
        if not form.is_valid():
            context = {"form": form, "grantee": user}
            return render(request, "restores/grants.html", context, status=400)
        grants.set_restore_grants(
            request.user, user, list(form.cleaned_data["servers"]), request=request
        )
        messages.success(request, f"Restore grants of {user.username} saved.")
        return redirect("restore_grants", user_pk=user.pk)
    return render(request, "restores/grants.html", {"form": form, "grantee": user})
