"""VM pages: start a VM of a recovery point, watch its screen, stop it (technicians, MSP admins)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.access import msp_required
from portal.tenancy import get_for_user
from restores import console_access, virtualization
from restores.models import RecoveryPoint, VirtualMachine, VmNetwork


@msp_required
def vm_list(request):
    vms = (
        VirtualMachine.objects.for_user(request.user)
        .select_related("server", "point")
        .defer("point__boot_screenshot")[:200]
    )
    return render(request, "restores/vm_list.html", {"vms": vms})


@msp_required
def vm_start(request, point_pk: int):
    point = get_for_user(RecoveryPoint, request.user, pk=point_pk)
    if request.method != "POST":
        cpus, memory = virtualization.vm_profile(point)
        context = {"point": point, "nets": VmNetwork.choices, "cpus": cpus, "memory": memory}
        return render(request, "restores/vm_start.html", context)
    try:
        vm = virtualization.start_vm(
            point, actor=request.user, request=request, net=request.POST.get("net", "isolated")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("restore_server_points", server_pk=point.server_id)
    return redirect("vm_detail", vm_pk=vm.pk)


@msp_required
def vm_detail(request, vm_pk: int):
    vm = virtualization.refresh_vm(get_for_user(VirtualMachine, request.user, pk=vm_pk))
    template = (
        "restores/vm_status.html"
        if request.headers.get("HX-Request")
        else "restores/vm_detail.html"
    )
    # While the page's live console runs it asks for no screenshots (see vm_console.html).
    context = {"vm": vm, "console_live": request.GET.get("console") == "live"}
    return render(request, template, context)


@msp_required
def vm_screen(request, vm_pk: int):
    vm = get_for_user(VirtualMachine, request.user, pk=vm_pk)
    png = virtualization.screenshot(vm)
    if not png:
        return HttpResponse(status=204)
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response


@msp_required
@require_POST
def vm_console_token(request, vm_pk: int):
    """Where noVNC connects for this VM's console and the websocket subprotocols that carry
    its one-time token (POST: it is audited). The token travels in the
    Sec-WebSocket-Protocol header, never in the URL."""
    vm = get_for_user(VirtualMachine, request.user, pk=vm_pk)
    try:
        token = console_access.issue_token(vm, actor=request.user, request=request)
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=409)
    protocols = [console_access.PROTOCOL, console_access.TOKEN_PREFIX + token]
    return JsonResponse(
        {
            "url": settings.BDR_CONSOLE_PROXY_URL,
            "protocols": protocols,
            "expires_in": console_access.token_seconds(),
        }
    )


@msp_required
@require_POST
def vm_stop(request, vm_pk: int):
    vm = get_for_user(VirtualMachine, request.user, pk=vm_pk)
    try:
        virtualization.stop_vm(
            vm, actor=request.user, request=request, force=request.POST.get("force") == "1"
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("vm_detail", vm_pk=vm.pk)


@msp_required
def point_boot_screenshot(request, point_pk: int):
    point = get_for_user(RecoveryPoint, request.user, pk=point_pk)
    if not point.boot_screenshot:  # deferred by the manager: loaded here
        return HttpResponse(status=404)
    return HttpResponse(bytes(point.boot_screenshot), content_type="image/png")
