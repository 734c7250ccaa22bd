"""The file-restore rpc methods, spoken to a real ``bdr-agent rpc`` process over its pipes."""

from __future__ import annotations

import io
import random
import zipfile

import pytest

from appliances.client import AgentError
from tests.agent.fs_images import make_disk
from tests.support.agent_store import agent, agent_json, rpc_session, wait_for_agent_job

BIG = random.Random(7).randbytes(9 * (1 << 20) + 5)
FILES = {
    "/Users/ann/report.txt": b"the report\n" * 100,
    "/Users/ann/big.bin": BIG,
    "/Users/bob/notes.md": b"notes",
}


@pytest.fixture(scope="module")
def point_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("rpcfiles")
    store = root / "store"
    agent(store, "init", "--key-file", str(root / "key"))
    image = make_disk(root / "disk.img", [("ntfs", FILES)], "mbr")
    point = agent_json(store, "backup", "fs01", str(image), "--volume", "C")["id"]
    return store, point


@pytest.fixture
def rpc(point_store):
    store, _ = point_store
    with rpc_session(store) as client:
        yield client


def test_partitions_ls_stat_and_find(rpc, point_store):
    _, point = point_store
    (part,) = rpc.call("files.partitions", point=point)
    assert part["number"] == 1 and part["filesystem"] == "ntfs"
    listing = rpc.call("files.ls", point=point, path="/Users/ann")
    assert {e["name"]: e["size"] for e in listing["entries"]} == {
        "big.bin": len(BIG),
        "report.txt": 1100,
    }
    assert rpc.call("files.stat", point=point, path="/Users/bob/notes.md")["size"] == 5
    found = rpc.call("files.find", point=point, glob="*.md")
    assert [m["path"] for m in found["matches"]] == ["/Users/bob/notes.md"]


def test_cat_in_windows_gives_the_whole_file(rpc, point_store):
    _, point = point_store
    got, offset = [], 0
    while True:
        meta, data = rpc.call_binary(
            "files.cat", point=point, path="/Users/ann/big.bin", offset=offset, length=4 << 20
        )
        got.append(data)
        offset += len(data)
        if meta["eof"]:
            break
    assert b"".join(got) == BIG and len(got) == 3


def test_zip_is_pulled_in_pieces(rpc, point_store):
    _, point = point_store
    stream = rpc.call("files.zip", point=point, paths=["/Users"])["stream"]
    pieces = []
    while True:
        meta, data = rpc.call_binary("files.zip.read", stream=stream, max=1 << 20)
        assert len(data) <= 1 << 20
        pieces.append(data)
        if meta["eof"]:
            break
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as zf:
        assert zf.read("Users/ann/big.bin") == BIG
        assert zf.read("Users/bob/notes.md") == b"notes"


def test_bad_paths_are_structured_errors_and_logged(rpc, point_store):
    store, point = point_store
    for method, params, code in [
        ("files.ls", {"path": "/Users/../../etc"}, "path_refused"),
        ("files.cat", {"path": "relative.txt"}, "path_refused"),
        ("files.zip", {"paths": ["/Users/.."]}, "path_refused"),
        ("files.cat", {"path": "/nope"}, "not_found"),
        ("files.ls", {"path": "/", "partition": 7}, "bad_params"),
    ]:
        with pytest.raises(AgentError) as exc:
            rpc.call(method, point=point, **params)
        assert exc.value.code == code, (method, params)
    with pytest.raises(AgentError) as exc:
        rpc.call("files.ls", point="fs01/C/20000101T000000Z", path="/")
    assert exc.value.code == "bad_params"
    assert "/Users/../../etc" in (store / "appliance" / "refused-paths.log").read_text()


def test_restore_job_puts_files_back_without_overwriting(rpc, point_store, tmp_path):
    _, point = point_store
    dest = tmp_path / "put-back"
    dest.mkdir()
    (dest / "report.txt").write_bytes(b"newer")
    job = rpc.call(
        "restore.start",
        point=point,
        dest=str(dest),
        paths=["/Users/ann/report.txt", "/Users/ann/big.bin"],
        ref="t-1",
    )
    record = wait_for_agent_job(rpc, job["id"])
    assert record["state"] == "succeeded", record
    assert record["result"]["written"] == 1 and record["result"]["skipped"] == 1
    assert (dest / "report.txt").read_bytes() == b"newer"
    assert (dest / "big.bin").read_bytes() == BIG
    assert record["bytes_total"] == len(BIG) + 1100
