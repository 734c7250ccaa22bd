"""The retention editor with its simulator: MSP staff and the server's customer admins edit
a server's retention policy and see, before saving, what it would keep and cost."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone

from appliances import retention_simulator, services
from appliances.forms import RetentionForm
from appliances.models import ProtectedServer
from portal.access import roles_required
from portal.models import Role
from portal.tenancy import get_for_user

editor_roles_required = roles_required(Role.MSP_ADMIN, Role.TECHNICIAN, Role.CUSTOMER_ADMIN)


def _server(request, server_pk: int) -> ProtectedServer:
    """The server with what every projection reads of it, in one query (404: not theirs)."""
    server = get_for_user(ProtectedServer, request.user, pk=server_pk)
    services.ensure_defaults(server)  # servers made outside the service (admin) lack them
    return server


def _projection(server, policy: dict | None) -> dict:
    if policy is None:
        return {"invalid": True}
    return {"sim": retention_simulator.simulate(server, policy, timezone.now())}


def _saved(server) -> dict:
    return {name: getattr(server.retention, name) for name in RetentionForm.Meta.fields}


@editor_roles_required
def retention_edit(request, server_pk: int):
    server = _server(request, server_pk)
    if request.method == "POST":
        form = RetentionForm(request.POST, instance=server.retention, prefix="retention")
        if form.is_valid():
            services.update_retention(
                server.retention, actor=request.user, request=request, **form.cleaned_data
            )
            problem = services.push_config(server)
            messages.success(request, "Retention saved.")
            if problem:
                messages.warning(request, problem)
            return redirect("retention_edit", server_pk=server.pk)
        policy = form.cleaned_data if form.is_valid() else None
    else:
        form = RetentionForm(instance=server.retention, prefix="retention")
        policy = _saved(server)
    context = {"server": server, "form": form, **_projection(server, policy)}
    return render(request, "appliances/retention_edit.html", context)


@editor_roles_required
def retention_simulate(request, server_pk: int):
    """The projection of the policy in the query (the form's fields), for htmx."""
    server = _server(request, server_pk)
    form = RetentionForm(request.GET, instance=server.retention, prefix="retention")
    policy = form.cleaned_data if form.is_valid() else None
    context = {"server": server, "form": form, **_projection(server, policy)}
    return render(request, "appliances/partials/retention_projection.html", context)
