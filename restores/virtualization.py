"""Virtualization: boot a recovery point as a VM on its appliance, watch it, stop it.

Every change is one function here that also writes the audit log. Starting a VM is a Job
(kind ``virtualize``) dispatched like every other job: the agent runs the VM as a detached
job whose life is the VM's, so the Job stays "running" while the VM runs and fails with the
agent's reason if qemu dies. The VirtualMachine row mirrors the agent's VM record; the
agent is the truth and ``refresh_vm`` reads it again.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from appliances import sync
from appliances.client import AgentError, TransportError
from appliances.models import Job, JobKind
from portal import audit
from portal.models import User
from restores.models import RecoveryPoint, VirtualMachine, VmNetwork, VmState

# What a VM may take on each appliance model (V1 is the small box).
VM_LIMITS = {"V1": {"cpus": 2, "memory_mib": 4096}, "V2": {"cpus": 8, "memory_mib": 16384}}


def vm_profile(point: RecoveryPoint) -> tuple[int, int]:
    """CPUs and memory for a VM of ``point``: the server's profile within the model's limits."""
    server = point.server
    limits = VM_LIMITS.get(server.appliance.model, VM_LIMITS["V1"])
    return min(server.cpus, limits["cpus"]), min(server.memory_mib, limits["memory_mib"])


def start_vm(
    point: RecoveryPoint, *, actor: User | None, request=None, net: str = VmNetwork.ISOLATED
) -> VirtualMachine:
    """Queue "Start VM" of ``point``; one VM per server at a time."""
    if net not in VmNetwork.values:
        raise ValidationError(f"Unknown network mode {net!r}.")
    server = point.server
    if server.appliance.state != "online":
        raise ValidationError(
            f"{server.appliance.name} is {server.appliance.get_state_display().lower()}."
        )
    cpus, memory = vm_profile(point)
    params = {"point": point.agent_id, "net": net, "cpus": cpus, "memory_mib": memory}
    if server.mac_address:
        params["mac"] = server.mac_address
    try:
        with transaction.atomic():
            job = Job.objects.create(
                appliance=server.appliance,
                server=server,
                kind=JobKind.VIRTUALIZE,
                requested_by=actor if actor and actor.is_authenticated else None,
                params=params,
            )
            vm = VirtualMachine.objects.create(
                server=server, point=point, job=job, net=net, cpus=cpus, memory_mib=memory
            )
    except IntegrityError:
        raise ValidationError(f"A VM of {server} is already running.") from None
    audit.record(actor, "vm.start", server, request=request, detail={"job": job.pk, "vm": vm.pk})
    from appliances import tasks

    transaction.on_commit(lambda: tasks.run_job.delay(job.pk))
    return vm


def refresh_vm(vm: VirtualMachine) -> VirtualMachine:
    """Read the VM's record from the appliance again (no-op when it is unreachable)."""
    if not vm.is_active and vm.agent_id:
        return vm
    try:
        with sync.open_agent(vm.server.appliance) as agent:
            records = agent.call("vm.list", server=vm.server.name)
    except (AgentError, TransportError, sync.ApplianceUnavailable):
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
    _settle_job(vm)
    return vm


def _settle_job(vm: VirtualMachine) -> None:
    """A VM that ended ends its Job too (failed with the agent's reason if qemu died): in
    demo mode nothing follows a VM's job, and a follower may be asleep for minutes."""
    if vm.is_active or vm.job is None or not vm.job.is_active:
        return
    from appliances import backups

    backups.refresh_job(vm.job)


def stop_vm(vm: VirtualMachine, *, actor: User | None, request=None, force: bool = False) -> None:
    """Shut the VM down (ACPI power button) or, with ``force``, power it off."""
    vm = refresh_vm(vm)
    if not vm.agent_id or not vm.is_active:
        raise ValidationError("This VM is not running.")
    try:
        with sync.open_agent(vm.server.appliance) as agent:
            record = agent.call("vm.stop", vm_id=vm.agent_id, force=force)
    except (AgentError, TransportError, sync.ApplianceUnavailable) as exc:
        raise ValidationError(f"The appliance did not take the request: {exc}") from None
    vm.state = record["state"]
    if vm.state == VmState.STOPPED:
        vm.stopped_at = timezone.now()
    vm.save(update_fields=["state", "stopped_at"])
    _settle_job(vm)
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
    except (AgentError, TransportError, sync.ApplianceUnavailable):
        return b""
    return png
