"""Every job ends: the supervisor stops a job whose worker makes no progress."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from agent.service import jobs
from agent.service.job import stall_limit
from agent.service.job_kinds import KINDS
from tests.support.agent_store import agent_json, init_store, make_volume
from tests.support.bootable import needs_qemu


def _wait(store, job_id, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.read_job(store, job_id)
        if predicate(job):
            return job
        time.sleep(0.005)
    raise AssertionError(f"job {job_id}: {jobs.read_job(store, job_id)}")


def _group_alive(pgid: int) -> list[str]:
    """The live (not zombie) processes of process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(") ", 1)[1].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(text.split(" (", 1)[1].split(")", 1)[0])
    return alive


@needs_qemu
def test_a_stopped_export_fails_with_its_processes_gone_and_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BDR_JOB_STALL_SECONDS", "2")
    store = init_store(tmp_path)
    image = make_volume(tmp_path / "c.img", size_mib=256, seed=5)
    point = agent_json(store, "backup", "srv", str(image), "--volume", "C")["id"]
    dest = tmp_path / "out"
    dest.mkdir()
    params = {"point": point, "server": "srv", "dest": str(dest), "format": "qcow2"}
    job = jobs.start_job(store, "export", params)
    job = _wait(store, job["id"], lambda j: j.get("child_pid") and list(dest.iterdir()))
    os.kill(job["child_pid"], signal.SIGSTOP)  # the worker hangs; its qemu-img waits on it
    stopped_at = time.monotonic()

    job = _wait(store, job["id"], lambda j: j["state"] not in jobs.ACTIVE, timeout=30)

    assert job["state"] == "failed"
    assert "no progress for 2 s during export; stopped, partial output removed" in job["error"]
    assert time.monotonic() - stopped_at < 2 + 5
    assert job["progress_at"].endswith("Z") and job["stall_seconds"] == 2
    assert _group_alive(job["child_pid"]) == []  # the worker and qemu-img: the whole group
    assert list(dest.iterdir()) == []
    assert "removed partial output" in jobs.read_log(store, job["id"])


def test_a_job_that_makes_progress_is_not_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("BDR_JOB_STALL_SECONDS", "2")
    store = init_store(tmp_path)
    image = make_volume(tmp_path / "c.img", size_mib=64, seed=2)
    agent_json(store, "backup", "srv", str(image), "--volume", "C")
    job = jobs.start_job(store, "verify", {"points": []})
    job = _wait(store, job["id"], lambda j: j["state"] not in jobs.ACTIVE)
    assert job["state"] == "succeeded", job
    assert job["progress_at"] and job["exit_code"] == 0


def test_a_backup_job_result_holds_every_field_points_list_gives(tmp_path):
    store = init_store(tmp_path)
    image = make_volume(tmp_path / "c.img", size_mib=4)
    params = {"server": "srv", "volume": "C", "source": str(image)}
    job = jobs.start_job(store, "backup", params)
    job = _wait(store, job["id"], lambda j: j["state"] not in jobs.ACTIVE)
    assert job["state"] == "succeeded", job
    (listed,) = agent_json(store, "points")
    assert job["result"] == {**job["result"], **listed}


@pytest.mark.parametrize(
    ("kind", "params", "env", "limit"),
    [
        ("export", {}, None, 120.0),
        ("export", {}, "7", 7.0),
        ("export", {"stall_seconds": 3}, "7", 3.0),
        ("virtualize", {}, "7", None),  # a VM's whole life is the job: never stopped
        ("bootcheck", {"timeout": 60}, None, 180.0),  # its own timeout, then a grace
    ],
)
def test_stall_limits(monkeypatch, kind, params, env, limit):
    if env:
        monkeypatch.setenv("BDR_JOB_STALL_SECONDS", env)
    else:
        monkeypatch.delenv("BDR_JOB_STALL_SECONDS", raising=False)
    assert stall_limit(KINDS[kind], params) == limit
