"""Issue 14's attacks through the portal's real pages and API, over real sshd to a real
``bdr-agent rpc`` (forced command): each is refused, by the portal's form where it can tell,
else by the appliance's confinement, which the portal then records as an AuditEvent."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from appliances import jobs, sync
from appliances.models import Job, JobState, ProtectedServer
from portal.models import AuditEvent, Role
from tests import factories as f
from tests.agent.fs_images import make_disk
from tests.support.agent_store import agent_json
from tests.support.signin import force_login_verified

pytestmark = pytest.mark.django_db
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2Y"


@pytest.fixture
def tech(client):
    force_login_verified(client, f.UserFactory(role=Role.TECHNICIAN))
    return client


def _server_form(source: str) -> dict:
    return {
        "name": "evil",
        "os": "linux",
        "cpus": 1,
        "memory_mib": 1024,
        "volume_name": "C",
        "volume_source": source,
    }


@pytest.mark.parametrize(
    "source",
    [
        "/etc/passwd",
        "/root/.ssh/authorized_keys2",
        "/etc/ssh/ssh_host_ed25519_key",
        "/home/ann/../../etc/shadow",
    ],
)
def test_server_page_refuses_system_files_as_volume_source(ssh_appliance, tech, source):
    response = tech.post(reverse("server_create", args=[ssh_appliance.pk]), _server_form(source))
    assert response.status_code == 200
    assert b"Refused" in response.content or b"must not contain" in response.content
    assert not ProtectedServer.objects.exists()
    with sync.open_agent(ssh_appliance) as agent:
        assert agent.call("servers.list") == []


def test_api_refuses_an_ssh_file_as_volume_source(ssh_appliance, tech):
    response = tech.post(
        reverse("api-server-list"),
        {"appliance": ssh_appliance.pk, "name": "evil", "volumes": {"C": "/root/.ssh/id_ed25519"}},
        content_type="application/json",
    )
    assert response.status_code == 400 and "SSH files" in response.content.decode()
    assert not ProtectedServer.objects.exists()


def test_the_store_key_file_is_refused_by_the_appliance_and_audited(
    ssh_appliance, tech, agent_store
):
    key = agent_store.parent / "storage.key"  # not a system path: only the appliance knows
    response = tech.post(reverse("server_create", args=[ssh_appliance.pk]), _server_form(str(key)))
    assert response.status_code == 302
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("appliance refused" in m and "key file" in m for m in messages), messages
    event = AuditEvent.objects.get(action="appliance.path_refused")
    assert "key file" in event.detail["message"]
    with sync.open_agent(ssh_appliance) as agent:
        assert agent.call("servers.list") == []


def _backup_now(client, server, django_capture_on_commit_callbacks) -> Job:
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("server_backup_now", args=[server.pk]))
    return Job.objects.get(server=server)


def test_a_volume_swapped_for_a_symlink_to_etc_shadow_is_refused_at_backup_time(
    protected_server, tech, django_capture_on_commit_callbacks
):
    sync.push_server_config(protected_server)  # configured while it was a real image
    protected_server.image.unlink()
    protected_server.image.symlink_to("/etc/shadow")
    job = _backup_now(tech, protected_server, django_capture_on_commit_callbacks)
    assert job.state == JobState.FAILED and "refused" in job.error and "/etc" in job.error
    assert AuditEvent.objects.filter(action="appliance.path_refused").exists()


def test_a_volume_under_a_source_root_still_backs_up(
    protected_server, tech, django_capture_on_commit_callbacks
):
    job = _backup_now(tech, protected_server, django_capture_on_commit_callbacks)
    deadline = time.monotonic() + 60
    while job.is_active and time.monotonic() < deadline:
        time.sleep(0.2)
        tech.get(reverse("job_progress", args=[job.pk]))
        job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error


@pytest.fixture
def point(protected_server, agent_store, tmp_path):
    disk = make_disk(tmp_path / "fs.img", [("ext4", {"/Users/ann/a.txt": b"hello"})], "mbr")
    made = agent_json(agent_store, "backup", "dc01", str(disk), "--volume", "C")
    return f.RecoveryPointFactory(
        server=protected_server,
        agent_id=made["id"],
        volume="C",
        taken_at=dt.datetime.fromisoformat(made["taken_at"]),
        size_bytes=made["size"],
    )


def _put_back(client, point, folder, capture):
    with capture(execute=True):
        return client.post(
            reverse("restore_put_back", args=[point.pk]),
            {"folder": folder, "paths": ["/Users/ann/a.txt"]},
        )


def _finished(client, job: Job, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if not job.is_active:
            return job
        client.get(reverse("restore_job_progress", args=[job.pk]))
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} did not finish")


def test_put_back_into_root_ssh_is_refused_by_the_page(
    point, tech, django_capture_on_commit_callbacks
):
    response = _put_back(tech, point, "/root/.ssh", django_capture_on_commit_callbacks)
    assert response.status_code == 302 and not Job.objects.filter(kind="restore").exists()
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("SSH files" in m for m in messages), messages


def test_put_back_outside_the_export_roots_is_refused_by_the_appliance(
    point, tech, django_capture_on_commit_callbacks
):
    response = _put_back(tech, point, "/var/tmp/bdr-elsewhere", django_capture_on_commit_callbacks)
    job = _finished(tech, Job.objects.get(kind="restore"))
    assert response.status_code == 302
    assert job.state == JobState.FAILED and "export root" in job.error
    event = AuditEvent.objects.get(action="appliance.path_refused")
    assert event.object_id == str(job.pk)


def test_put_back_under_an_export_root_works_over_ssh(
    point, tech, tmp_path, django_capture_on_commit_callbacks
):
    dest = tmp_path / "restored"
    _put_back(tech, point, str(dest), django_capture_on_commit_callbacks)
    job = _finished(tech, Job.objects.get(kind="restore"))
    assert job.state == JobState.SUCCEEDED, job.error
    assert (dest / "a.txt").read_bytes() == b"hello"


def test_export_to_etc_is_refused_by_the_page(point, tech, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = tech.post(
            reverse("restore_volume", args=[point.pk]),
            {
                "export": "1",
                "export-format": "raw",
                "export-deliver": "folder",
                "export-folder": "/etc",
            },
        )
    assert response.status_code == 200 and b"/etc is never read or written" in response.content
    assert not Job.objects.filter(kind="export").exists()


@pytest.mark.parametrize(
    "host_key",
    [
        f"{ED25519}\nssh-rsa AAAAB3NzaC1yc2E",
        f'command="sh" {ED25519}',
        f"@cert-authority * {ED25519}",
        f"{ED25519}\r\n",
    ],
)
def test_bare_metal_host_key_with_an_extra_line_or_options_is_refused(
    point, tech, host_key, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = tech.post(
            reverse("restore_volume", args=[point.pk]),
            {
                "baremetal": "1",
                "bm-target": "root@10.0.0.9",
                "bm-port": 22,
                "bm-host_key": host_key,
                "bm-device": "/dev/sda",
            },
        )
    assert response.status_code == 200 and b"Paste" in response.content
    assert not Job.objects.filter(kind="restore").exists()


def test_bare_metal_host_key_refused_by_the_appliance_when_sent_by_another_way(point):
    """The appliance does not trust the portal: the same key sent straight over the rpc."""
    from appliances.client import AgentError

    with sync.open_agent(point.server.appliance) as agent:
        with pytest.raises(AgentError) as refused:
            agent.call(
                "restore.start",
                point=point.agent_id,
                dest="",
                target="root@10.0.0.9",
                port=22,
                host_key=f"{ED25519}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2Y",
            )
    assert refused.value.code == "refused"


def test_a_job_refused_by_the_appliances_worker_is_audited_when_followed(
    point, agent_store, tmp_path
):
    """A folder swapped for a symlink to /etc after the rpc's check is caught by the job's
    worker; the job is started on the appliance through the agent's library (what the rpc
    does after its check), the portal follows it over sshd and records the refusal."""
    from agent.service.jobs import start_job

    folder = tmp_path / "exports"
    folder.symlink_to("/etc")
    params = {"point": point.agent_id, "server": "dc01", "dest": str(folder), "format": "raw"}
    record = start_job(agent_store, "export", params)
    job = f.JobFactory(
        appliance=point.server.appliance,
        server=point.server,
        kind="export",
        state=JobState.RUNNING,
        agent_job_id=record["id"],
        params=params,
    )
    job = jobs.follow_job(job.pk)
    assert job.state == JobState.FAILED and "/etc is never read or written" in job.error
    event = AuditEvent.objects.get(action="appliance.path_refused")
    assert event.object_id == str(job.pk) and "/etc" in event.detail["message"]
