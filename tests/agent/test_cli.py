"""Bad input gives one line on stderr, the right exit code, never a traceback."""

import json

import pytest

from tests.agent.conftest import run_cli


def one_line(run):
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("bdr-agent")
    return lines[0]


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["backup", "srv1", "/nonexistent/disk.img"], 2, "source not found"),
        (["backup", "srv1", "/"], 2, "is a directory"),
        (["backup", "../etc", "/dev/null"], 2, "bad server name"),
        (["backup", "srv1", "/dev/null", "--at", "yesterday"], 2, "bad time"),
        (["restore", "not-a-point", "/tmp/x.img"], 2, "bad point id"),
        (["restore", "srv1/disk0/20250101T000000Z", "/tmp/x.img"], 2, "no such point"),
        (["rollup", "--now", "2025-13-01"], 2, "bad time"),
        (["policy", "srv1", "--daily", "-3"], 2, "expected a whole number"),
        (["frobnicate"], 2, "invalid choice"),
        ([], 2, "required"),
    ],
)
def test_bad_input(cli, args, code, text):
    run = cli(*args)
    assert run.returncode == code
    assert text in one_line(run)


def test_missing_store(tmp_path):
    run = run_cli("--store", str(tmp_path / "nowhere"), "points")
    assert run.returncode == 2
    assert "no bdr-agent store at" in one_line(run)


def test_no_store_given(monkeypatch):
    monkeypatch.delenv("BDR_STORE", raising=False)
    run = run_cli("points")
    assert run.returncode == 2
    assert "--store" in one_line(run)


def test_store_from_environment(store, volume):
    run = run_cli("points", "--json", env={"BDR_STORE": str(store.root)})
    assert run.returncode == 0
    assert json.loads(run.stdout) == []


def test_damaged_store_config(store):
    (store.root / "config.json").write_text("{not json")
    run = run_cli("--store", str(store.root), "points")
    assert run.returncode == 1
    assert "unreadable" in one_line(run)


def test_init_creates_store_and_key(tmp_path):
    run = run_cli(
        "--store", str(tmp_path / "s"), "init", "--key-file", str(tmp_path / "k"), "--json"
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["chunk_size"] == 4 << 20
    again = run_cli("--store", str(tmp_path / "s"), "init", "--key-file", str(tmp_path / "k"))
    assert again.returncode == 0


def test_init_into_a_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "file").write_text("x")
    run = run_cli("--store", str(tmp_path / "s"), "init", "--key-file", str(tmp_path / "k"))
    assert run.returncode == 1
    assert "not an empty directory" in one_line(run)
