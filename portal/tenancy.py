"""The one way in to tenant data.

Every model that holds a customer's data uses a manager built from ``TenantQuerySet`` and
names the path from itself to its Customer in ``tenant_path``. Views, API views, forms and
tasks read tenant data only through ``Model.objects.for_user(user)`` or the helpers below,
which answer 404 (never 403) for an object of another customer, so nobody learns it exists.

A customer *user* (not their admins, not the MSP) sees a protected server, and everything
hanging from it, only when a customer admin granted them that server
(``restores.RestoreGrant``). Models under a server name the path to it in ``server_path``
(``""`` for ProtectedServer itself), and this one queryset method applies the grant, so a
server without a grant is a 404 exactly like another customer's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models
from django.http import Http404

if TYPE_CHECKING:
    from portal.models import User

M = TypeVar("M", bound=models.Model)


class TenantQuerySet(models.QuerySet):
    """A queryset that knows how to narrow itself to what a user may see."""

    def for_user(self, user: User) -> TenantQuerySet:
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        if user.is_msp:
            return self.all()
        if user.customer_id is None:
            return self.none()
        path = self.model.tenant_path
        if path == "":
            mine = self.filter(pk=user.customer_id)
        else:
            mine = self.filter(**{path: user.customer_id})
        server_path = getattr(self.model, "server_path", None)
        if server_path is None or not _needs_grant(user):
            return mine
        grant = f"{server_path}__restore_grants__user" if server_path else "restore_grants__user"
        return mine.filter(**{grant: user.pk})


def _needs_grant(user: User) -> bool:
    from portal.models import Role  # portal.models imports this module

    return user.role == Role.CUSTOMER_USER


TenantManager = models.Manager.from_queryset(TenantQuerySet)


def get_for_user(model: type[M], user: User, **lookup: Any) -> M:
    """The object matching ``lookup`` among those ``user`` may see, or Http404."""
    try:
        return model.objects.for_user(user).get(**lookup)
    except (model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404(f"No {model._meta.verbose_name} matches the given query.") from exc
