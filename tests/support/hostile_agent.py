"""A compromised appliance's ``bdr-agent rpc``, for tests: it greets like the real one, then
answers the portal's first files call with something no portal should swallow whole.

    python hostile_agent.py endless-line   # a JSON line that never ends
    python hostile_agent.py huge-payload   # a plausible folder, then files.cat announcing 10 GiB
    python hostile_agent.py stderr-flood   # 64 MiB on stderr before it greets, then a flood
                                           # alongside answers that are otherwise fine

It writes until the portal hangs up (a broken pipe ends it)."""

from __future__ import annotations

import json
import sys
import threading

TEN_GIB = 10 << 30
SMALL = b"a small file\n"
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


def flood_stderr(mib: int | None = None) -> None:
    """Write to stderr: ``mib`` MiB, or for ever."""
    written = 0
    while mib is None or written < mib << 20:
        sys.stderr.buffer.write(FOREVER)
        written += len(FOREVER)
    sys.stderr.buffer.flush()


def main(mode: str) -> None:
    if mode == "stderr-flood":
        flood_stderr(64)  # more than any SSH window: blocks unless the portal drains it
        threading.Thread(target=flood_stderr, daemon=True).start()
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
            answer(req_id, ENTRY if mode != "stderr-flood" else {**ENTRY, "size": len(SMALL)})
        elif mode == "stderr-flood":  # files.cat: a small file, whole
            answer(req_id, {"eof": True}, binary=len(SMALL))
            sys.stdout.buffer.write(SMALL)
            sys.stdout.buffer.flush()
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
    except (BrokenPipeError, ConnectionResetError):
        pass
