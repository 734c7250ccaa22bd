"""The fleet's counts by state (``StateCount``), kept by the evaluation cycle.

The fleet pages show how many servers are in each state on every refresh; counting 40,000
statuses (joined to their appliances for a model or a customer) took 9 to 36 ms of
PostgreSQL each time (bench/fleet.py). The cycle is the only writer of the states, so it
recounts after writing them (one GROUP BY, in its transaction, under its lock) and writes
only the rows that differ: an unchanged fleet writes nothing. A full cycle recounts every
customer, so a deleted server or a moved appliance is set right within a cycle.
"""

from __future__ import annotations

from collections import Counter

from django.db.models import Count, Q

from appliances.models import Appliance
from monitoring.models import ServerStatus, StateCount

Key = tuple[int | None, str, str]  # (customer id or None for the fleet, model, state)


def _counted(statuses) -> Counter[Key]:
    rows = (
        statuses.values_list("server__appliance__customer_id", "server__appliance__model", "state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return Counter({(customer, model, state): n for customer, model, state, n in rows})


def _fleet_totals(stored, counted: Counter[Key], whole: bool) -> Counter[Key]:
    """The fleet's rows: the sums of ``counted`` when it is the ``whole`` fleet, else the
    stored totals moved by what the recounted customers' rows changed by."""
    totals: Counter[Key] = Counter()
    for row in stored if not whole else ():
        sign = 1 if row.customer_id is None else -1
        totals[(None, row.model, row.state)] += sign * row.servers
    for (_, model, state), n in counted.items():
        totals[(None, model, state)] += n
    return totals


def _write(stored_rows, wanted: Counter[Key]) -> int:
    """Make ``stored_rows`` say ``wanted``; return how many rows were written."""
    stored = {(r.customer_id, r.model, r.state): r for r in stored_rows}
    new = [
        StateCount(customer_id=key[0], model=key[1], state=key[2], servers=n)
        for key, n in wanted.items()
        if key not in stored and n
    ]
    changed = []
    for key, row in stored.items():
        if row.servers != wanted.get(key, 0):
            row.servers = wanted.get(key, 0)
            changed.append(row)
    gone = [row.pk for row in changed if not row.servers]
    StateCount.objects.filter(pk__in=gone).delete()
    StateCount.objects.bulk_update([r for r in changed if r.servers], ["servers"], batch_size=2000)
    StateCount.objects.bulk_create(new, batch_size=2000)
    return len(new) + len(changed)


def refresh(appliance_ids=None) -> int:
    """Recount the states of every customer's servers (or only of the customers owning
    ``appliance_ids``) and the fleet's totals; return how many count rows changed."""
    rows, statuses = StateCount.objects.all(), ServerStatus.objects.all()
    if appliance_ids is not None:
        customers = Appliance.objects.filter(pk__in=appliance_ids).values("customer_id")
        rows = rows.filter(Q(customer_id__in=customers) | Q(customer__isnull=True))
        statuses = statuses.filter(server__appliance__customer_id__in=customers)
    stored = list(rows)
    counted = _counted(statuses)
    return _write(stored, counted + _fleet_totals(stored, counted, appliance_ids is None))
