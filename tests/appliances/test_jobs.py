"""The job life cycle (appliances/jobs.py): the registry of kinds, and the stall watchdog.

Real agent stores on the local transport; the watchdog's clock is an explicit ``now``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time

import pytest
from django.core.exceptions import ValidationError

from appliances import backups, job_kinds, jobs, tasks
from appliances.client import connect
from appliances.models import Alert, ApplianceState, Job, JobState
from restores.models import RecoveryPoint
from tests import factories as f
from tests.support.agent_store import agent_json, init_store, job_child_pid, make_volume

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2100, 1, 4, 3, 0, tzinfo=dt.UTC)  # the watchdog's clock in these tests


@pytest.fixture
def store(tmp_path):
    return init_store(tmp_path / "appliance")


@pytest.fixture
def server(store, tmp_path):
    appliance = f.ApplianceFactory(transport="local", local_store=str(store),
                                   state=ApplianceState.ONLINE)  # fmt: skip
    server = f.ProtectedServerFactory(appliance=appliance, name="dc01")
    f.VolumeFactory(server=server, name="C", source=str(make_volume(tmp_path / "c.img", 16)))
    return server


def _run(job: Job) -> Job:
    """What the tasks do: dispatch, then follow to the end."""
    jobs.dispatch_job(job.pk)
    return jobs.follow_job(job.pk, max_seconds=120)


def test_a_new_job_kind_is_one_registry_entry(
    server, monkeypatch, django_capture_on_commit_callbacks
):
    finished = []
    # A throwaway kind that the agent runs as a rollup; nothing else knows about it.
    monkeypatch.setitem(job_kinds.REGISTRY, "scratch", job_kinds.JobType(
        stall_limit=dt.timedelta(minutes=5), start_method="rollup.start",
        on_finish=lambda job, agent: finished.append((job.state, job.params.get("result"),
                                                       agent is not None)),
    ))  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):  # dispatched by the eager task
        job = jobs.queue_job("scratch", server.appliance, actor=None)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.agent_job_id.startswith("rollup-")
    job = jobs.follow_job(job.pk, max_seconds=120)
    assert job.state == JobState.SUCCEEDED, job.error
    assert finished == [(JobState.SUCCEEDED, job.params["result"], True)]
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    with pytest.raises(ValidationError, match="A scratch of .* is already running"):
        jobs.queue_job("scratch", server.appliance, actor=None)


def test_an_appliance_that_is_not_online_takes_no_jobs(server):
    server.appliance.state = ApplianceState.OFFLINE
    with pytest.raises(ValidationError, match="is offline"):
        backups.start_backup(server, actor=None)
    assert not Job.objects.exists()


def test_backup_inserts_the_point_from_its_result_and_rollup_mirrors_the_list(server, store):
    job = _run(backups.start_backup(server, actor=None))
    assert job.state == JobState.SUCCEEDED, job.error
    (point,) = agent_json(store, "points")
    mirrored = RecoveryPoint.objects.get(server=server)
    assert (mirrored.agent_id, mirrored.size_bytes) == (point["id"], point["size"])
    RecoveryPoint.objects.create(server=server, agent_id="gone", volume="C", taken_at=NOW)
    job = _run(backups.start_rollup(server.appliance, actor=None))
    assert job.state == JobState.SUCCEEDED, job.error
    assert list(RecoveryPoint.objects.values_list("agent_id", flat=True)) == [point["id"]]


def _running_job(kind: str, moved: dt.datetime, **kw) -> Job:
    return f.JobFactory(kind=kind, state=JobState.RUNNING, progress_at=moved,
                        agent_job_id="x", **kw)  # fmt: skip


def test_stalled_jobs_are_those_past_their_kinds_limit():
    quiet = _running_job("backup", NOW - dt.timedelta(minutes=11))
    _running_job("backup", NOW - dt.timedelta(minutes=9))
    _running_job("rollup", NOW - dt.timedelta(minutes=59))
    _running_job("virtualize", NOW - dt.timedelta(days=30))  # a VM has no stall limit
    assert list(jobs.stalled_jobs(NOW)) == [quiet]


def test_a_job_that_never_reached_the_appliance_fails_after_its_limit(server):
    job = Job.objects.create(appliance=server.appliance, server=server, kind="backup")
    Job.objects.filter(pk=job.pk).update(created_at=NOW - dt.timedelta(minutes=30))
    job.refresh_from_db()
    job = jobs.stop_if_stalled(job, now=NOW)
    assert job.state == JobState.FAILED
    assert job.error == "not started on the appliance within 10 minutes"


def test_the_poller_stops_jobs_past_their_limit(server):
    # Created long before any clock this test could run at: past its limit whenever it runs.
    job = Job.objects.create(appliance=server.appliance, server=server, kind="verify")
    Job.objects.filter(pk=job.pk).update(created_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    server.appliance.state = ApplianceState.NEW  # nothing to poll: only the watchdog runs
    server.appliance.save()
    tasks.poll_all_appliances()
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "not started on the appliance" in job.error


def test_a_backup_that_stops_moving_is_cancelled_and_fails_with_the_reason(server, tmp_path):
    make_volume(tmp_path / "c.img", size_mib=512, seed=5)
    job = jobs.dispatch_job(backups.start_backup(server, actor=None).pk)
    child = job_child_pid(server.appliance, job.agent_job_id)
    os.kill(child, signal.SIGSTOP)  # the backup hangs, as on a dead disk
    try:
        time.sleep(1)  # what the runner had read is on disk by now
        # The portal last saw it move 11 minutes before NOW.
        job = jobs.refresh_job(job, now=NOW - dt.timedelta(minutes=11))
        Job.objects.filter(pk=job.pk).update(progress_at=NOW - dt.timedelta(minutes=11))
        job.refresh_from_db()
        assert jobs.stop_if_stalled(job, now=NOW - dt.timedelta(minutes=1)).is_active
        job = jobs.stop_if_stalled(job, now=NOW)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the cancel killed it, as it should
            os.kill(child, signal.SIGCONT)
    assert job.state == JobState.FAILED
    # The agent's cancel kills a frozen worker's process group after a short grace.
    assert job.error == "no progress for 10 minutes; stopped on the appliance"
    assert Alert.objects.filter(kind="backup_failed", message__contains="no progress").exists()
    with connect(server.appliance) as agent:
        for _ in range(200):
            record = agent.call("jobs.status", id=job.agent_job_id)
            if record["state"] != "running":
                break
            time.sleep(0.05)
    assert record["state"] == "cancelled"  # the cancel took effect on the appliance
    assert jobs.follow_job(job.pk).error == job.error  # a late follower changes nothing


def test_failed_jobs_24h_counts_the_24_hours_before_now_not_since_midnight():
    from appliances.selectors import dashboard_summary
    from portal.models import Role

    for hours in (1, 23, 25, 48):  # 1 hour and 23 hours ago fall on both sides of midnight
        f.JobFactory(state=JobState.FAILED, finished_at=NOW - dt.timedelta(hours=hours))
    f.JobFactory(state=JobState.SUCCEEDED, finished_at=NOW - dt.timedelta(hours=1))
    summary = dashboard_summary(f.UserFactory(role=Role.TECHNICIAN), now=NOW)
    assert summary["failed_jobs_24h"] == 2
