"""Notification pages (MSP admins): e-mail recipients, webhook endpoints with their secret
(shown once, after creation or rotation), the delivery log of each endpoint, and replay."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from monitoring import notify_services as services
from monitoring.notify_forms import EndpointForm, RecipientForm
from monitoring.notify_models import Delivery, DeliveryAttempt, EmailRecipient, WebhookEndpoint
from portal.access import msp_admin_required
from portal.pagination import paginate
from portal.tenancy import get_for_user


@msp_admin_required
def notifications(request):
    recipients = EmailRecipient.objects.for_user(request.user).select_related("customer")
    endpoints = WebhookEndpoint.objects.for_user(request.user).select_related("customer")
    context = {"recipients": recipients, "endpoints": endpoints}
    return render(request, "monitoring/notifications.html", context)


def _form_page(request, form, title: str):
    return render(request, "portal/form.html", {"form": form, "title": title})


@msp_admin_required
def recipient_new(request):
    form = RecipientForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            services.add_recipient(actor=request.user, request=request, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{form.cleaned_data['address']} will receive notices.")
            return redirect("notifications")
    return _form_page(request, form, "New e-mail recipient")


@msp_admin_required
@require_POST
def recipient_delete(request, recipient_pk: int):
    recipient = get_for_user(EmailRecipient, request.user, pk=recipient_pk)
    services.remove_recipient(recipient, actor=request.user, request=request)
    messages.success(request, f"{recipient.address} removed.")
    return redirect("notifications")


def _secret_page(request, endpoint, secret: str, what: str):
    return render(request, "monitoring/webhook_secret.html",
                  {"endpoint": endpoint, "secret": secret, "what": what})  # fmt: skip


@never_cache
@msp_admin_required
def endpoint_new(request):
    form = EndpointForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = services.add_endpoint(
                actor=request.user, request=request, **form.cleaned_data
            )
        except ValidationError as exc:
            form.add_error("url", exc)
        else:
            return _secret_page(request, endpoint, secret, "created")
    return _form_page(request, form, "New webhook endpoint")


@msp_admin_required
def endpoint_detail(request, endpoint_pk: int):
    endpoint = get_for_user(WebhookEndpoint, request.user, pk=endpoint_pk)
    deliveries = (
        Delivery.objects.for_user(request.user)
        .filter(endpoint=endpoint)
        .select_related("notice__alert")
        .prefetch_related(Prefetch("tries", DeliveryAttempt.objects.order_by("-at", "-id")))
    )
    context = {"endpoint": endpoint, "page": paginate(request, deliveries, per_page=25)}
    return render(request, "monitoring/webhook_endpoint.html", context)


@never_cache
@msp_admin_required
@require_POST
def endpoint_rotate(request, endpoint_pk: int):
    endpoint = get_for_user(WebhookEndpoint, request.user, pk=endpoint_pk)
    secret = services.rotate_secret(endpoint, now=timezone.now(), actor=request.user,
                                    request=request)  # fmt: skip
    endpoint.refresh_from_db()
    return _secret_page(request, endpoint, secret, "rotated")


@msp_admin_required
@require_POST
def endpoint_enable(request, endpoint_pk: int):
    endpoint = get_for_user(WebhookEndpoint, request.user, pk=endpoint_pk)
    services.enable_endpoint(endpoint, actor=request.user, request=request)
    messages.success(request, f"{endpoint.name} enabled: new notices go to it again.")
    return redirect("webhook_endpoint", endpoint.pk)


@msp_admin_required
@require_POST
def endpoint_delete(request, endpoint_pk: int):
    endpoint = get_for_user(WebhookEndpoint, request.user, pk=endpoint_pk)
    services.remove_endpoint(endpoint, actor=request.user, request=request)
    messages.success(request, f"{endpoint.name} removed.")
    return redirect("notifications")


@msp_admin_required
@require_POST
def delivery_replay(request, delivery_pk: int):
    delivery = get_for_user(Delivery, request.user, pk=delivery_pk, endpoint__isnull=False)
    try:
        services.replay(delivery, now=timezone.now(), actor=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        from monitoring.tasks import deliver_notices

        transaction.on_commit(deliver_notices.delay)
        messages.success(request, f"{delivery.message_id} will be sent again.")
    return redirect("webhook_endpoint", delivery.endpoint_id)
