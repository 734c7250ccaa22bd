"""Demo mode: the technician's whole flow through the local transport, as in the browser."""

import html
import time

from django.urls import reverse

from appliances.models import Appliance, ApplianceState, Job
from portal.models import Role
from restores.models import RecoveryPoint
from tests.factories import UserFactory
from tests.support.agent_store import init_store, make_volume
from tests.support.signin import force_login_verified


def test_enrol_add_server_back_up_and_watch_it_finish(
    client, db, tmp_path, django_capture_on_commit_callbacks
):
    store = init_store(tmp_path / "lab")
    image = make_volume(tmp_path / "new-server.img", size_mib=64)
    tech = UserFactory(role=Role.TECHNICIAN)
    force_login_verified(client, tech)
    from tests.factories import SiteFactory

    site = SiteFactory()
    appliance = Appliance.objects.create(
        serial="LAB-1",
        name="lab-nas",
        model="V2",
        customer=site.customer,
        site=site,
        transport="local",
        local_store=str(store),
    )
    page = client.get(reverse("appliance_enrol", args=[appliance.pk])).content.decode()
    assert "demo appliance" in page
    response = client.post(
        reverse("appliance_enrol", args=[appliance.pk]),
        {"action": "pin", "fingerprint": "local store (no SSH)"},
    )
    assert response.status_code == 302
    appliance.refresh_from_db()
    assert appliance.state == ApplianceState.ONLINE
    response = client.post(
        reverse("server_create", args=[appliance.pk]),
        {
            "name": "fs01",
            "hostname": "fs01.corp.local",
            "os": "windows",
            "cpus": 2,
            "memory_mib": 4096,
            "volume_name": "C",
            "volume_source": str(image),
        },
    )
    assert response.status_code == 302, html.unescape(response.content.decode())[:3000]
    server = appliance.servers.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("server_backup_now", args=[server.pk]))
    job = Job.objects.get()
    page = client.get(response["Location"]).content.decode()
    assert f'hx-get="{reverse("job_progress", args=[job.pk])}"' in page
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fragment = client.get(reverse("job_progress", args=[job.pk])).content.decode()
        seen.append(fragment)
        if "Succeeded" in fragment:
            break
        time.sleep(0.2)
    assert "Succeeded" in seen[-1] and "100%" in seen[-1] and "hx-get" not in seen[-1]
    point = RecoveryPoint.objects.get(server=server)
    assert point.size_bytes == 64 << 20
    page = client.get(reverse("server_detail", args=[server.pk])).content.decode()
    assert f"{point.taken_at:%Y-%m-%d %H:%M}" in page
