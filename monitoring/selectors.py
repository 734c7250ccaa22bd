"""Reads for the fleet pages: one indexed query each over the stored statuses, whatever the
fleet's size. Tenant data only through ``for_user``."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet, Sum

from appliances.models import ENGINE_ALERT_KINDS, Alert, ApplianceModel
from monitoring.models import (
    STATE_RANK,
    MaintenanceWindow,
    ProtectionState,
    ServerStatus,
    StateCount,
)
from portal.models import Customer, Site, User
from portal.params import choice_param, int_param
from portal.tenancy import get_for_user


@dataclass
class FleetFilter:
    """What the fleet pages were asked to show (parsed strictly: a bad value is a 400)."""

    state: str = ""
    model: str = ""
    q: str = ""
    customer: Customer | None = None
    site: Site | None = None

    @classmethod
    def from_request(cls, user: User, data) -> FleetFilter:
        found = cls(
            state=choice_param(data, "state", ProtectionState.values),
            model=choice_param(data, "model", ApplianceModel.values),
            q=(data.get("q") or "").strip()[:100],
        )
        customer_id, site_id = int_param(data, "customer"), int_param(data, "site")
        if customer_id is not None:
            found.customer = get_for_user(Customer, user, pk=customer_id)
        if site_id is not None:
            found.site = get_for_user(Site, user, pk=site_id)
        return found

    @property
    def summarised(self) -> bool:
        """No site and no search: the cycle's counts (StateCount) say how many rows match."""
        return not (self.q or self.site)

    def rows_counted(self, counts: list[tuple[str, str, int]]) -> int | None:
        """How many rows the list has, from ``counts``, when that is known without a COUNT."""
        if not self.summarised:
            return None
        return sum(n for value, _, n in counts if not self.state or value == self.state)

    def apply(self, statuses: QuerySet[ServerStatus], *, with_state: bool = True) -> QuerySet:
        if self.state and with_state:
            # By its rank (one per state, a constraint): the page is then a range of the
            # (rank, since, server) index; "state = … AND rank = …" made PostgreSQL guess one
            # row in 40,000 (two columns it thinks independent) and sort every match.
            statuses = statuses.filter(rank=STATE_RANK[self.state])
        if self.model:
            statuses = statuses.filter(server__appliance__model=self.model)
        if self.customer is not None:
            statuses = statuses.filter(server__appliance__customer=self.customer)
        if self.site is not None:
            statuses = statuses.filter(server__appliance__site=self.site)
        if self.q:
            statuses = statuses.filter(
                Q(server__name__icontains=self.q)
                | Q(server__hostname__icontains=self.q)
                | Q(server__appliance__name__icontains=self.q)
                | Q(server__appliance__serial__icontains=self.q)
                | Q(server__appliance__customer__name__icontains=self.q)
                | Q(server__appliance__site__name__icontains=self.q)
            )
        return statuses


def _statuses(user: User) -> QuerySet[ServerStatus]:
    return ServerStatus.objects.for_user(user)


# What a row of the fleet table shows (monitoring/rows.py): plain values, since making five
# model instances a row (every column of the appliance among them) took ~5 ms a page.
FLEET_ROW = {
    "name": "server__name", "hostname": "server__hostname",
    "appliance_id": "server__appliance_id", "appliance": "server__appliance__name",
    "model": "server__appliance__model", "customer_id": "server__appliance__customer_id",
    "customer": "server__appliance__customer__name", "site_id": "server__appliance__site_id",
    "site": "server__appliance__site__name",
}  # fmt: skip


def fleet_servers(user: User, fleet_filter: FleetFilter) -> QuerySet:
    """Servers worst first (unprotected, warning, unknown, paused, protected), the longest
    in their state first: the values their rows show (``FLEET_ROW`` and the status's)."""
    return (
        fleet_filter.apply(_statuses(user))
        .order_by("rank", "since", "server_id")
        .values(
            "server_id",
            "state",
            "since",
            "reason",
            "last_point_at",
            "retention_ok",
            **{alias: F(path) for alias, path in FLEET_ROW.items()},
        )  # fmt: skip
    )


def _summary(user: User, fleet_filter: FleetFilter):
    """The cycle's counts for the filter's customer (the user's own for a customer admin;
    the whole fleet's for MSP staff without one), by state."""
    customer_id = fleet_filter.customer.pk if fleet_filter.customer else None
    if not user.is_msp:
        customer_id = user.customer_id
    rows = StateCount.objects.for_user(user).filter(customer_id=customer_id)
    if fleet_filter.model:
        rows = rows.filter(model=fleet_filter.model)
    return rows.values("state").annotate(n=Sum("servers")).order_by()


def state_counts(user: User, fleet_filter: FleetFilter) -> list[tuple[str, str, int]]:
    """(state, label, servers) for every state, in rank order (the filter's state aside):
    from the cycle's counts when the filter allows, else counted."""
    if fleet_filter.summarised:
        rows = _summary(user, fleet_filter)
    else:
        rows = (
            fleet_filter.apply(_statuses(user), with_state=False)
            .values("state")
            .annotate(n=Count("pk"))
            .order_by()
        )
    counts = {row["state"]: row["n"] for row in rows}
    return [(value, label, counts.get(value, 0)) for value, label in ProtectionState.choices]


RETENTION_ROW = (
    "server__name", "server__hostname", "server__appliance__name", "server__appliance__model",
    "server__appliance__customer", "server__appliance__customer__name",
    "server__appliance__site", "server__appliance__site__name",
)  # fmt: skip


def out_of_compliance(user: User, fleet_filter: FleetFilter) -> QuerySet[ServerStatus]:
    """Servers whose points do not keep their retention promise."""
    return (
        fleet_filter.apply(_statuses(user).filter(retention_ok=False))
        .select_related("server__appliance__customer", "server__appliance__site")
        .only("retention_summary", "retention_since", *RETENTION_ROW)
        .order_by("retention_since", "server_id")
    )


# What appliances/partials/alert_table.html shows of an alert.
ALERT_ROW = (
    "kind", "severity", "message", "created_at", "escalated_at", "acknowledged_at",
    "customer__name", "appliance__name", "server__name", "server__hostname",
    "acknowledged_by__username",
)  # fmt: skip


def open_engine_alerts(user: User) -> QuerySet[Alert]:
    return (
        Alert.objects.for_user(user)
        .filter(resolved_at__isnull=True, kind__in=ENGINE_ALERT_KINDS)
        .select_related("customer", "appliance", "server", "acknowledged_by")
        .only(*ALERT_ROW)
        .order_by("-created_at", "-id")
    )


def maintenance_for(user: User) -> QuerySet[MaintenanceWindow]:
    return MaintenanceWindow.objects.for_user(user).select_related(
        "customer", "appliance", "created_by"
    )
