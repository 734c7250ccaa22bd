"""Restore pages: customers and staff find a recovery point to restore from."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render

from appliances.models import ProtectedServer
from portal.access import any_role_required
from portal.tenancy import get_for_user
from restores import selectors


@any_role_required
def restore_home(request):
    servers = selectors.restorable_servers(request.user)
    return render(request, "restores/home.html", {"servers": servers})


@any_role_required
def server_points(request, server_pk: int):
    server = get_for_user(ProtectedServer, request.user, pk=server_pk)
    page = Paginator(selectors.points_of(request.user, server), 100).get_page(
        request.GET.get("page")
    )
    return render(request, "restores/server_points.html", {"server": server, "page": page})
