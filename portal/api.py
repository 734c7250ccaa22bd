"""The REST API. Every view set reads through ``for_user`` via ``TenantScopedViewSet``."""

from __future__ import annotations

from rest_framework import permissions, routers, serializers, viewsets
from rest_framework.views import exception_handler as drf_exception_handler

from portal.models import MSP_ROLES, Customer, Role


def exception_handler(exc, context):
    """DRF's handler; anything it does not know becomes Django's 500 page, never a traceback."""
    return drf_exception_handler(exc, context)


class RolePermission(permissions.BasePermission):
    """Allow the roles in the view's ``allowed_roles``; others get 404 (see permission_denied)."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.role in view.allowed_roles)


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Base for API views on tenant data: the queryset is always narrowed to the caller."""

    permission_classes = [permissions.IsAuthenticated, RolePermission]
    allowed_roles: frozenset = MSP_ROLES
    base_queryset = None

    def get_queryset(self):
        return self.base_queryset.for_user(self.request.user)

    def permission_denied(self, request, message=None, code=None):
        # A role that may not use this endpoint learns nothing: 404 like a missing object.
        from rest_framework.exceptions import NotAuthenticated, NotFound

        if request.user and request.user.is_authenticated:
            raise NotFound()
        raise NotAuthenticated()


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "name", "contact_email", "phone", "is_active", "created_at"]


class CustomerViewSet(
    viewsets.mixins.ListModelMixin, viewsets.mixins.RetrieveModelMixin, TenantScopedViewSet
):
    serializer_class = CustomerSerializer
    base_queryset = Customer.objects.all()
    allowed_roles = frozenset(Role)


router = routers.DefaultRouter()
router.register("customers", CustomerViewSet, basename="api-customer")

# Apps register their view sets on import.
import appliances.api  # noqa: E402,F401
import statusapi.api  # noqa: E402,F401
