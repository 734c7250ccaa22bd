"""Restore grants: which of their customer's protected servers a customer user may restore from.

A customer user sees no server until a customer admin (or an MSP admin) grants it; the
tenancy scoping (portal/tenancy.py) applies the grants, these functions only read and write
them.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from appliances.models import ProtectedServer
from portal import audit
from portal.models import Role, User
from restores.models import RestoreGrant


def grantable_servers(actor: User | None, user: User) -> QuerySet[ProtectedServer]:
    """The servers ``actor`` may grant ``user``: ``user``'s customer's, as ``actor`` sees them
    (``actor`` None: the system, e.g. the demo command)."""
    servers = ProtectedServer.objects
    scope = servers.all() if actor is None else servers.for_user(actor)
    return (
        scope.filter(appliance__customer_id=user.customer_id)
        .select_related("appliance")
        .order_by("appliance__name", "name")
    )


def granted_server_ids(user: User) -> set[int]:
    return set(RestoreGrant.objects.filter(user=user).values_list("server_id", flat=True))


@transaction.atomic
def set_restore_grants(
    actor: User | None, user: User, servers: list[ProtectedServer], *, request=None
) -> tuple[list[str], list[str]]:
    """Make ``servers`` exactly the servers customer user ``user`` may restore from.

    Refuses (ValidationError) a user who is not a customer user, and any server that is not
    one of ``grantable_servers(actor, user)``. Audited as ``restore.grants_changed`` with the
    names added and removed; returns (added, removed).
    """
    if user.role != Role.CUSTOMER_USER:
        raise ValidationError("Only customer users need restore grants.")
    allowed = {s.pk: s for s in grantable_servers(actor, user)}
    wanted = {s.pk for s in servers}
    if not wanted <= allowed.keys():
        raise ValidationError("A server you picked is not one of this customer's servers.")
    # Lock the user's grants so two admins saving at once end with one of their choices.
    User.objects.select_for_update().filter(pk=user.pk).first()
    current = granted_server_ids(user)
    added, removed = wanted - current, current - wanted
    RestoreGrant.objects.filter(user=user, server_id__in=removed).delete()
    RestoreGrant.objects.bulk_create(
        [RestoreGrant(user=user, server_id=pk, granted_by=actor) for pk in sorted(added)]
    )
    names = _names(allowed, added), _names(allowed, removed)
    if added or removed:
        audit.record(actor, "restore.grants_changed", user, request=request,
                     customer=user.customer,
                     detail={"added": names[0], "removed": names[1]})  # fmt: skip
    return names


def _names(servers: dict[int, ProtectedServer], pks: set[int]) -> list[str]:
    return sorted(f"{servers[pk].appliance.name}/{servers[pk].name}" for pk in pks if pk in servers)
