"""The bare-metal restore target: ``python -m agent.receiver DEST`` writes stdin to DEST.

Run on the machine being restored, as the SSH forced command of the appliance's key, with
DEST (a block device or an image file) fixed by whoever set the target up. When the
appliance asks for another destination (``SSH_ORIGINAL_COMMAND`` = ``bdr-receiver OTHER``)
the receiver refuses. After writing and fsync it reads DEST back, hashes exactly the bytes
received, and prints ``{"dest": ..., "bytes": N, "sha256": ...}`` for the sender to compare.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys

PIECE = 4 << 20


def receive(dest: str, source=None) -> dict:
    """Write ``source`` (stdin) to ``dest``; return what was written and its SHA-256 read back."""
    source = source or sys.stdin.buffer
    is_device = os.path.exists(dest) and stat.S_ISBLK(os.stat(dest).st_mode)
    flags = os.O_WRONLY | (0 if is_device else os.O_CREAT | os.O_TRUNC)
    fd = os.open(dest, flags, 0o600)
    written = 0
    try:
        while piece := source.read(PIECE):
            view = memoryview(piece)
            if not is_device and not any(piece):  # keep an image file sparse
                os.lseek(fd, len(piece), os.SEEK_CUR)
                written += len(piece)
                continue
            while view:
                n = os.write(fd, view)
                view = view[n:]
            written += len(piece)
        if not is_device:
            os.ftruncate(fd, written)
        os.fsync(fd)
    finally:
        os.close(fd)
    digest = hashlib.sha256()
    with open(dest, "rb") as f:
        left = written
        while left:
            piece = f.read(min(PIECE, left))
            if not piece:
                break
            digest.update(piece)
            left -= len(piece)
    return {"dest": dest, "bytes": written, "sha256": digest.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m agent.receiver DEST", file=sys.stderr)
        return 2
    dest = argv[0]
    asked = os.environ.get("SSH_ORIGINAL_COMMAND", "").split()
    if len(asked) > 1 and asked[1] != dest:
        print(f"receiver: this target only restores to {dest}", file=sys.stderr)
        return 2
    try:
        result = receive(dest)
    except OSError as exc:
        print(f"receiver: {exc.strerror or exc}: {dest}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
