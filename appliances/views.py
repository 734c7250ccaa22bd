"""Appliance pages for MSP staff."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render

from appliances import selectors
from appliances.models import Appliance, Job, ProtectedServer
from portal.access import msp_required
from portal.tenancy import get_for_user


def _page(request, queryset, per_page=50):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


@msp_required
def appliance_list(request):
    page = _page(request, selectors.appliances_for(request.user))
    return render(request, "appliances/appliance_list.html", {"page": page})


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
def server_detail(request, server_pk: int):
    server = get_for_user(ProtectedServer, request.user, pk=server_pk)
    context = {"server": server, "volumes": server.volumes.all()}
    return render(request, "appliances/server_detail.html", context)


@msp_required
def job_list(request):
    page = _page(request, selectors.jobs_for(request.user))
    return render(request, "appliances/job_list.html", {"page": page})


@msp_required
def job_detail(request, job_pk: int):
    job = get_for_user(Job, request.user, pk=job_pk)
    return render(request, "appliances/job_detail.html", {"job": job})


@msp_required
def alert_list(request):
    page = _page(request, selectors.open_alerts_for(request.user))
    return render(request, "appliances/alert_list.html", {"page": page})
