"""Replication end to end with real parts: the appliance's agent behind OpenSSH's sshd, a
backup, the portal's vault and throttle pushed over SSH, a replicate job through the one job
life cycle into a real local vault directory, and the off-site state mirrored back."""

import datetime as dt
import json

import pytest

from appliances import jobs
from appliances.models import Alert, Job, JobState
from offsite import mirror, services
from offsite.models import ApplianceOffsite
from portal.models import Role
from restores.models import RecoveryPoint
from tests import factories as f
from tests.support.agent_store import agent_json

pytestmark = pytest.mark.django_db
OLD = "2000-01-03T10:00:00Z"  # a point taken long ago: its lag is years at any "now"


def _run(job: Job) -> Job:
    """What the tasks do: dispatch, then follow to the end."""
    jobs.dispatch_job(job.pk)
    return jobs.follow_job(job.pk, max_seconds=120)


@pytest.fixture
def tech(db):
    return f.UserFactory(role=Role.TECHNICIAN)


@pytest.fixture
def backed_up(protected_server):
    job = _run(jobs.queue_job("backup", protected_server.appliance, server=protected_server,
                              params={"at": OLD}, actor=None))  # fmt: skip
    assert job.state == JobState.SUCCEEDED, job.error
    return protected_server


def test_a_replication_sends_the_point_to_the_vault_and_the_portal_shows_its_copy(
    backed_up, vault_dirs, tech, agent_store
):
    appliance = backed_up.appliance
    vault1 = f.VaultFactory(name="ams1", endpoint=str(vault_dirs[0]))
    assert services.assign_vault(appliance, vault1, actor=tech) is None
    assert services.set_windows(appliance, "* 00:00-24:00 80mbit; * * off",
                                actor=tech) is None  # fmt: skip
    job = _run(services.start_replication(appliance, actor=tech))
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.bytes_done > 0 and job.params["result"]["points_on_vault"] == 1
    point = RecoveryPoint.objects.get(server=backed_up)
    assert (point.on_vault, point.on_second_vault) == (True, False)
    offsite = ApplianceOffsite.objects.get(appliance=appliance)
    assert (offsite.points_local, offsite.points_offsite, offsite.queued_bytes) == (1, 1, 0)
    assert offsite.last_offsite_at == point.taken_at and offsite.waiting_since is None
    assert offsite.status_at is not None and offsite.appliance_key.startswith("ssh-ed25519 ")
    (on_vault,) = agent_json(agent_store, "offsite", str(vault_dirs[0]))["points"]
    assert on_vault["id"] == point.agent_id and "dc1" in on_vault["copies"]


def test_the_lag_alert_is_raised_once_and_resolved_when_the_point_is_off_site(
    backed_up, vault_dirs, tech
):
    appliance = backed_up.appliance
    services.assign_vault(appliance, f.VaultFactory(endpoint=str(vault_dirs[0])), actor=tech)
    from appliances import sync

    for _ in range(3):  # the poller, three times: one alert
        sync.poll_appliance(appliance)
    (alert,) = Alert.objects.filter(appliance=appliance, kind=mirror.LAG_ALERT)
    assert alert.resolved_at is None and "has waited that long to reach" in alert.message
    assert ApplianceOffsite.objects.get(appliance=appliance).waiting_since.year == 2000
    assert _run(services.start_replication(appliance, actor=tech)).state == JobState.SUCCEEDED
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    sync.poll_appliance(appliance)
    assert Alert.objects.filter(appliance=appliance, kind=mirror.LAG_ALERT).count() == 1


def test_scheduled_replications_pick_appliances_with_points_waiting(backed_up, vault_dirs, tech):
    appliance = backed_up.appliance
    now = dt.datetime(2100, 1, 4, tzinfo=dt.UTC)
    retry = dt.timedelta(hours=1)
    assert list(services.due_for_replication(now, retry)) == []  # no vault yet
    services.assign_vault(appliance, f.VaultFactory(endpoint=str(vault_dirs[0])), actor=tech)
    (job_id,) = services.queue_due_replications(now, retry)
    assert services.queue_due_replications(now, retry) == []  # one at a time
    job = _run(Job.objects.get(pk=job_id))
    assert job.state == JobState.SUCCEEDED and job.requested_by is None
    assert list(services.due_for_replication(now, retry)) == []  # nothing waits


def test_a_failed_replication_is_on_its_job_page_and_raises_no_alert_of_its_own(
    appliance, store, tmp_path, tech
):
    from tests.support.agent_store import agent, make_volume

    f.ProtectedServerFactory(appliance=appliance, name="dc01")
    agent(store, "backup", "dc01", str(make_volume(tmp_path / "c.img")), "--at", OLD)
    missing = tmp_path / "no-vault-here"
    services.assign_vault(appliance, f.VaultFactory(endpoint=str(missing)), actor=tech)
    job = _run(services.start_replication(appliance, actor=tech))
    assert job.state == JobState.FAILED and str(missing) in job.error
    assert not Alert.objects.filter(appliance=appliance, kind="replicate_failed").exists()
    assert Alert.objects.get(appliance=appliance).kind == mirror.LAG_ALERT  # the point waits
    # the next scheduled run waits BDR_REPLICATE_RETRY_MINUTES
    now = job.finished_at + dt.timedelta(minutes=59)
    assert list(services.due_for_replication(now, dt.timedelta(hours=1))) == []
    later = job.finished_at + dt.timedelta(minutes=61)
    assert list(services.due_for_replication(later, dt.timedelta(hours=1))) == [appliance]


def test_billing_meters_the_vaults_bytes_a_blob_shared_by_two_points_counted_once(
    backed_up, vault_dirs, tech
):
    import random

    from billing import metering
    from billing.models import UsageSample
    from offsite.models import ApplianceOffsite as Offsite

    appliance = backed_up.appliance
    with open(backed_up.image, "r+b") as image:  # a few blocks change; the rest is shared
        image.seek(1 << 20)
        image.write(random.Random(5).randbytes(64 << 10))
    again = _run(jobs.queue_job("backup", appliance, server=backed_up,
                                params={"at": "2000-01-04T10:00:00Z"}, actor=None))  # fmt: skip
    assert again.state == JobState.SUCCEEDED, again.error
    services.assign_vault(appliance, f.VaultFactory(endpoint=str(vault_dirs[0])), actor=tech)
    job = _run(services.start_replication(appliance, actor=tech))
    assert job.state == JobState.SUCCEEDED and job.params["result"]["points_sent"] == 2

    namespace = next((vault_dirs[0] / "appliances").iterdir())
    on_disk = sum(p.stat().st_size - 36 for p in (namespace / "blobs").rglob("*") if p.is_file())
    records = [p for p in (namespace / "points").rglob("*.json")]
    each_alone = sum(json.loads(p.read_text())["bytes"] for p in records)
    vault_bytes = Offsite.objects.get(appliance=appliance).vault_bytes
    assert vault_bytes == on_disk and len(records) == 2
    assert vault_bytes < each_alone  # the chunks both points reference: counted once

    f.SubscriptionFactory(appliance=appliance, customer=appliance.customer)
    assert metering.offsite_bytes([appliance.pk]) == {appliance.pk: (vault_bytes, "vault")}
    metering.record_daily_usage(dt.date(2026, 3, 5))
    sample = UsageSample.objects.get(appliance=appliance)
    assert (sample.offsite_bytes, sample.source) == (vault_bytes, "vault")
