"""The audit log writer. Services call ``record`` for every change they make."""

from __future__ import annotations

from typing import Any

from django.db import models

from portal.models import AuditEvent, Customer, User


def client_ip(request) -> str | None:
    """The caller's address; REMOTE_ADDR only, since forwarded headers can be forged."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _customer_of(obj: models.Model | None) -> Customer | None:
    if obj is None:
        return None
    if isinstance(obj, Customer):
        return obj
    path = getattr(type(obj), "tenant_path", None)
    if not path:
        return None
    target: Any = obj
    for part in path.split("__"):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def _actor(actor: User | None) -> dict:
    if actor is None or not actor.is_authenticated:
        return {"actor": None, "actor_label": "system", "actor_is_msp": False}
    return {"actor": actor, "actor_label": actor.get_username(), "actor_is_msp": actor.is_msp}


def record(
    actor: User | None,
    action: str,
    obj: models.Model | None = None,
    *,
    request=None,
    customer: Customer | None = None,
    detail: dict | None = None,
    address: str | None = None,
) -> AuditEvent:
    """Write one audit event: ``actor`` did ``action`` to ``obj``. ``address`` is the
    caller's IP where there is no Django request (the console proxy)."""
    return AuditEvent.objects.create(
        **_actor(actor),
        customer=customer or _customer_of(obj),
        action=action,
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        ip_address=address or client_ip(request),
        detail=detail or {},
    )


def record_many(
    actor: User | None,
    action: str,
    items: list[tuple[models.Model, Customer | None, dict]],
    *,
    request=None,
) -> None:
    """Write one audit event per (object, customer, detail) in one insert (bulk services)."""
    AuditEvent.objects.bulk_create(
        AuditEvent(
            **_actor(actor),
            customer=customer or _customer_of(obj),
            action=action,
            object_type=obj._meta.label,
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            ip_address=client_ip(request),
            detail=detail,
        )
        for obj, customer, detail in items
    )
