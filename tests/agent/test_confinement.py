"""The agent's confinement (agent/confinement.py): what the portal may make it read and write.

Through the real CLI and a real ``bdr-agent rpc`` process; the same attacks over real sshd and
through the portal's pages are in tests/appliances/test_confinement.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliances.client import AgentError
from tests.support.agent_store import agent, agent_json, init_store, make_volume, rpc_session

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2Y"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("confine")
    store = init_store(root / "appliance")
    image = make_volume(root / "dc01-C.img", size_mib=2)
    point = agent_json(store, "backup", "dc01", str(image), "--volume", "C")["id"]
    return {"root": root, "store": store, "image": image, "point": point}


def _refusals(store) -> list[dict]:
    log = store / "appliance" / "refused-paths.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize(
    "source",
    ["/etc/passwd", "/etc/shadow", "/root/.ssh/authorized_keys", "/home/ann/disk.img", "/dev/null"],
)
def test_configure_refuses_system_files_as_volume_sources(world, source):
    with rpc_session(world["store"]) as rpc:
        with pytest.raises(AgentError) as refused:
            rpc.call("servers.configure", name="evil", volumes={"C": source})
        assert refused.value.code == "refused"
        assert "\n" not in str(refused.value) and "refused" in str(refused.value)
        assert rpc.call("servers.list") == []
    assert _refusals(world["store"])[-1]["path"] == source


def test_configure_refuses_the_store_and_its_key_file(world):
    store = world["store"]
    key = store.parent / "storage.key"
    with rpc_session(store) as rpc:
        for source, why in ((key, "key file"), (store / "config.json", "store itself")):
            with pytest.raises(AgentError, match=why) as refused:
                rpc.call("servers.configure", name="evil", volumes={"C": str(source)})
            assert refused.value.code == "refused"


def test_a_symlink_under_a_source_root_to_a_forbidden_file_is_refused(world, tmp_path):
    link = tmp_path / "innocent.img"
    link.symlink_to("/etc/shadow")
    with rpc_session(world["store"]) as rpc:
        with pytest.raises(AgentError, match="/etc is never read") as refused:
            rpc.call("servers.configure", name="evil", volumes={"C": str(link)})
    assert refused.value.code == "refused"


def test_a_source_outside_every_root_is_refused_but_an_image_under_one_is_taken(world):
    with rpc_session(world["store"]) as rpc:
        with pytest.raises(AgentError, match="source root") as refused:
            rpc.call("servers.configure", name="dc02", volumes={"C": "/var/tmp/dc02.img"})
        assert refused.value.code == "refused"
        configured = rpc.call("servers.configure", name="dc01", volumes={"C": str(world["image"])})
        assert configured["volumes"] == {"C": str(world["image"])}
        rpc.call("servers.remove", name="dc01")


def test_a_source_swapped_for_a_symlink_after_configure_is_refused_at_backup(world, tmp_path):
    image = make_volume(tmp_path / "swap.img", size_mib=1)
    with rpc_session(world["store"]) as rpc:
        rpc.call("servers.configure", name="swap", volumes={"C": str(image)})
        image.unlink()
        image.symlink_to(world["store"].parent / "storage.key")
        with pytest.raises(AgentError, match="key file") as refused:
            rpc.call("backup.start", server="swap", ref="swapped")
        assert refused.value.code == "refused"
        assert all(j.get("ref") != "swapped" for j in rpc.call("jobs.list"))
        rpc.call("servers.remove", name="swap")


def test_settings_set_cannot_change_the_confinement(world):
    with rpc_session(world["store"]) as rpc:
        for name in ("source_roots", "export_roots", "confinement", "BDR_AGENT_CONFIG"):
            with pytest.raises(AgentError, match="unknown setting") as refused:
                rpc.call("settings.set", **{name: ["/"]})
            assert refused.value.code == "bad_config"
        with pytest.raises(AgentError) as refused:
            rpc.call("servers.configure", name="evil", volumes={"C": "/etc/passwd"})
        assert refused.value.code == "refused"
        assert not {"source_roots", "export_roots"} & set(rpc.call("settings.get"))
    assert not (world["store"] / "appliance" / "settings.json").exists()


@pytest.mark.parametrize(
    "dest", ["/root/.ssh", "/etc", "/var/tmp/restores", "/srv/restores/../../root/.ssh"]
)
def test_put_back_and_export_refuse_folders_outside_the_export_roots(world, dest):
    with rpc_session(world["store"]) as rpc:
        for method, params in (
            ("restore.start", {"paths": ["/Users"], "dest": dest}),
            ("export.start", {"dest": dest, "format": "raw"}),
        ):
            with pytest.raises(AgentError) as refused:
                rpc.call(method, point=world["point"], **params)
            assert refused.value.code == "refused", (method, dest)
        assert rpc.call("jobs.list") == []


def test_put_back_into_the_stores_exports_folder_is_refused(world):
    """Exports "as a download" go there and ``exports.read`` serves them: put-back may not."""
    refused = _put_back_refusal(world, world["store"] / "appliance" / "exports")
    assert refused.code == "refused" and "store itself" in str(refused)


def test_exports_read_serves_no_symlink_planted_in_the_exports_folder(world):
    exports = world["store"] / "appliance" / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    (exports / "shadow.img").symlink_to("/etc/shadow")
    with rpc_session(world["store"]) as rpc:
        with pytest.raises(AgentError) as refused:
            rpc.call_binary("exports.read", name="shadow.img")
    assert refused.value.code == "not_found"
    (exports / "shadow.img").unlink()


def test_put_back_refuses_a_ssh_folder_even_under_an_export_root(world, tmp_path):
    refused = _put_back_refusal(world, tmp_path / "home" / ".ssh")
    assert refused.code == "refused" and "SSH files" in str(refused)


def _put_back_refusal(world, dest) -> AgentError:
    with rpc_session(world["store"]) as rpc:
        with pytest.raises(AgentError) as refused:
            rpc.call("restore.start", point=world["point"], paths=["/x"], dest=str(dest))
    return refused.value


@pytest.mark.parametrize(
    "host_key",
    [
        f"{ED25519}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2Y",
        f"{ED25519}\n",
        f'command="sh" {ED25519}',
        f"@cert-authority * {ED25519}",
        f"{ED25519} extra-comment",
        "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ",  # an RSA blob claiming to be ed25519
        "ssh-dss AAAAB3NzaC1kc3MAAACBA",
    ],
)
def test_bare_metal_refuses_a_host_key_that_is_not_exactly_one_key(world, host_key):
    assert _bare_metal_refusal(world, "root@10.0.0.9", host_key) == "refused"
    assert not (world["store"] / "appliance" / "known_hosts.d").exists() or not any(
        "cert-authority" in p.read_text() or "command=" in p.read_text()
        for p in (world["store"] / "appliance" / "known_hosts.d").iterdir()
    )


@pytest.mark.parametrize(
    "target",
    [
        "root@-oProxyCommand=touch /tmp/x",
        "-oProxyCommand=x@h",
        "root@../../.ssh/x",
        "root@host\nevil",
    ],
)
def test_bare_metal_refuses_a_target_that_is_not_user_at_host(world, target):
    assert _bare_metal_refusal(world, target, ED25519) == "refused"


def _bare_metal_refusal(world, target: str, host_key: str) -> str:
    """The error code of a bare-metal ``restore.start`` to ``target`` with ``host_key``."""
    with rpc_session(world["store"]) as rpc:
        with pytest.raises(AgentError) as refused:
            rpc.call(
                "restore.start",
                point=world["point"],
                dest="",
                target=target,
                port=22,
                host_key=host_key,
            )
    return refused.value.code


def test_the_known_hosts_file_is_the_agents_own_file_in_the_store(world):
    folder = world["store"] / "appliance" / "known_hosts.d"
    with rpc_session(world["store"]) as rpc:
        job = rpc.call(
            "restore.start",
            point=world["point"],
            dest="",
            target="root@127.0.0.9",
            port=2222,
            host_key=f"  {ED25519} ",
            ref="kh",
        )
        rpc.call("jobs.cancel", id=job["id"])
    files = list(folder.iterdir())
    assert [p.read_text() for p in files] == [f"[127.0.0.9]:2222 {ED25519}\n"]
    assert not files[0].is_symlink() and "127" not in files[0].name


def test_a_known_hosts_folder_that_is_a_symlink_is_refused(tmp_path):
    store = init_store(tmp_path / "appliance")
    image = make_volume(tmp_path / "v.img", size_mib=1)
    point = agent_json(store, "backup", "s1", str(image), "--volume", "C")["id"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store / "appliance").mkdir(exist_ok=True)
    (store / "appliance" / "known_hosts.d").symlink_to(elsewhere)
    with rpc_session(store) as rpc:
        with pytest.raises(AgentError) as refused:
            rpc.call(
                "restore.start", point=point, dest="", target="root@h1", port=22, host_key=ED25519
            )
    assert refused.value.code == "refused" and list(elsewhere.iterdir()) == []


def test_cli_refuses_with_exit_2_and_one_line(world):
    for args in (
        ["restore-files", world["point"], "/root/.ssh", "/Users"],
        ["export", world["point"], "/etc", "--format", "raw"],
    ):
        done = agent(world["store"], *args, check=False)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "refused" in done.stderr


def test_an_unreadable_confinement_config_refuses_everything(world, tmp_path):
    broken = tmp_path / "confinement.json"
    broken.write_text("{not json")
    env = {**os.environ, "BDR_AGENT_CONFIG": str(broken)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "--store",
            str(world["store"]),
            "export",
            world["point"],
            str(tmp_path),
            "--format",
            "raw",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2 and "unreadable" in done.stderr
    assert list(tmp_path.glob("*.img")) == []


def test_without_a_config_file_the_defaults_allow_no_image_source(world, tmp_path):
    env = {**os.environ, "BDR_AGENT_CONFIG": str(tmp_path / "absent.json")}
    code = (
        "import sys; from agent.confinement import check_source, check_write_folder;"
        "from agent.errors import Refused\n"
        "for fn, p in ((check_source, sys.argv[2]), (check_write_folder, sys.argv[3])):\n"
        "    try: fn(sys.argv[1], p); print('allowed')\n"
        "    except Refused: print('refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(world["store"]), str(world["image"]), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["refused", "refused"]


def test_the_job_worker_checks_again_and_records_the_refusal(world, tmp_path):
    """A job whose folder was fine when it started but is not when it runs (a folder swapped
    for a symlink to /etc): started through the library, as the rpc does after its check."""
    from agent.service.jobs import read_job, start_job

    folder = tmp_path / "exports"
    folder.symlink_to("/etc")
    job = start_job(
        world["store"],
        "export",
        {"point": world["point"], "server": "dc01", "dest": str(folder), "format": "raw"},
    )
    deadline = time.monotonic() + 60
    while (record := read_job(world["store"], job["id"]))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert record["state"] == "failed" and record["error_code"] == "refused"
    assert "/etc is never read or written" in record["error"]
    assert not list(Path("/etc").glob("dc01-C-*"))
