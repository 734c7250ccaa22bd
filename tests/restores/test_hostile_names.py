"""Names every ext4 allows, in the portal: browse, search, download, zip and put-back work for
a backslash, a newline, bytes that are not UTF-8 and a 255-byte name, through a real agent.

Pages show a name with U+FFFD for bytes that are not UTF-8 and a visible symbol for control
characters; links and forms carry the exact path (itself, or ``~`` + base64 of its bytes).
"""

from __future__ import annotations

import html
import io
import os
import re
import zipfile

import pytest
from django.urls import reverse

from appliances.file_names import display_name, parse_path_param, path_param
from appliances.models import ApplianceState, Job
from portal.models import AuditEvent, Role
from tests import factories as f
from tests.agent.hostile_names import HOSTILE, LONG
from tests.restores.test_file_restore import _streamed, _wait_for
from tests.support.agent_store import backed_up_disk
from tests.support.signin import force_login_verified

ODD = {p: d for p, d in HOSTILE.items() if p.startswith("/odd/")}


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("portal-hostile")
    return backed_up_disk(root, [("ext4", HOSTILE)], "odd01", "C")


@pytest.fixture
def world(db, odd_store):
    import datetime as dt

    store, p = odd_store
    customer = f.CustomerFactory(name="Acme")
    appliance = f.ApplianceFactory(customer=customer, transport="local", local_store=str(store),
                                   state=ApplianceState.ONLINE)  # fmt: skip
    server = f.ProtectedServerFactory(appliance=appliance, name="odd01")
    point = f.RecoveryPointFactory(server=server, agent_id=p["id"], volume="C",
                                   taken_at=dt.datetime.fromisoformat(p["taken_at"]))  # fmt: skip
    user = f.RestoreGrantFactory(server=server).user
    return {"point": point, "user": user, "tech": f.UserFactory(role=Role.TECHNICIAN)}


def _browse(client, point, path: str) -> str:
    response = client.get(reverse("restore_browse", args=[point.pk]), {"path": path})
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def _links(page: str) -> dict[str, str]:
    found = re.findall(r'<a href="(/restore/download/[^"]+)" download>([^<]+)</a>', page)
    return {html.unescape(name): url for url, name in found}


def _selection_values(page: str) -> dict[str, str]:
    found = re.findall(r'name="paths" value="([^"]*)" aria-label="select ([^"]*)"', page)
    return {html.unescape(label): html.unescape(value) for value, label in found}


def test_every_hostile_file_downloads_byte_identical(client, world):
    force_login_verified(client, world["user"])
    page = _browse(client, world["point"], "/odd")
    links = _links(page)
    for path, data in ODD.items():
        name = path.split("/")[2]
        if "/" in path[len("/odd/") :]:
            continue  # inside a folder: below
        response = client.get(links[display_name(name)])
        assert _streamed(response) == data, path
    assert "bad\ufffd\ufffdname.txt" in page and "new\u240aline.txt" in page and LONG in page


def test_folders_with_hostile_names_open_by_their_links(client, world):
    force_login_verified(client, world["user"])
    page = _browse(client, world["point"], "/odd")
    folders = dict(
        (html.unescape(label), html.unescape(href))
        for href, label in re.findall(
            r'<a class="folder" href="\?partition=\d+&path=([^"]+)">'
            r"([^<]+)/</a>",
            page,
        )  # fmt: skip
    )
    from urllib.parse import unquote

    bad = unquote(folders["bad\ufffddir"])
    assert bad.startswith("~") and parse_path_param(bad) == "/odd/bad\udcffdir"
    inner = _browse(client, world["point"], bad)
    assert _streamed(client.get(_links(inner)["x.txt"])) == ODD["/odd/bad\udcffdir/x.txt"]
    back = unquote(folders["dir\\with\\backslashes"])
    assert back == "/odd/dir\\with\\backslashes"
    inner = _browse(client, world["point"], back)
    assert _streamed(client.get(_links(inner)["inner.txt"])) == ODD[back + "/inner.txt"]
    crumbs = re.findall(r'<nav class="crumbs">(.*?)</nav>', inner, re.S)[0]
    assert "dir\\with\\backslashes" in html.unescape(crumbs)


def test_search_finds_and_downloads_hostile_names(client, world):
    force_login_verified(client, world["user"])
    url = reverse("restore_search", args=[world["point"].pk])
    page = client.get(url, {"q": "x.txt"}).content.decode()
    assert _streamed(client.get(_links(page)["x.txt"])) == ODD["/odd/bad\udcffdir/x.txt"]
    assert html.escape(path_param("/odd/bad\udcffdir")) in page
    page = client.get(url, {"q": "line"}).content.decode()
    assert _streamed(client.get(_links(page)["new\u240aline.txt"])) == ODD["/odd/new\nline.txt"]
    assert AuditEvent.objects.filter(action="restore.search").count() == 2


def test_the_hostile_folder_downloads_as_a_zip_with_every_names_bytes(client, world):
    force_login_verified(client, world["user"])
    root = _selection_values(_browse(client, world["point"], "/"))
    response = client.post(reverse("restore_selected", args=[world["point"].pk]),
                           {"paths": [root["odd"]]})  # fmt: skip
    assert response.status_code == 302
    download = client.get(response["Location"])
    got = {}
    with zipfile.ZipFile(io.BytesIO(_streamed(download))) as zf:
        for info in zf.infolist():
            raw = info.filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
            if not info.is_dir():
                got[raw] = zf.read(info)
    assert got == {os.fsencode(p[1:]): d for p, d in ODD.items()}
    event = AuditEvent.objects.get(action="restore.download")
    assert event.detail["paths"] == ["/odd"] and event.detail["zip"] is True


def test_selected_hostile_files_download_as_a_zip(client, world):
    force_login_verified(client, world["user"])
    values = _selection_values(_browse(client, world["point"], "/odd"))
    picked = [values["bad\ufffd\ufffdname.txt"], values["new\u240aline.txt"], values[LONG]]
    assert all(v.startswith("~") for v in picked[:2]) and picked[2] == "/odd/" + LONG
    response = client.post(reverse("restore_selected", args=[world["point"].pk]),
                           {"paths": picked})  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(_streamed(client.get(response["Location"])))) as zf:
        assert len(zf.namelist()) == 3
    audited = AuditEvent.objects.get(action="restore.download").detail["paths"]
    assert audited == [path_param("/odd/bad\udcff\udcfename.txt"),
                       path_param("/odd/new\nline.txt"), "/odd/" + LONG]  # fmt: skip


def test_one_hostile_file_downloads_under_a_name_a_browser_can_take(client, world):
    force_login_verified(client, world["user"])
    values = _selection_values(_browse(client, world["point"], "/odd"))
    response = client.post(reverse("restore_selected", args=[world["point"].pk]),
                           {"paths": [values["new\u240aline.txt"]]})  # fmt: skip
    download = client.get(response["Location"])
    assert "\n" not in download["Content-Disposition"]
    assert _streamed(download) == ODD["/odd/new\nline.txt"]


def test_technician_puts_hostile_names_back_exactly(
    client, world, tmp_path, django_capture_on_commit_callbacks
):
    force_login_verified(client, world["tech"])
    values = _selection_values(_browse(client, world["point"], "/"))
    dest = tmp_path / "put-back"
    with django_capture_on_commit_callbacks(execute=True):
        url = reverse("restore_put_back", args=[world["point"].pk])
        response = client.post(url, {"folder": str(dest), "paths": [values["odd"].rstrip("/")]})
    assert response.status_code == 302, response.content[:2000]
    job = Job.objects.get()
    _wait_for(client, job)
    for path, data in ODD.items():
        assert (dest / path[1:]).read_bytes() == data, path


def test_a_broken_escaped_path_is_refused_as_not_found(client, world):
    force_login_verified(client, world["user"])
    url = reverse("restore_browse", args=[world["point"].pk])
    for bad in ("~!!!", "~", "~L2JhZP8/../x", path_param("/odd/../x\n"), "/odd/\0"):
        assert client.get(url, {"path": bad}).status_code == 404, bad
    assert AuditEvent.objects.filter(action="restore.path_refused").count() == 5
