"""A compromised appliance's ``bdr-agent rpc``, for tests: it greets like the real one, then
answers the portal's first files call with something no portal should swallow whole.

    python hostile_agent.py endless-line   # a JSON line that never ends
    python hostile_agent.py huge-payload   # a plausible folder, then files.cat announcing 10 GiB

It writes until the portal hangs up (a broken pipe ends it)."""

from __future__ import annotations

import json
import sys

TEN_GIB = 10 << 30
FOREVER = b"A" * 65536


def answer(req_id, result, binary: int | None = None) -> None:
    message = {"id": req_id, "ok": True, "result": result}
    if binary is not None:
        message["binary"] = binary
    sys.stdout.buffer.write(json.dumps(message).encode() + b"\n")
    sys.stdout.buffer.flush()


def forever(prefix: bytes) -> None:
    sys.stdout.buffer.write(prefix)
    while True:
        sys.stdout.buffer.write(FOREVER)


PARTITIONS = [{"number": 1, "start": 1048576, "length": 25165824, "filesystem": "ext4"}]
ENTRY = {"name": "big.bin", "path": "/big.bin", "type": "file", "size": TEN_GIB, "mtime": 0}


def main(mode: str) -> None:
    for line in sys.stdin.buffer:
        request = json.loads(line)
        req_id, method = request["id"], request["method"]
        if method == "hello":
            answer(req_id, {"protocol": 1, "agent_version": "hostile", "capabilities": [],
                            "serial": "HOSTILE"})  # fmt: skip
        elif mode == "endless-line":
            forever(b'{"id": %d, "ok": true, "result": "' % req_id)
        elif method == "files.partitions":
            answer(req_id, PARTITIONS)
        elif method == "files.ls":
            answer(req_id, {"point": "p", "partition": 1, "filesystem": "ext4", "path": "/",
                            "entries": [ENTRY]})  # fmt: skip
        elif method == "files.stat":
            answer(req_id, ENTRY)
        else:  # files.cat, exports.read, vm.screenshot ...: "here come 10 GiB"
            sys.stdout.buffer.write(
                json.dumps(
                    {"id": req_id, "ok": True, "result": {"eof": False}, "binary": TEN_GIB}
                ).encode()
                + b"\n"  # fmt: skip
            )
            forever(b"")


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BrokenPipeError:
        pass
