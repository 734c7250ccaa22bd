"""What one action costs the appliance: rpc sessions opened and agent processes started.

Measured with the real agent on the local transport (one session = one ``bdr-agent rpc``
process, as one SSH session is over SSH). The README's "sessions and processes per action"
table holds these numbers; the test keeps them from growing again.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from appliances import tasks
from appliances.models import ApplianceState, Job, JobState
from portal.models import Role
from restores.models import RecoveryPoint
from tests import factories as f
from tests.agent.fs_images import make_disk
from tests.support.agent_store import init_store
from tests.support.counting import appliance_usage
from tests.support.signin import force_login_verified

pytestmark = pytest.mark.django_db
FILES = {"/Users/ann/report.docx": b"draft " * 200_000, "/Users/ann/notes.txt": b"notes"}


@pytest.fixture
def server(tmp_path):
    store = init_store(tmp_path / "appliance")
    appliance = f.ApplianceFactory(transport="local", local_store=str(store),
                                   state=ApplianceState.ONLINE)  # fmt: skip
    server = f.ProtectedServerFactory(appliance=appliance, name="fs01")
    image = tmp_path / "fs01.img"
    make_disk(image, [("ext4", FILES)], "mbr")
    f.VolumeFactory(server=server, name="disk0", source=str(image))
    return server


def _back_up_now(client, server, capture):
    """The view queues and dispatches; the follower task follows to the end."""
    with capture(execute=True):
        client.post(reverse("server_backup_now", args=[server.pk]))
    job = Job.objects.get(server=server)
    tasks.follow_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    return job


def test_back_up_now_takes_two_sessions_and_four_processes(
    client, server, monkeypatch, tmp_path, django_capture_on_commit_callbacks
):
    force_login_verified(client, f.UserFactory(role=Role.TECHNICIAN))
    with appliance_usage(monkeypatch, tmp_path) as usage:
        _back_up_now(client, server, django_capture_on_commit_callbacks)
    assert RecoveryPoint.objects.filter(server=server).count() == 1
    # One session to dispatch (config + start), one to follow (follow + log); no re-listing
    # of points: the rpc twice, the job's runner and the backup it runs.
    assert usage.sessions == 2
    assert len(usage.processes) == 4, usage.processes


def test_a_browse_page_and_a_file_download_take_one_session_each(
    client, server, monkeypatch, tmp_path, django_capture_on_commit_callbacks
):
    force_login_verified(client, f.UserFactory(role=Role.TECHNICIAN))
    _back_up_now(client, server, django_capture_on_commit_callbacks)
    point = RecoveryPoint.objects.get(server=server)
    with appliance_usage(monkeypatch, tmp_path) as usage:
        page = client.get(reverse("restore_browse", args=[point.pk]), {"path": "/Users/ann"})
    assert page.status_code == 200
    assert usage.sessions == 1 and len(usage.processes) == 1, usage.processes
    link = re.search(
        r'<a href="(/restore/download/[^"]+)" download>report.docx<', page.content.decode()
    )[1]
    with appliance_usage(monkeypatch, tmp_path) as usage:
        response = client.get(link)
        body = b"".join(response.streaming_content)
    assert body == FILES["/Users/ann/report.docx"]
    with appliance_usage(monkeypatch, tmp_path) as usage:  # a selection, as one zip
        paths = ["/Users/ann/report.docx", "/Users/ann/notes.txt"]
        response = client.post(reverse("restore_selected", args=[point.pk]), {"paths": paths})
        body = b"".join(client.get(response["Location"]).streaming_content)
    assert body.startswith(b"PK")
    assert usage.sessions == 1 and len(usage.processes) == 1, usage.processes
    assert usage.sessions == 1 and len(usage.processes) == 1, usage.processes
