"""The registry of job kinds: everything that differs between kinds, one entry each.

Adding a kind of job is one entry here (and the agent's ``<kind>.start``): the life cycle in
jobs.py queues, dispatches, follows, finishes and watches every kind the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from appliances import job_results, sync
from appliances.client import AgentClient
from appliances.file_names import parse_path_param
from appliances.models import Job


def _no_params(job: Job) -> dict:
    return {}


@dataclass(frozen=True)
class JobType:
    # Fail the job when its progress has not moved for this long (None: never, e.g. a VM).
    stall_limit: dt.timedelta | None
    # What the finished job's result means (appliances/job_results.py).
    on_finish: Callable[[Job, AgentClient | None], None] = job_results.nothing
    # rpc parameters beyond the job's own params (and its ref).
    start_params: Callable[[Job], dict] = _no_params
    # What the appliance must know first, sent in the same session before the start (a
    # backup's server config, a replication's off-site settings): a push that failed when
    # it was saved is not lost.
    prepare: Callable[[Job, AgentClient], None] | None = None
    # Called with each progress record the portal folds in while the job runs (its rate and
    # ETA too), for kinds whose progress means more than the job's bar.
    on_progress: Callable[[Job, dict, dt.datetime], None] | None = None
    # The agent's method that starts it; "" means "<kind>.start".
    start_method: str = ""
    # How people name one ("A VM of dc01 is already running").
    noun: str = ""
    # Raise a critical alert when one fails. Not for replications: they are retried on a
    # schedule and the off-site lag alert (offsite/mirror.py) says, once, when the copy
    # falls behind, instead of one alert per failed run while a vault is down.
    alert_on_failure: bool = True


def _exact_paths(job: Job) -> dict:
    """A file restore's paths as the agent names them (the job keeps their ``~`` form)."""
    if "paths" not in job.params:
        return {}
    return {"paths": [parse_path_param(p) for p in job.params["paths"]]}


def _push_server_config(job: Job, agent: AgentClient) -> None:
    if job.server is not None:
        sync.push_server_config(job.server, agent)


def _push_offsite_settings(job: Job, agent: AgentClient) -> None:
    from offsite import services  # offsite.services queues jobs through this registry

    services.push_settings(services.offsite_of(job.appliance), agent)


MINUTES = dt.timedelta(minutes=1)

REGISTRY: dict[str, JobType] = {
    "backup": JobType(
        stall_limit=10 * MINUTES,
        on_finish=job_results.backup_made_a_point,
        start_params=lambda job: {"server": job.server.name},
        prepare=_push_server_config,
    ),
    "verify": JobType(stall_limit=10 * MINUTES, on_finish=job_results.verify_marked_points),
    # Retention and garbage collection report no bytes; a big store takes a while.
    "rollup": JobType(stall_limit=60 * MINUTES, on_finish=job_results.rollup_removed_points),
    "bootcheck": JobType(
        stall_limit=15 * MINUTES, on_finish=job_results.bootcheck_result, noun="boot check"
    ),
    "restore": JobType(stall_limit=10 * MINUTES, start_params=_exact_paths),
    "export": JobType(stall_limit=10 * MINUTES),
    # Replication to the appliance's vault: throttled, so slow, but it reports every blob.
    "replicate": JobType(
        stall_limit=10 * MINUTES,
        on_finish=job_results.replication_mirrored,
        on_progress=job_results.replication_progress,
        prepare=_push_offsite_settings,
        noun="replication",
        alert_on_failure=False,
    ),
    # A VM's job lasts as long as the VM runs: no stall limit.
    "virtualize": JobType(stall_limit=None, on_finish=job_results.vm_ended, noun="VM"),
}


def job_type(kind: str) -> JobType:
    return REGISTRY[kind]
