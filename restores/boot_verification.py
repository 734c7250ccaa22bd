"""Boot verification results: the appliance's boot checks mirrored onto recovery points.

The appliance's ``run`` service boots new points with no network (``agent.bootcheck``) and
keeps each result and screenshot; the portal's point sync calls ``sync_results`` with the
same connection, so the recovery point list can show pass/fail, boot time and the screen.
A failed check raises one alert per point.
"""

from __future__ import annotations

import logging

from django.utils.dateparse import parse_datetime

from appliances.client import AgentClient, AgentError
from appliances.models import Alert, Appliance, Severity
from restores.models import RecoveryPoint

log = logging.getLogger(__name__)


def sync_results(appliance: Appliance, agent: AgentClient) -> int:
    """Fold the appliance's boot check results into its points; return how many changed."""
    try:
        results = agent.call("bootcheck.results")
    except AgentError as exc:  # an agent without boot verification
        log.info("%s: no boot check results: %s", appliance.serial, exc)
        return 0
    by_point = {r["point"]: r for r in results or [] if r.get("point") and r.get("checked_at")}
    if not by_point:
        return 0
    points = RecoveryPoint.objects.filter(
        server__appliance=appliance, agent_id__in=list(by_point)
    ).select_related("server")
    changed = 0
    for point in points:
        result = by_point[point.agent_id]
        checked_at = parse_datetime(result["checked_at"].replace("Z", "+00:00"))
        if checked_at is None or point.boot_checked_at == checked_at:
            continue
        newly_failed = not result.get("ok") and point.boot_verified is not False
        point.boot_verified = bool(result.get("ok"))
        point.boot_seconds = result.get("boot_seconds")
        point.boot_checked_at = checked_at
        point.boot_screenshot = _screenshot(agent, point) if result.get("screenshot") else None
        point.save(
            update_fields=["boot_verified", "boot_seconds", "boot_checked_at", "boot_screenshot"]
        )
        changed += 1
        if newly_failed:
            Alert.objects.create(
                customer_id=appliance.customer_id,
                appliance=appliance,
                kind="bootcheck_failed",
                severity=Severity.CRITICAL,
                message=(
                    f"Recovery point {point.taken_at:%Y-%m-%d %H:%M} of {point.server} "
                    f"({point.volume}) did not boot: {result.get('reason') or 'no reason given'}"
                )[:500],
            )
    return changed


def _screenshot(agent: AgentClient, point: RecoveryPoint) -> bytes | None:
    try:
        _, png = agent.call_binary("bootcheck.screenshot", point=point.agent_id)
    except AgentError:
        return None
    return png or None
