"""A hostile vault (RELIABILITY 16b): speaks the vault protocol, lies in its answers, and
keeps every byte a sender gives it in LOGDIR, so a test can check what left the appliance.

``python -m tests.support.lying_vault LOGDIR MODE`` as an SSH forced command. MODEs:

- ``lack-everything``: lacks every id it is asked about, and every commit "misses" them all;
- ``lack-strangers``: answers "lack" with ids it was never asked about (a resume cursor of
  its own making) and claims to hold points it does not;
- ``garbage``: answers with malformed frames after hello.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.vault.protocol import pack_ids, read_message, unpack_ids, write_message

STRANGERS = [bytes([i]) * 32 for i in range(1, 40)]


def main(logdir: Path, mode: str) -> int:
    rfile, wfile = sys.stdin.buffer, sys.stdout.buffer
    logdir.mkdir(parents=True, exist_ok=True)
    n = 0
    while (got := read_message(rfile)) is not None:
        request, payload = got
        n += 1
        with open(logdir / "requests.jsonl", "a") as f:
            f.write(json.dumps({k: v for k, v in request.items() if k != "binary"}) + "\n")
        if payload is not None:
            (logdir / f"{n:06d}.{request.get('op')}").write_bytes(payload)
        answer(wfile, request, payload, mode)
    return 0


def answer(wfile, request: dict, payload, mode: str) -> None:
    rid, op = request.get("id"), request.get("op")
    if op == "hello":
        write_message(wfile, {"id": rid, "ok": True, "vault": "liar", "version": 1})
    elif mode == "garbage":
        wfile.write(b"\x00\xffnot json at all\n")
        wfile.flush()
    elif op == "points":
        fake = [{"point": "srv/disk0/20000101T000000Z", "whole": True, "taken_at": "x"}]
        body = {"points": fake if mode == "lack-strangers" else [], "retired": []}
        write_message(wfile, {"id": rid, "ok": True}, json.dumps(body).encode())
    elif op == "lack":
        ids = unpack_ids(payload)
        lie = ids + STRANGERS if mode == "lack-strangers" else ids
        write_message(wfile, {"id": rid, "ok": True}, pack_ids(lie))
    elif op == "commit":
        missing = unpack_ids(payload) + STRANGERS
        error = {"code": "missing", "message": "send me everything again"}
        write_message(wfile, {"id": rid, "ok": False, "error": error}, pack_ids(missing))
    else:
        write_message(wfile, {"id": rid, "ok": True})


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]) if len(sys.argv) == 3 else 2)
