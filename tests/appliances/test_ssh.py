"""The portal and the agent over real OpenSSH: enrolment, pinning, the forced command, jobs."""

import html
import json
import os
import signal

import paramiko
import pytest
from django.urls import reverse

from appliances import backups, enrolment, jobs, sync, transport
from appliances.client import AgentClient, AuthenticationFailed, connect
from appliances.models import Alert, ApplianceState, Job, JobState
from portal.models import Role
from restores.models import RecoveryPoint
from tests.factories import ApplianceFactory, UserFactory
from tests.support.agent_store import agent, agent_json, job_child_pid
from tests.support.signin import force_login_verified

pytestmark = pytest.mark.django_db


def test_enrolment_shows_the_presented_key_and_pins_it_on_confirmation(sshd, client):
    appliance = ApplianceFactory(ssh_host=sshd.host, ssh_port=sshd.port, ssh_user=sshd.user)
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    url = reverse("appliance_enrol", args=[appliance.pk])
    page = html.unescape(client.get(url).content.decode())
    appliance.refresh_from_db()
    assert 'restrict,command="bdr-agent --store /srv/bdr rpc" ssh-ed25519 ' in page
    assert appliance.client_public_key.split()[1] in page
    assert "PRIVATE KEY" not in page
    # Let the test sshd accept the key the portal generated for this appliance.
    sshd.authorized_keys.write_text(
        sshd.authorized_keys.read_text().rsplit(" ssh-ed25519 ", 1)[0]
        + " "
        + appliance.client_public_key
        + "\n"
    )
    expected = transport.fingerprint(sshd.host_key)
    page = client.post(url, {"action": "test"}).content.decode()
    assert expected in page
    response = client.post(url, {"action": "pin", "fingerprint": expected})
    assert response.status_code == 302, response.content.decode()[:2000]
    appliance.refresh_from_db()
    assert appliance.host_key == sshd.host_key and appliance.state == ApplianceState.ONLINE
    assert appliance.agent_version


def test_pin_refuses_a_fingerprint_other_than_the_presented_one(sshd, client):
    appliance = ApplianceFactory(ssh_host=sshd.host, ssh_port=sshd.port)
    with pytest.raises(enrolment.EnrolmentError, match="Nothing was pinned"):
        enrolment.pin_host_key(
            appliance, "SHA256:somethingelse", actor=UserFactory(role=Role.TECHNICIAN)
        )
    appliance.refresh_from_db()
    assert appliance.host_key == "" and appliance.state == ApplianceState.NEW


def test_changed_host_key_is_refused_and_raises_an_alert(ssh_appliance, sshd):
    assert sync.poll_appliance(ssh_appliance)["servers"] == []
    sshd.restart_with_new_host_key()
    with pytest.raises(sync.ApplianceUnavailable, match="host key changed"):
        sync.poll_appliance(ssh_appliance)
    ssh_appliance.refresh_from_db()
    assert ssh_appliance.state == ApplianceState.HOST_KEY_MISMATCH
    alert = Alert.objects.get(appliance=ssh_appliance, kind="host_key_changed")
    assert alert.severity == "critical"
    assert ssh_appliance.host_key != sshd.host_key  # the old pin stays: nothing was auto-accepted
    with pytest.raises(sync.ApplianceUnavailable):
        sync.poll_appliance(ssh_appliance)
    assert Alert.objects.filter(appliance=ssh_appliance).count() == 1


def test_unknown_host_key_is_refused(ssh_appliance):
    other_key = transport.generate_client_key()[1]
    ssh_appliance.host_key = other_key
    with pytest.raises(sync.ApplianceUnavailable):
        sync.poll_appliance(ssh_appliance)


def test_wrong_client_key_is_refused(ssh_appliance):
    ssh_appliance.client_private_key = transport.generate_client_key()[0]
    with pytest.raises(AuthenticationFailed):
        connect(ssh_appliance, retries=())


def _raw_ssh(sshd):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key_type, b64 = sshd.host_key.split()
    client.get_host_keys().add(
        f"[{sshd.host}]:{sshd.port}",
        key_type,
        paramiko.PKey.from_type_string(key_type, __import__("base64").b64decode(b64)),
    )
    import io

    client.connect(
        sshd.host,
        sshd.port,
        username=sshd.user,
        look_for_keys=False,
        allow_agent=False,
        pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(sshd.client_private_key)),
    )
    return client


def test_forced_command_key_gets_no_shell_no_pty_no_forwarding(sshd):
    client = _raw_ssh(sshd)
    try:
        # Asking for another command still runs the rpc, which wants a hello, not a shell.
        stdin, stdout, _ = client.exec_command("cat /etc/passwd; id")
        stdin.write(b'{"id":1,"method":"status"}\n')
        stdin.channel.shutdown_write()
        out = stdout.read().decode()
        assert "root:" not in out and '"no_hello"' in out
        channel = client.get_transport().open_session()
        with pytest.raises(paramiko.SSHException):
            channel.get_pty()
        with pytest.raises(paramiko.ChannelException):
            client.get_transport().open_channel(
                "direct-tcpip", ("127.0.0.1", sshd.port), ("127.0.0.1", 1)
            )
    finally:
        client.close()


def test_back_up_now_makes_a_recovery_point_appear(
    protected_server, client, django_capture_on_commit_callbacks
):
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("server_backup_now", args=[protected_server.pk]))
    job = Job.objects.get()
    assert response["Location"] == reverse("job_detail", args=[job.pk])
    job = jobs.follow_job(job.pk, max_seconds=120)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.bytes_total == 16 << 20 and job.bytes_done == job.bytes_total
    point = RecoveryPoint.objects.get(server=protected_server)
    assert point.volume == "C" and point.size_bytes == 16 << 20
    page = client.get(reverse("server_detail", args=[protected_server.pk])).content.decode()
    assert f"{point.taken_at:%Y-%m-%d %H:%M}" in page


def test_second_back_up_now_while_one_runs_is_refused(protected_server):
    user = UserFactory(role=Role.TECHNICIAN)
    backups.start_backup(protected_server, actor=user)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="already running"):
        backups.start_backup(protected_server, actor=user)
    assert Job.objects.count() == 1


def test_dispatch_twice_starts_one_agent_job(protected_server, agent_store):
    job = Job.objects.create(
        appliance=protected_server.appliance, server=protected_server, kind="backup"
    )
    first = jobs.dispatch_job(job.pk)
    Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED)  # as if redelivered before it saved
    second = jobs.dispatch_job(job.pk)
    assert first.agent_job_id == second.agent_job_id
    jobs.follow_job(job.pk, max_seconds=120)
    assert len(agent_json(agent_store, "points")) == 1


def test_ssh_connection_killed_mid_backup_leaves_backup_running_and_portal_catches_up(
    protected_server, sshd, agent_store
):
    from tests.support.agent_store import make_volume
    from tests.support.sshd import _start

    make_volume(protected_server.image, size_mib=512, seed=3)
    job = Job.objects.create(
        appliance=protected_server.appliance, server=protected_server, kind="backup"
    )
    job = jobs.dispatch_job(job.pk)
    assert job.state == JobState.RUNNING
    sshd.stop()  # every SSH session dies with the daemon
    record = json.loads(
        (agent_store / "appliance" / "jobs" / f"{job.agent_job_id}.json").read_text()
    )
    assert record["state"] in ("queued", "running")  # the backup outlives the connection
    sshd.process = _start(sshd.dir / "sshd_config", sshd.port)
    job = jobs.follow_job(job.pk, max_seconds=120)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.bytes_done == job.bytes_total == 512 << 20
    assert RecoveryPoint.objects.filter(server=protected_server).count() == 1


def test_agent_killed_mid_backup_gives_a_failed_job_and_no_damaged_point(
    protected_server, agent_store, tmp_path
):
    # A first, good point.
    first = Job.objects.create(
        appliance=protected_server.appliance, server=protected_server, kind="backup"
    )
    jobs.dispatch_job(first.pk)
    assert jobs.follow_job(first.pk, max_seconds=120).state == JobState.SUCCEEDED
    # A big second volume so that the backup is still running when we kill it.
    from tests.support.agent_store import make_volume

    make_volume(protected_server.image, size_mib=512, seed=9)
    job = Job.objects.create(
        appliance=protected_server.appliance, server=protected_server, kind="backup"
    )
    job = jobs.dispatch_job(job.pk)
    os.kill(job_child_pid(protected_server.appliance, job.agent_job_id), signal.SIGKILL)
    job = jobs.follow_job(job.pk, max_seconds=120)
    assert job.state == JobState.FAILED
    assert "killed by signal 9" in job.error and "no recovery point was written" in job.error
    assert Alert.objects.filter(kind="backup_failed").exists()
    points = agent_json(agent_store, "points")
    assert len(points) == 1
    assert agent(agent_store, "verify", check=False).returncode == 0


def test_third_server_on_a_v1_is_refused_by_the_form(ssh_appliance, client):
    from appliances import services

    services.add_server(ssh_appliance, actor=None, name="a")
    services.add_server(ssh_appliance, actor=None, name="b")
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    response = client.post(
        reverse("server_create", args=[ssh_appliance.pk]),
        {
            "name": "c",
            "os": "linux",
            "cpus": 1,
            "memory_mib": 1024,
            "volume_name": "C",
            "volume_source": "/dev/sdc",
        },
    )
    assert response.status_code == 200 and b"at most 2 servers" in response.content
    assert ssh_appliance.servers.count() == 2


def test_client_session_reads_events_in_order(protected_server):
    with connect(protected_server.appliance) as client:
        assert isinstance(client, AgentClient)
        client.call("servers.configure", **sync.server_config(protected_server))
        record = client.call("backup.start", server="dc01", ref="events-test")
        events = []
        final = client.call("jobs.follow", on_event=events.append, id=record["id"], timeout=60)
    assert (
        final["state"] == "succeeded" and events and events[-1]["state"] in ("running", "succeeded")
    )


def test_schedule_and_retention_edits_are_pushed_to_the_appliance(
    protected_server, client, agent_store
):
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    url = reverse("server_detail", args=[protected_server.pk])
    response = client.post(
        url,
        {
            "schedule-interval_minutes": 60,
            "schedule-weekdays": ["0", "2", "4"],
            "schedule-start_hour": 7,
            "schedule-end_hour": 19,
            "schedule-enabled": "on",
        },
    )
    assert response.status_code == 302
    response = client.post(
        url,
        {
            "retention-intraday": 10,
            "retention-daily": 14,
            "retention-weekly": 8,
            "retention-monthly": 6,
            "retention-yearly": 2,
        },
    )
    assert response.status_code == 302
    with connect(protected_server.appliance) as agent_client:
        (configured,) = agent_client.call("servers.list")
    assert configured["schedule"] == {
        "interval_minutes": 60,
        "weekdays": [0, 2, 4],
        "start_hour": 7,
        "end_hour": 19,
        "enabled": True,
    }
    policy = agent_json(agent_store, "policy", "dc01")["policy"]
    assert policy == {"intraday": 10, "daily": 14, "weekly": 8, "monthly": 6, "yearly": 2}


def test_bad_schedule_is_a_form_error_and_nothing_is_pushed(protected_server, client):
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    response = client.post(
        reverse("server_detail", args=[protected_server.pk]),
        {
            "schedule-interval_minutes": 5,
            "schedule-weekdays": ["0"],
            "schedule-start_hour": 0,
            "schedule-end_hour": 24,
        },
    )
    assert response.status_code == 200 and b"at most every 15 minutes" in response.content
    protected_server.schedule.refresh_from_db()
    assert protected_server.schedule.interval_minutes == 15


def _back_up(server):
    job = Job.objects.create(appliance=server.appliance, server=server, kind="backup")
    jobs.dispatch_job(job.pk)
    assert jobs.follow_job(job.pk, max_seconds=120).state == JobState.SUCCEEDED


def _verify(server):
    job = backups.start_verify(server, actor=None)
    jobs.dispatch_job(job.pk)
    return jobs.follow_job(job.pk, max_seconds=120)


def test_verify_marks_points_verified(protected_server):
    _back_up(protected_server)
    job = _verify(protected_server)
    assert job.state == JobState.SUCCEEDED, job.error
    assert list(RecoveryPoint.objects.values_list("verified", flat=True)) == [True]


def test_verify_finds_a_flipped_bit_fails_the_job_and_marks_the_point(
    protected_server, agent_store
):
    _back_up(protected_server)
    chunk = max(
        (
            p
            for p in (agent_store / "chunks").rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ),
        key=lambda p: p.stat().st_size,
    )
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    job = _verify(protected_server)
    point = RecoveryPoint.objects.get()
    assert job.state == JobState.FAILED and "verify found damage in 1 point(s)" in job.error
    assert point.agent_id in job.error and point.verified is False
    assert Alert.objects.filter(kind="verify_failed").exists()


def test_unreachable_appliance_goes_offline_and_back_online_without_alerting_itself(
    ssh_appliance, sshd, settings
):
    """The poll only flips the state; the monitoring engine alerts, with hysteresis
    (tests/monitoring/test_engine_offline.py)."""
    from tests.support.sshd import _start

    settings.BDR_RPC_RETRY_DELAYS = [0.1]
    sshd.stop()
    for _ in range(2):
        with pytest.raises(sync.ApplianceUnavailable, match="unreachable"):
            sync.poll_appliance(ssh_appliance)
    ssh_appliance.refresh_from_db()
    assert ssh_appliance.state == ApplianceState.OFFLINE
    assert not Alert.objects.exists()
    sshd.process = _start(sshd.dir / "sshd_config", sshd.port)
    sync.poll_appliance(ssh_appliance)
    ssh_appliance.refresh_from_db()
    assert ssh_appliance.state == ApplianceState.ONLINE and not Alert.objects.exists()
