"""File restore in the portal: browse, search, download through signed links, put back, audit.

A real agent store holds two points of an NTFS+ext4 GPT disk; the appliance is reached through
the local transport (the demo's), so every page talks to a real ``bdr-agent rpc``.
"""

from __future__ import annotations

import datetime as dt
import io
import time
import zipfile

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from appliances.models import ApplianceState, Job
from portal.models import AuditEvent, Role
from restores import services
from tests import factories as f
from tests.agent.fs_images import make_disk
from tests.support.agent_store import agent, agent_json
from tests.support.signin import force_login_verified

V1 = {
    "/Users/ann/report.docx": b"first draft " * 1000,
    "/Users/ann/Photos/cat.jpg": bytes(range(256)) * 4000,
    "/Users/bob/budget.xlsx": b"budget v1",
    "/Shared/big.bin": b"\x01\x02\x03" * 3_000_000,
}
V2 = {**V1, "/Users/ann/report.docx": b"final version " * 1200, "/Users/bob/new.txt": b"new"}


@pytest.fixture(scope="module")
def agent_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("portal-restore")
    store = root / "store"
    agent(store, "init", "--key-file", str(root / "key"))
    image = root / "fs01-disk.img"
    points = []
    for tree, at in ((V1, "2026-03-01T22:00:00Z"), (V2, "2026-03-02T22:00:00Z")):
        make_disk(image, [("ntfs", tree), ("ext4", {"/etc/hostname": b"fs01\n"})], "gpt")
        points.append(agent_json(store, "backup", "fs01", str(image), "--volume", "disk0",
                                 "--at", at))  # fmt: skip
    return store, points


@pytest.fixture
def world(db, agent_world):
    store, agent_points = agent_world
    customer = f.CustomerFactory(name="Acme")
    appliance = f.ApplianceFactory(customer=customer, transport="local", local_store=str(store),
                                   state=ApplianceState.ONLINE)  # fmt: skip
    server = f.ProtectedServerFactory(appliance=appliance, name="fs01")
    points = [
        f.RecoveryPointFactory(
            server=server,
            agent_id=p["id"],
            volume="disk0",
            taken_at=dt.datetime.fromisoformat(p["taken_at"]),
            size_bytes=p["size"],
        )  # fmt: skip
        for p in agent_points
    ]
    other = f.ProtectedServerFactory(name="ZZOTHER-srv")
    other_point = f.RecoveryPointFactory(server=other, agent_id=agent_points[0]["id"])
    users = {
        "tech": f.UserFactory(role=Role.TECHNICIAN),
        "customer": f.UserFactory(role=Role.CUSTOMER_USER, customer=customer),
        "admin": f.UserFactory(role=Role.CUSTOMER_ADMIN, customer=customer),
        "stranger": f.UserFactory(role=Role.CUSTOMER_USER, customer=other.appliance.customer),
    }
    f.RestoreGrantFactory(user=users["customer"], server=server)
    f.RestoreGrantFactory(user=users["stranger"], server=other)
    return {"store": store, "appliance": appliance, "server": server, "points": points,
            "other_point": other_point, "users": users}  # fmt: skip


def _streamed(response) -> bytes:
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


def _download_links(page: str) -> dict[str, str]:
    import re

    return {
        name: url
        for url, name in re.findall(
            r'<a href="(/restore/download/[^"]+)" download>([^<]+)</a>', page
        )
    }


def test_customer_restores_a_file_from_both_points_byte_identical(client, world):
    force_login_verified(client, world["users"]["customer"])
    for point, tree in zip(world["points"], (V1, V2), strict=True):
        page = client.get(reverse("restore_browse", args=[point.pk]), {"path": "/Users/ann"})
        text = page.content.decode()
        assert page.status_code == 200 and "Restore a file from" in text
        links = _download_links(text)
        assert set(links) == {"report.docx"}
        assert _streamed(client.get(links["report.docx"])) == tree["/Users/ann/report.docx"]
        big = client.get(reverse("restore_browse", args=[point.pk]), {"path": "/Shared"})
        response = client.get(_download_links(big.content.decode())["big.bin"])
        assert response["Content-Length"] == str(len(tree["/Shared/big.bin"]))
        assert _streamed(response) == tree["/Shared/big.bin"]
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("restore.browse") == 4 and actions.count("restore.download") == 4


def test_second_partition_is_browsable(client, world):
    force_login_verified(client, world["users"]["tech"])
    point = world["points"][0]
    page = client.get(reverse("restore_browse", args=[point.pk]), {"partition": 2, "path": "/etc"})
    assert _streamed(client.get(_download_links(page.content.decode())["hostname"])) == b"fs01\n"


def test_several_files_and_a_folder_download_as_one_zip(client, world):
    force_login_verified(client, world["users"]["customer"])
    point = world["points"][1]
    response = client.post(reverse("restore_selected", args=[point.pk]),
                           {"paths": ["/Users/bob/", "/Users/ann/report.docx"]})  # fmt: skip
    assert response.status_code == 302
    body = _streamed(client.get(response["Location"]))
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    assert files == {"bob/budget.xlsx": b"budget v1", "bob/new.txt": b"new",
                     "report.docx": V2["/Users/ann/report.docx"]}  # fmt: skip


def test_search_finds_files_by_name_and_is_audited(client, world):
    force_login_verified(client, world["users"]["customer"])
    point = world["points"][1]
    page = client.get(reverse("restore_search", args=[point.pk]), {"q": "budget"}).content.decode()
    assert "budget.xlsx" in page and "/Users/bob" in page
    assert _streamed(client.get(_download_links(page)["budget.xlsx"])) == b"budget v1"
    event = AuditEvent.objects.get(action="restore.search")
    assert event.detail == {"pattern": "budget", "found": 1}
    assert event.customer == world["appliance"].customer


def test_customer_gets_404_for_another_customers_point_and_links(client, world):
    stranger = world["users"]["stranger"]
    force_login_verified(client, world["users"]["customer"])
    page = client.get(reverse("restore_browse", args=[world["points"][0].pk]),
                      {"path": "/Users/ann"})  # fmt: skip
    link = _download_links(page.content.decode())["report.docx"]
    force_login_verified(client, stranger)
    for url in (
        reverse("restore_browse", args=[world["points"][0].pk]),
        reverse("restore_search", args=[world["points"][0].pk]) + "?q=report",
        reverse("restore_server_points", args=[world["server"].pk]),
        link,  # someone else's link
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("restore_selected", args=[world["points"][0].pk]),
                       {"paths": ["/Users/ann/report.docx"]}).status_code == 404  # fmt: skip
    assert AuditEvent.objects.filter(action="restore.link_refused").count() == 1
    # A link naming another customer's point, signed for the stranger, is still 404.
    token = signing.dumps({"u": stranger.pk, "p": world["points"][0].pk,
                           "f": ["/Users/ann/report.docx"], "n": None},
                          salt=services.LINK_SALT, compress=True)  # fmt: skip
    assert client.get(reverse("restore_download", args=[token])).status_code == 404


def test_expired_or_forged_link_is_refused(client, world, monkeypatch):
    force_login_verified(client, world["users"]["customer"])
    page = client.get(reverse("restore_browse", args=[world["points"][0].pk]),
                      {"path": "/Users/ann"})  # fmt: skip
    link = _download_links(page.content.decode())["report.docx"]
    assert client.get(link + "x").status_code == 404  # forged
    monkeypatch.setattr(services, "LINK_MAX_AGE", -1)
    assert client.get(link).status_code == 404  # expired
    assert AuditEvent.objects.filter(action="restore.link_refused").exists()


def test_dotdot_paths_are_refused_and_audited(client, world):
    force_login_verified(client, world["users"]["customer"])
    point = world["points"][0]
    for bad in ("/Users/../../etc", "Users", "/Users/./ann"):
        assert client.get(reverse("restore_browse", args=[point.pk]),
                          {"path": bad}).status_code == 404  # fmt: skip
    assert client.post(reverse("restore_selected", args=[point.pk]),
                       {"paths": ["/../secret"]}).status_code == 404  # fmt: skip
    refused = AuditEvent.objects.filter(action="restore.path_refused")
    assert refused.count() == 4 and refused.first().detail["path"] == "/../secret"


def test_customer_users_cannot_put_back_export_or_see_jobs(client, world):
    point = world["points"][0]
    for role in ("customer", "admin"):
        force_login_verified(client, world["users"][role])
        assert client.post(reverse("restore_put_back", args=[point.pk]),
                           {"folder": "/x", "paths": ["/Users"]}).status_code == 404  # fmt: skip
        assert client.get(reverse("restore_volume", args=[point.pk])).status_code == 404
    assert not Job.objects.exists()


def test_customer_admin_sees_who_restored_what_of_their_customer_only(client, world):
    force_login_verified(client, world["users"]["customer"])
    page = client.get(reverse("restore_browse", args=[world["points"][0].pk]),
                      {"path": "/Users/ann"})  # fmt: skip
    _streamed(client.get(_download_links(page.content.decode())["report.docx"]))
    f.AuditEventFactory(action="restore.download", object_repr="ZZOTHER restore",
                        customer=world["other_point"].server.appliance.customer)  # fmt: skip
    force_login_verified(client, world["users"]["admin"])
    text = client.get(reverse("restore_audit")).content.decode()
    assert world["users"]["customer"].username in text and "/Users/ann/report.docx" in text
    assert "ZZOTHER" not in text
    force_login_verified(client, world["users"]["customer"])
    assert client.get(reverse("restore_audit")).status_code == 404


def test_technician_puts_files_back_without_overwriting(
    client, world, tmp_path, django_capture_on_commit_callbacks
):
    force_login_verified(client, world["users"]["tech"])
    point = world["points"][0]
    dest = tmp_path / "put-back"
    dest.mkdir()
    (dest / "report.docx").write_bytes(b"keep me")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("restore_put_back", args=[point.pk]),
                               {"folder": str(dest), "paths": ["/Users/ann/report.docx",
                                                               "/Users/bob"]})  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    job = Job.objects.get()
    assert job.kind == "restore" and job.params["overwrite"] is False
    _wait_for(client, job)
    assert (dest / "report.docx").read_bytes() == b"keep me"
    assert (dest / "bob" / "budget.xlsx").read_bytes() == b"budget v1"
    assert AuditEvent.objects.filter(action="restore.put_back").exists()


def test_technician_exports_a_volume_as_a_job(
    client, world, tmp_path, django_capture_on_commit_callbacks
):
    force_login_verified(client, world["users"]["tech"])
    point = world["points"][1]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("restore_volume", args=[point.pk]),
                               {"export": "1", "export-format": "vmdk", "export-deliver": "folder",
                                "export-folder": str(tmp_path)})  # fmt: skip
    assert response.status_code == 302
    job = Job.objects.get()
    fragment = _wait_for(client, job)
    assert "100%" in fragment
    assert len(list(tmp_path.glob("*.vmdk"))) == 1


def test_technician_exports_a_volume_as_a_download_that_converts_back_to_the_point(
    client, world, tmp_path, django_capture_on_commit_callbacks
):
    import subprocess

    force_login_verified(client, world["users"]["tech"])
    point = world["points"][1]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("restore_volume", args=[point.pk]),
                               {"export": "1", "export-format": "qcow2",
                                "export-deliver": "download"})  # fmt: skip
    assert response.status_code == 302
    job = Job.objects.get()
    fragment = _wait_for(client, job)
    url = reverse("restore_export_download", args=[job.pk])
    assert url in fragment
    image = tmp_path / "got.qcow2"
    image.write_bytes(_streamed(client.get(url)))
    raw = tmp_path / "got.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    expected = tmp_path / "point.raw"
    agent(world["store"], "restore", point.agent_id, str(expected))
    assert raw.read_bytes() == expected.read_bytes()
    assert AuditEvent.objects.filter(action="restore.export_download").exists()
    # another customer's staff never gets it; a customer user neither
    force_login_verified(client, world["users"]["customer"])
    assert client.get(url).status_code == 404


def _wait_for(client, job, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fragment = client.get(reverse("restore_job_progress", args=[job.pk])).content.decode()
        if "Succeeded" in fragment:
            return fragment
        assert "Failed" not in fragment, fragment
        time.sleep(0.2)
    raise AssertionError(f"job did not finish: {fragment}")


def test_points_page_offers_restore_by_date_and_tier(client, world):
    force_login_verified(client, world["users"]["customer"])
    page = client.get(reverse("restore_server_points", args=[world["server"].pk]))
    text = page.content.decode()
    assert "Restore a file from" in text
    assert reverse("restore_browse", args=[world["points"][0].pk]) in text
    assert timezone.is_aware(world["points"][0].taken_at)
