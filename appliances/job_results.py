"""What a finished job's result means, one small handler per kind (registered in job_kinds.py).

A handler gets the finished Job (its state, and the agent's result in ``params["result"]``)
and, when the job ended while the portal was following it, the open agent session, so that
anything it still needs from the appliance comes in that same session.
"""

from __future__ import annotations

from appliances import sync
from appliances.client import AgentClient
from appliances.models import Job, JobState
from offsite import mirror as offsite_mirror
from restores import boot_verification
from restores.models import ACTIVE_VM_STATES, RecoveryPoint, VirtualMachine, VmState


def nothing(job: Job, agent: AgentClient | None) -> None:
    """Restores and exports: the result kept on the job (e.g. an export's file) is all."""


def backup_made_a_point(job: Job, agent: AgentClient | None) -> None:
    """The backup's result is the new point's record: add it now, without listing every point."""
    result = job.params.get("result")
    if job.state == JobState.SUCCEEDED and isinstance(result, dict) and result.get("id"):
        sync.record_point(job.server, result)


def verify_marked_points(job: Job, agent: AgentClient | None) -> None:
    """Points the verify named as damaged are unverified; the others it checked are verified."""
    report = job.params.get("result")
    if not isinstance(report, dict):
        return
    damaged = {p["id"] for p in report.get("damaged_points", [])}
    checked = RecoveryPoint.objects.filter(
        server__appliance=job.appliance, agent_id__in=job.params.get("points", [])
    )
    checked.filter(agent_id__in=damaged).update(verified=False)
    checked.exclude(agent_id__in=damaged).update(verified=True)


def rollup_removed_points(job: Job, agent: AgentClient | None) -> None:
    """A rollup deletes points: mirror the appliance's list (the poller does it otherwise)."""
    if job.state == JobState.SUCCEEDED and agent is not None:
        sync.apply_points(job.appliance, agent.call("points.list") or [])


def bootcheck_result(job: Job, agent: AgentClient | None) -> None:
    """The boot check's verdict and screenshot onto the point (else the poller copies them)."""
    if agent is not None:
        boot_verification.sync_results(job.appliance, agent)


def replication_mirrored(job: Job, agent: AgentClient | None) -> None:
    """After a replication (even a failed one: some points went), the points' copies and the
    off-site state as the appliance now reports them (else the poller mirrors them)."""
    if agent is not None:
        offsite_mirror.mirror(job.appliance, agent)


def replication_progress(job: Job, record: dict, now) -> None:
    """While a replication runs, its rate and ETA are the appliance's off-site rate and
    "caught up by" (the full status is read again when it ends)."""
    offsite_mirror.running(job.appliance, record, now=now)


def vm_ended(job: Job, agent: AgentClient | None) -> None:
    """A VM's job ends with the VM: when it failed (qemu died), its VM is failed with the agent's
    reason at once, not only when somebody next opens the VM's page (``refresh_vm``)."""
    if job.state != JobState.SUCCEEDED:
        VirtualMachine.objects.filter(job=job, state__in=ACTIVE_VM_STATES).update(
            state=VmState.FAILED, error=job.error, stopped_at=job.finished_at
        )
