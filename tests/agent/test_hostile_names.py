"""Every name ext4 allows can be listed, found, read, zipped and put back, through the library
and the rpc (JSON carries the surrogateescape form exactly); ``..``, ``.`` and NUL are still
refused."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from agent.restore.filesystems import PathRefused, clean_path
from tests.agent.hostile_names import HOSTILE, LONG
from tests.support.agent_store import backed_up_disk, rpc_session, wait_for_agent_job

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def point_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    store, point = backed_up_disk(root, [("ext4", HOSTILE)], "odd01", "C")
    with rpc_session(store) as client:
        yield point["id"], client


@pytest.fixture
def rpc(point_store):
    return point_store[1]


def _top_names() -> set[str]:
    return {p.split("/")[2] for p in HOSTILE if p.startswith("/odd/")}


def test_ls_gives_every_name_exactly(rpc, point_store):
    point, _ = point_store
    listing = rpc.call("files.ls", point=point, path="/odd")
    assert {e["name"] for e in listing["entries"]} == _top_names()
    assert LONG in {e["name"] for e in listing["entries"]}
    inner = rpc.call("files.ls", point=point, path="/odd/bad\udcffdir")
    assert [e["path"] for e in inner["entries"]] == ["/odd/bad\udcffdir/x.txt"]


def test_every_file_reads_back_by_the_path_it_was_listed_with(rpc, point_store):
    point, _ = point_store
    for path, data in HOSTILE.items():
        assert rpc.call("files.stat", point=point, path=path)["size"] == len(data), path
        meta, got = rpc.call_binary("files.cat", point=point, path=path, offset=0, length=1 << 20)
        assert got == data and meta["eof"], path


def test_find_matches_hostile_names(rpc, point_store):
    point, _ = point_store
    found = rpc.call("files.find", point=point, glob="*back*")["matches"]
    assert {m["path"] for m in found} == {
        "/odd/back\\slash.txt",
        "/odd/dir\\with\\backslashes",
    }
    found = rpc.call("files.find", point=point, glob="x.txt")["matches"]
    assert [m["path"] for m in found] == ["/odd/bad\udcffdir/x.txt"]


def test_zip_of_the_folder_keeps_every_names_bytes(rpc, point_store):
    point, _ = point_store
    stream = rpc.call("files.zip", point=point, paths=["/odd"])["stream"]
    pieces = []
    while True:
        meta, data = rpc.call_binary("files.zip.read", stream=stream, max=1 << 20)
        pieces.append(data)
        if meta["eof"]:
            break
    got = {}
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as zf:
        for info in zf.infolist():
            utf8 = info.flag_bits & 0x800
            raw = info.filename.encode("utf-8" if utf8 else "cp437")
            if not info.is_dir():
                got[raw] = zf.read(info)
    want = {os.fsencode(p[1:]): d for p, d in HOSTILE.items() if p.startswith("/odd/")}
    assert got == want


def test_put_back_writes_every_name_with_its_bytes(rpc, point_store, tmp_path):
    point, _ = point_store
    dest = tmp_path / "put-back"
    job = rpc.call("restore.start", point=point, dest=str(dest), paths=["/odd"], ref="odd-1")
    record = wait_for_agent_job(rpc, job["id"])
    assert record["state"] == "succeeded", record
    for path, data in HOSTILE.items():
        if path.startswith("/odd/"):
            assert (dest / path[1:]).read_bytes() == data, path
    assert os.fsencode(LONG) in os.listdir(os.fsencode(dest / "odd"))
    assert not [n for n in os.listdir(dest / "odd") if ".bdr-partial." in n]


def test_dot_dot_dot_and_nul_are_still_refused():
    for bad in ("/odd/../etc", "/odd/./x", "/a\0b", "odd/x", "/.."):
        with pytest.raises(PathRefused):
            clean_path(bad)
    assert clean_path("/odd/back\\slash.txt") == "/odd/back\\slash.txt"
    assert clean_path("/odd//bad\udcff/") == "/odd/bad\udcff"
