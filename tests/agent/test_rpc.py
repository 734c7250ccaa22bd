"""The rpc protocol's framing and error handling, on in-memory streams (no SSH needed)."""

import io
import json
import os

import pytest

from agent.service import rpc


def converse(store, *lines: bytes) -> list[dict]:
    out = io.BytesIO()
    rpc.Session(store, io.BytesIO(b"".join(lines)), out).serve()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def req(i, method, **params) -> bytes:
    return json.dumps({"id": i, "method": method, "params": params}).encode() + b"\n"


HELLO = req(0, "hello", version=1)


def test_hello_reports_version_and_capabilities(tmp_path):
    (answer,) = converse(tmp_path, HELLO)
    assert answer["ok"] and answer["result"]["protocol"] == 1
    assert {"backup.start", "jobs.follow", "points.list", "servers.configure"} <= set(
        answer["result"]["capabilities"]
    )


def test_wrong_protocol_version_is_refused(tmp_path):
    (answer,) = converse(tmp_path, req(1, "hello", version=99))
    assert answer == {
        "id": 1,
        "ok": False,
        "error": {
            "code": "unsupported_version",
            "message": "protocol version 99 not supported; this agent speaks 1",
        },
    }


def test_calls_before_hello_are_refused(tmp_path):
    (answer,) = converse(tmp_path, req(1, "status"))
    assert answer["error"]["code"] == "no_hello"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"not json\n", "bad_json"),
        (b"[1,2,3]\n", "bad_request"),
        (b'{"id": 5, "method": 7}\n', "bad_request"),
        (b'{"id": 5, "method": "nope"}\n', "unknown_method"),
        (b'{"id": 5, "method": "status", "params": {"surprise": 1}}\n', "bad_params"),
        (b'{"id": {"x": 1}, "method": "status"}\n', "bad_request"),
        (b"\xff\xfe\x00garbage\n", "bad_json"),
    ],
)
def test_bad_requests_get_structured_errors_and_the_session_goes_on(tmp_path, line, code):
    answers = converse(tmp_path, HELLO, line, req(9, "settings.get"))
    assert answers[1]["ok"] is False and answers[1]["error"]["code"] == code
    assert answers[2]["id"] == 9 and answers[2]["ok"] is True


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("replicate.start", {"bogus": 1}, "replicate.start: unknown parameter(s) bogus (it takes:"),
        (
            "replicate.start",
            {"target": "/x", "limits": "4M"},
            "replicate.start: unknown parameter(s) limits",
        ),
        (
            "offsite.status",
            {"refresh": True, "now": "x"},
            "offsite.status: unknown parameter(s) now",
        ),
        ("jobs.status", {}, "jobs.status: missing parameter(s) id"),
        ("files.ls", {"point": "a/b/c", "extra": 1}, "files.ls: unknown parameter(s) extra"),
    ],
)
def test_unknown_or_missing_params_are_bad_params_naming_them(tmp_path, method, params, message):
    answers = converse(tmp_path, HELLO, req(2, method, **params), req(3, "settings.get"))
    error = answers[1]["error"]
    assert error["code"] == "bad_params" and error["message"].startswith(method)
    assert message in error["message"] and "keyword argument" not in error["message"]
    assert not (tmp_path / "jobs").exists()  # refused before anything started
    assert answers[2]["ok"] is True


def test_random_bytes_never_crash_the_session(tmp_path):
    rng = __import__("random").Random(7)
    noise = b"".join(
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) + b"\n" for _ in range(200)
    )
    answers = converse(tmp_path, HELLO, noise, req(99, "settings.get"))
    assert answers[-1]["id"] == 99 and answers[-1]["ok"] is True
    assert all("error" in a or a.get("ok") for a in answers)


def test_oversized_line_is_refused_without_reading_it_all_into_one_request(tmp_path):
    answers = converse(tmp_path, HELLO, b"x" * (2 << 20) + b"\n", req(3, "settings.get"))
    assert answers[1]["error"]["code"] == "too_large"
    assert answers[-1]["id"] == 3 and answers[-1]["ok"]


def test_servers_configure_validates_and_persists(tmp_path):
    good = req(
        1,
        "servers.configure",
        name="dc01",
        volumes={"C": "/dev/sdb"},
        schedule={
            "interval_minutes": 30,
            "weekdays": [0, 1, 2, 3, 4],
            "start_hour": 6,
            "end_hour": 20,
        },
    )
    bad_interval = req(
        2,
        "servers.configure",
        name="dc02",
        volumes={"C": "/dev/sdc"},
        schedule={"interval_minutes": 5},
    )
    bad_name = req(3, "servers.configure", name="../etc", volumes={"C": "/dev/sdc"})
    relative = req(4, "servers.configure", name="dc03", volumes={"C": "dev/sdc"})
    answers = converse(
        tmp_path, HELLO, good, bad_interval, bad_name, relative, req(5, "servers.list")
    )
    assert answers[1]["ok"]
    assert answers[2]["error"] == {
        "code": "bad_config",
        "message": "schedule interval must be a whole number of minutes, at least 15",
    }
    assert (
        answers[3]["error"]["code"] == "bad_config"
        and "bad server name" in answers[3]["error"]["message"]
    )
    assert answers[4]["error"]["code"] == "bad_config"
    assert [s["name"] for s in answers[5]["result"]] == ["dc01"]
    # and it survives a new session (it is on disk)
    again = converse(tmp_path, HELLO, req(6, "servers.list"))
    assert again[1]["result"][0]["schedule"]["start_hour"] == 6


def test_more_than_96_runs_a_day_is_refused(tmp_path):
    answers = converse(
        tmp_path,
        HELLO,
        req(
            1, "servers.configure", name="a", volumes={"C": "/x"}, schedule={"interval_minutes": 14}
        ),
    )
    assert answers[1]["error"]["code"] == "bad_config"


def test_unknown_job_is_not_found(tmp_path):
    answers = converse(
        tmp_path, HELLO, req(1, "jobs.status", id="backup-nope"), req(2, "jobs.status", id="../x")
    )
    assert answers[1]["error"]["code"] == "not_found"
    assert answers[2]["error"]["code"] == "not_found"


def test_backup_of_unknown_server_is_not_found(tmp_path):
    answers = converse(tmp_path, HELLO, req(1, "backup.start", server="ghost"))
    assert answers[1]["error"] == {
        "code": "not_found",
        "message": "no server 'ghost' is configured on this appliance",
    }
    assert not os.path.exists(tmp_path / "appliance" / "jobs") or not os.listdir(
        tmp_path / "appliance" / "jobs"
    )


def test_settings_set_rejects_unknown_keys(tmp_path):
    answers = converse(
        tmp_path, HELLO, req(1, "settings.set", colour="red"), req(2, "settings.set", rollup_hour=3)
    )
    assert answers[1]["error"]["code"] == "bad_config"
    assert answers[2]["result"]["rollup_hour"] == 3
