"""The Status API (/api/status/) for PSA and RMM integrations: fleet counts, servers with
their protection and retention status, alerts and acknowledging them.

Callers are API keys (``Authorization: Bearer``) or signed-in staff. Everything is read
through ``for_user`` of the key's principal (statusapi/authentication.py), so a customer
key reads its customer's data only and anything else is a 404.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins, permissions, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from appliances.models import Alert, Severity
from monitoring import selectors, services
from monitoring.models import ProtectionState, ServerStatus
from portal.api import router
from portal.models import MSP_ROLES, Role
from portal.params import BadParameter, choice_param, int_param
from statusapi.authentication import ApiKeyAuthentication
from statusapi.models import ApiKey
from statusapi.serializers import AlertSerializer, FleetSerializer, ServerStatusSerializer

FLEET_ROLES = frozenset({Role.MSP_ADMIN, Role.TECHNICIAN, Role.CUSTOMER_ADMIN})


class StatusPagination(CursorPagination):
    """Cursor pages: stable while the fleet changes, and no COUNT over it."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


class ServerPagination(StatusPagination):
    ordering = "server_id"


class AlertPagination(StatusPagination):
    ordering = "-id"


class StatusApiPermission(permissions.BasePermission):
    """Keys: read-only keys read, read-write keys also acknowledge. Sessions: the fleet
    pages' roles read, MSP staff acknowledge (as on the fleet page)."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        writing = request.method not in permissions.SAFE_METHODS
        if isinstance(request.auth, ApiKey):
            return request.auth.can_write or not writing
        return user.role in (MSP_ROLES if writing else FLEET_ROLES)


class StatusApiMixin:
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [StatusApiPermission]

    def permission_denied(self, request, message=None, code=None):
        if isinstance(request.auth, ApiKey):
            raise PermissionDenied("This API key is read-only.")
        if request.user and request.user.is_authenticated:
            raise NotFound()  # a role that may not use it learns nothing, as on the pages
        super().permission_denied(request, message, code)

    def fleet_filter(self) -> selectors.FleetFilter:
        try:
            return selectors.FleetFilter.from_request(self.request.user, self.request.query_params)
        except BadParameter as exc:
            raise ValidationError({"detail": str(exc)}) from None


class StatusApiView(StatusApiMixin, viewsets.GenericViewSet):
    pass


FILTERS = [
    OpenApiParameter("state", str, enum=ProtectionState.values, description="protection state"),
    OpenApiParameter("customer", int, description="one customer's servers"),
]


class FleetView(StatusApiMixin, generics.GenericAPIView):
    serializer_class = FleetSerializer
    pagination_class = None

    @extend_schema(parameters=FILTERS[1:], responses=FleetSerializer)
    def get(self, request, *args, **kwargs):
        fleet_filter = self.fleet_filter()
        counts = selectors.state_counts(request.user, fleet_filter)
        short = selectors.out_of_compliance(request.user, fleet_filter).count()
        body = {
            "servers": sum(n for _, _, n in counts),
            "by_state": [{"state": s, "label": lbl, "servers": n} for s, lbl, n in counts],
            "retention_short": short,
        }
        return Response(FleetSerializer(body).data)


@extend_schema_view(list=extend_schema(parameters=FILTERS))
class ServerStatusViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StatusApiView):
    serializer_class = ServerStatusSerializer
    queryset = ServerStatus.objects.none()  # for the schema; get_queryset reads for_user
    pagination_class = ServerPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        statuses = ServerStatus.objects.for_user(self.request.user)
        if self.action == "list":
            statuses = self.fleet_filter().apply(statuses)
        return statuses.select_related("server__appliance__customer")


ALERT_FILTERS = [
    OpenApiParameter("state", str, enum=["open", "acknowledged", "resolved"]),
    OpenApiParameter("severity", str, enum=Severity.values),
    OpenApiParameter("customer", int, description="one customer's alerts"),
]


@extend_schema_view(list=extend_schema(parameters=ALERT_FILTERS))
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StatusApiView):
    serializer_class = AlertSerializer
    queryset = Alert.objects.none()
    pagination_class = AlertPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        alerts = Alert.objects.for_user(self.request.user).select_related("customer")
        if self.action != "list":
            return alerts
        try:
            return _filter_alerts(alerts, self.request.query_params)
        except BadParameter as exc:
            raise ValidationError({"detail": str(exc)}) from None

    @extend_schema(request=None, responses={200: AlertSerializer, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Stop the alert's reminders and escalation (read-write keys and MSP staff)."""
        alert = self.get_object()
        key = request.auth if isinstance(request.auth, ApiKey) else None
        actor = key.created_by if key else request.user
        via = f"API key {key.prefix}" if key else ""
        done = services.acknowledge_alert(
            alert, actor=actor, now=timezone.now(), request=request._request, via=via
        )
        alert.refresh_from_db()
        if not done:
            body = {"detail": "That alert was already acknowledged or resolved."}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(AlertSerializer(alert).data)


def _filter_alerts(alerts, params):
    state = choice_param(params, "state", ["open", "acknowledged", "resolved"])
    severity = choice_param(params, "severity", Severity.values)
    if state == "resolved":
        alerts = alerts.filter(resolved_at__isnull=False)
    elif state:
        alerts = alerts.filter(resolved_at__isnull=True, acknowledged_at__isnull=(state == "open"))
    if severity:
        alerts = alerts.filter(severity=severity)
    customer_id = int_param(params, "customer")
    if customer_id is not None:
        alerts = alerts.filter(customer_id=customer_id)
    return alerts


router.register("status/servers", ServerStatusViewSet, basename="api-status-server")
router.register("status/alerts", AlertViewSet, basename="api-status-alert")
