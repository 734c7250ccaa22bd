"""Virtualization: boot a recovery point as a VM on its appliance, watch it, stop it.

Every change is one function here that also writes the audit log. Starting a VM is a Job
(kind ``virtualize``) dispatched like every other job: the agent runs the VM as a detached
job whose life is the VM's, so the Job stays "running" while the VM runs and fails with the
agent's reason if qemu dies. The VirtualMachine row mirrors the agent's VM record; the
agent is the truth and ``refresh_vm`` reads it again.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from appliances import jobs, sync
from appliances.client import AgentClient, AgentError, TransportError
from appliances.models import Job, JobKind
from portal import audit
from portal.models import User
from restores.models import RecoveryPoint, VirtualMachine, VmNetwork, VmState

UNREACHABLE = (TransportError, sync.ApplianceUnavailable)
SETTLE_SECONDS = 10


def vm_profile(point: RecoveryPoint) -> tuple[int, int]:
    """CPUs and memory for a VM of ``point``: the server's profile within the model's limits."""
    server = point.server
    limits = server.appliance.limits
    return min(server.cpus, limits.vm_cpus), min(server.memory_mib, limits.vm_memory_mib)


def start_vm(
    point: RecoveryPoint, *, actor: User | None, request=None, net: str = VmNetwork.ISOLATED
) -> VirtualMachine:
    """Queue "Start VM" of ``point``; one VM per server at a time."""
    if net not in VmNetwork.values:
        raise ValidationError(f"Unknown network mode {net!r}.")
    server = point.server
    cpus, memory = vm_profile(point)
    params = {"point": point.agent_id, "net": net, "cpus": cpus, "memory_mib": memory}
    if server.mac_address:
        params["mac"] = server.mac_address

    def make_vm(job) -> dict:
        vm = VirtualMachine.objects.create(
            server=server, point=point, job=job, net=net, cpus=cpus, memory_mib=memory
        )
        return {"vm": vm.pk}

    job = jobs.queue_job(JobKind.VIRTUALIZE, server.appliance, server=server, params=params,
                         actor=actor, request=request, audit_as=("vm.start", server),
                         with_job=make_vm)  # fmt: skip
    return job.vm  # set when make_vm created it


def refresh_vm(vm: VirtualMachine, agent: AgentClient | None = None) -> VirtualMachine:
    """Read the VM's record from the appliance again, in ``agent``'s session if given (no-op
    when the appliance is unreachable)."""
    if not vm.is_active and vm.agent_id and not (vm.job and vm.job.is_active):
        return vm
    if agent is None:
        try:
            with sync.open_agent(vm.server.appliance) as agent:
                return refresh_vm(vm, agent)
        except UNREACHABLE:
            return vm
    try:
        records = agent.call("vm.list", server=vm.server.name)
    except AgentError:
        return vm
    ref = f"portal-job-{vm.job_id}"
    record = next((r for r in records if r.get("ref") == ref), None)
    if record is None:
        if vm.job and not vm.job.is_active and vm.job.error:
            vm.state, vm.error = VmState.FAILED, vm.job.error
            vm.save(update_fields=["state", "error"])
        return vm
    vm.agent_id = record["id"]
    vm.state = record["state"]
    vm.error = record.get("error") or ""
    vm.cpus, vm.memory_mib = record.get("cpus", vm.cpus), record.get("memory_mib", vm.memory_mib)
    for field in ("started_at", "stopped_at"):
        if record.get(field):
            setattr(vm, field, parse_datetime(record[field].replace("Z", "+00:00")))
    vm.save()
    _settle_job(vm, agent)
    return vm


def _settle_job(vm: VirtualMachine, agent: AgentClient) -> None:
    """A VM that ended ends its Job too (failed with the agent's reason if qemu died): in
    demo mode nothing follows a VM's job, and a follower may be asleep for minutes."""
    if vm.is_active or vm.job is None or not vm.job.is_active:
        return
    # The VM's supervisor records the job's end a moment after the VM stops: wait for it.
    try:
        jobs.follow_in_session(vm.job, agent, timeout=SETTLE_SECONDS)
    except AgentError:
        jobs.refresh_job(vm.job, agent=agent)


def stop_vm(vm: VirtualMachine, *, actor: User | None, request=None, force: bool = False) -> None:
    """Shut the VM down (ACPI power button) or, with ``force``, power it off: one session."""
    try:
        with sync.open_agent(vm.server.appliance) as agent:
            vm = refresh_vm(vm, agent)
            if not vm.agent_id or not vm.is_active:
                raise ValidationError("This VM is not running.")
            record = agent.call("vm.stop", vm_id=vm.agent_id, force=force)
            vm.state = record["state"]
            if vm.state == VmState.STOPPED:
                vm.stopped_at = timezone.now()
            vm.save(update_fields=["state", "stopped_at"])
            _settle_job(vm, agent)
    except (AgentError, *UNREACHABLE) as exc:
        raise ValidationError(f"The appliance did not take the request: {exc}") from None
    audit.record(
        actor,
        "vm.poweroff" if force else "vm.shutdown",
        vm.server,
        request=request,
        detail={"vm": vm.pk},
    )


def screenshot(vm: VirtualMachine) -> bytes:
    """The VM's screen now (PNG); empty when it is not running or unreachable."""
    if not vm.agent_id or vm.state not in (VmState.RUNNING, VmState.STOPPING):
        return b""
    try:
        with sync.open_agent(vm.server.appliance) as agent:
            _, png = agent.call_binary("vm.screenshot", vm_id=vm.agent_id)
    except (AgentError, *UNREACHABLE):
        return b""
    return png


def start_bootcheck(point: RecoveryPoint, *, actor: User | None, request=None) -> Job:
    """Queue a boot check of ``point`` now: boot it with no network, wait for it to come up,
    keep a screenshot, power off (the appliance also schedules these itself)."""
    return jobs.queue_job(JobKind.BOOTCHECK, point.server.appliance, server=point.server,
                          params={"point": point.agent_id}, actor=actor, request=request,
                          audit_as=("bootcheck.start", point))  # fmt: skip
