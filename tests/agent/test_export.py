"""Volume export (qemu-img from the point's NBD export) and bare-metal restore over real sshd."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from appliances.client import AgentError
from tests.support.agent_store import (
    agent,
    agent_json,
    make_volume,
    rpc_session,
    wait_for_agent_job,
)
from tests.support.sshd import start_sshd


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    store = root / "store"
    agent(store, "init", "--key-file", str(root / "key"))
    image = make_volume(root / "disk.img", size_mib=24, seed=3)
    point = agent_json(store, "backup", "srv", str(image), "--volume", "C")["id"]
    return root, store, point, image.read_bytes()


@pytest.fixture
def rpc(exported):
    _, store, _, _ = exported
    with rpc_session(store) as client:
        yield client


@pytest.mark.parametrize("fmt", ["raw", "qcow2", "vmdk", "vhdx"])
def test_export_converts_back_to_the_points_bytes(exported, fmt, tmp_path):
    _, store, point, original = exported
    result = agent_json(store, "export", point, str(tmp_path), "--format", fmt)
    out = tmp_path / result["dest"].rsplit("/", 1)[-1]
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert f'"format": "{fmt}"' in info
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(out), str(back)], check=True)
    assert back.read_bytes() == original
    assert not [p for p in tmp_path.iterdir() if "bdr-partial" in p.name]


def test_export_never_overwrites(exported, tmp_path):
    _, store, point, _ = exported
    (tmp_path / "disk.qcow2").write_bytes(b"keep me")
    result = agent(store, "export", point, str(tmp_path / "disk.qcow2"), "--format", "qcow2",
                   check=False)  # fmt: skip
    assert result.returncode == 2 and (tmp_path / "disk.qcow2").read_bytes() == b"keep me"


def test_export_job_reports_progress_and_succeeds(rpc, exported, tmp_path):
    _, _, point, original = exported
    job = rpc.call("export.start", point=point, dest=str(tmp_path), format="qcow2", ref="e1")
    record = wait_for_agent_job(rpc, job["id"], timeout=120)
    assert record["state"] == "succeeded", record
    assert record["bytes_total"] == len(original) == record["bytes_done"]
    assert record["result"]["format"] == "qcow2"
    with pytest.raises(AgentError) as exc:
        rpc.call("export.start", point=point, dest=str(tmp_path), format="iso")
    assert exc.value.code == "bad_params"


@pytest.mark.slow
def test_bare_metal_restore_to_a_target_over_real_sshd(rpc, exported, tmp_path):
    _, store, point, original = exported
    public_key = rpc.call("baremetal.key")["public_key"]
    target = start_sshd(tmp_path / "target-sshd", store)
    disk = tmp_path / "new-hardware-disk.img"
    try:
        # The target's own forced command: the receiver, writing only to its disk.
        target.authorized_keys.write_text(
            f'restrict,command="{sys.executable} -m agent.receiver {disk}" {public_key}\n'
        )
        job = rpc.call(
            "restore.start",
            point=point,
            dest=str(disk),
            target=f"{target.user}@127.0.0.1",
            port=target.port,
            host_key=target.host_key,
            ref="bm-1",
        )
        record = wait_for_agent_job(rpc, job["id"], timeout=120)
        assert record["state"] == "succeeded", record
        assert record["result"]["verified"] is True
        assert record["result"]["sha256"] == hashlib.sha256(original).hexdigest()
        assert hashlib.sha256(disk.read_bytes()).hexdigest() == record["result"]["sha256"]

        # A target asked for another destination than its own refuses.
        job = rpc.call("restore.start", point=point, dest="/tmp/elsewhere",
                       target=f"{target.user}@127.0.0.1", port=target.port,
                       host_key=target.host_key, ref="bm-2")  # fmt: skip
        record = wait_for_agent_job(rpc, job["id"], timeout=120)
        assert record["state"] == "failed" and "only restores to" in record["error"]

        # A target whose host key is not the pinned one is never written to.
        disk.unlink()
        target.restart_with_new_host_key()
        target.authorized_keys.write_text(
            f'restrict,command="{sys.executable} -m agent.receiver {disk}" {public_key}\n'
        )
        job = rpc.call("restore.start", point=point, dest=str(disk),
                       target=f"{target.user}@127.0.0.1", port=target.port,
                       host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2Y", ref="bm-3")  # fmt: skip
        record = wait_for_agent_job(rpc, job["id"], timeout=120)
        assert record["state"] == "failed" and not disk.exists()
    finally:
        target.stop()


ODD_SIZE = 1623  # not a multiple of qemu's 512-byte sector


@pytest.fixture(scope="module")
def odd_point(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    store = root / "store"
    agent(store, "init", "--key-file", str(root / "key"))
    image = root / "odd.img"
    image.write_bytes((bytes(range(256)) * 7)[:ODD_SIZE])
    assert image.stat().st_size == ODD_SIZE
    point = agent_json(store, "backup", "srv", str(image), "--volume", "C")["id"]
    return store, point, image.read_bytes()


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_export_of_a_volume_not_a_multiple_of_512_bytes_finishes(odd_point, fmt, tmp_path):
    store, point, original = odd_point
    result = agent_json(store, "export", point, str(tmp_path), "--format", fmt)
    assert result["size"] == ODD_SIZE and result["virtual_size"] == 2048
    if fmt == "raw":  # raw is exactly the volume
        assert Path(result["dest"]).read_bytes() == original
        return
    back = tmp_path / "back.raw"  # the other formats count whole sectors: zeros after the tail
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", result["dest"], str(back)],
                   check=True)  # fmt: skip
    assert back.read_bytes() == original + bytes(2048 - ODD_SIZE)
