"""Fleet pages: protection by server (MSP staff: every customer; a customer admin: their own),
retention compliance and timelines, acknowledging alerts, maintenance windows."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from appliances.models import Alert, Appliance, ProtectedServer
from monitoring import retention_status, selectors, services
from monitoring.forms import MaintenanceForm
from monitoring.models import MaintenanceWindow
from monitoring.rows import FleetRows
from portal.access import msp_required, roles_required
from portal.models import Customer, Role
from portal.pagination import paginate
from portal.tenancy import get_for_user

fleet_roles_required = roles_required(Role.MSP_ADMIN, Role.TECHNICIAN, Role.CUSTOMER_ADMIN)


def _live(request, full: str, partial: str, context: dict):
    """The whole page, or only its live part when htmx refreshes it."""
    template = partial if request.headers.get("HX-Request") else full
    return render(request, template, context)


@fleet_roles_required
def fleet(request):
    fleet_filter = selectors.FleetFilter.from_request(request.user, request.GET)
    counts = selectors.state_counts(request.user, fleet_filter)
    servers = selectors.fleet_servers(request.user, fleet_filter)
    page = paginate(request, servers, count=fleet_filter.rows_counted(counts))
    make = FleetRows(request, timezone.now())
    context = {
        "filter": fleet_filter,
        "counts": counts,
        "page": page,
        "rows": [make.row(status) for status in page],
        "alerts": selectors.open_engine_alerts(request.user)[:20] if request.user.is_msp else [],
        "refresh_seconds": settings.BDR_FLEET_REFRESH_SECONDS,
    }
    return _live(request, "monitoring/fleet.html", "monitoring/partials/fleet_live.html", context)


@fleet_roles_required
def fleet_retention(request):
    fleet_filter = selectors.FleetFilter.from_request(request.user, request.GET)
    page = paginate(request, selectors.out_of_compliance(request.user, fleet_filter))
    return render(request, "monitoring/retention.html", {"filter": fleet_filter, "page": page})


@fleet_roles_required
def server_retention(request, server_pk: int):
    server = get_for_user(ProtectedServer, request.user, pk=server_pk)
    now = timezone.now()
    server, timeline = retention_status.server_timeline(server, now)
    context = {"server": server, "timeline": timeline, "now": now}
    return render(request, "monitoring/server_retention.html", context)


def _back(request, default: str):
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(default)


@msp_required
@require_POST
def alert_acknowledge(request, alert_pk: int):
    alert = get_for_user(Alert, request.user, pk=alert_pk)
    if services.acknowledge_alert(alert, actor=request.user, now=timezone.now(), request=request):
        messages.success(request, f"Acknowledged: {alert.message}")
    else:
        messages.info(request, "That alert was already acknowledged or resolved.")
    return _back(request, "fleet")


@msp_required
def maintenance_list(request):
    windows = selectors.maintenance_for(request.user).filter(ends_at__gt=timezone.now())
    return render(request, "monitoring/maintenance.html", {"page": paginate(request, windows)})


@msp_required
def maintenance_appliance(request, appliance_pk: int):
    appliance = get_for_user(Appliance, request.user, pk=appliance_pk)
    return _window_form(request, appliance.customer, appliance, f"Maintenance of {appliance.name}")


@msp_required
def maintenance_customer(request, customer_pk: int):
    customer = get_for_user(Customer, request.user, pk=customer_pk)
    title = f"Maintenance of every appliance of {customer.name}"
    return _window_form(request, customer, None, title)


def _window_form(request, customer, appliance, title: str):
    form = MaintenanceForm(request.POST or None, now=timezone.now())
    if request.method == "POST" and form.is_valid():
        try:
            services.create_window(customer=customer, appliance=appliance, actor=request.user,
                                   request=request, **form.cleaned_data)  # fmt: skip
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{title}: scheduled.")
            return redirect("maintenance_list")
    return render(request, "portal/form.html", {"form": form, "title": title})


@msp_required
@require_POST
def maintenance_end(request, window_pk: int):
    window = get_for_user(MaintenanceWindow, request.user, pk=window_pk)
    services.end_window(window, actor=request.user, now=timezone.now(), request=request)
    messages.success(request, "Maintenance ended.")
    return redirect("maintenance_list")
