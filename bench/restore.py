"""File restore benchmark: a 20 GiB point (ext4 in an MBR partition), read in place.

Prints: time to list the root and a 1,000-entry directory (cold: a new process, nothing
cached by the agent), throughput of one 2 GiB file to /dev/null (``bdr-agent cat``) and
through the rpc in 4 MiB windows (what a portal download pulls), a zip of 10,000 small files,
and each step's peak RSS. The image is sparse: only ~2.1 GiB of it is data.

    .venv/bin/python bench/restore.py [--work DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GIB, MIB = 1 << 30, 1 << 20
START = MIB


def agent(store: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "--store", str(store), *args],
                          check=True, capture_output=True, cwd=ROOT, **kw)  # fmt: skip


def build_image(work: Path) -> Path:
    tree = work / "tree"
    rng = random.Random(20)
    (tree / "thousand").mkdir(parents=True)
    for i in range(1000):
        (tree / "thousand" / f"file-{i:04}.txt").write_bytes(b"x" * rng.randrange(10, 4000))
    (tree / "small").mkdir()
    for d in range(100):
        sub = tree / "small" / f"dir-{d:03}"
        sub.mkdir()
        for i in range(100):
            (sub / f"doc-{i:03}.txt").write_bytes(rng.randbytes(rng.randrange(100, 8000)))
    with open(tree / "big.bin", "wb") as f:
        for _ in range(2 * GIB // (64 * MIB)):
            f.write(rng.randbytes(64 * MIB))
    for name in ("Users", "Windows", "Program Files", "data"):
        (tree / name).mkdir()
    fs = work / "fs.img"
    size = 20 * GIB - 2 * MIB
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-E", "lazy_itable_init=1",
                    "-d", str(tree), str(fs), f"{size >> 10}k"], check=True)  # fmt: skip
    shutil.rmtree(tree)
    disk = work / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(20 * GIB)
    subprocess.run(["sfdisk", "-q", str(disk)], input=b"start=2048, type=83\n", check=True)
    with open(fs, "rb") as src, open(disk, "r+b") as dst:  # splice, keeping holes
        pos = 0
        while True:
            try:
                pos = os.lseek(src.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(src.fileno(), pos, os.SEEK_HOLE)
            while pos < end:
                n = min(64 * MIB, end - pos)
                dst.seek(START + pos)
                dst.write(os.pread(src.fileno(), n, pos))
                pos += n
    fs.unlink()
    return disk


STEP = r"""
import json, resource, sys, time, os
from agent.store.datastore import Store
from agent.restore.files import open_point_filesystem, zip_stream
t0 = time.perf_counter()  # after imports: the agent's own work, caches cold
store = Store.open(sys.argv[1]); point = sys.argv[2]; what = sys.argv[3]
fs = open_point_filesystem(store, point)
out = {}
if what == "ls-root":
    out["entries"] = len(fs.ls("/"))
elif what == "ls-1000":
    out["entries"] = len(fs.ls("/thousand"))
elif what == "zip":
    n = 0
    for piece in zip_stream(fs, ["/small"]):
        n += len(piece)
    out["zip_bytes"] = n
out["seconds"] = time.perf_counter() - t0
out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def drop_caches() -> None:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


def step(store: Path, point: str, what: str) -> dict:
    drop_caches()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", STEP, str(store), point, what],
                          check=True, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    out = json.loads(proc.stdout)
    out["wall"] = time.perf_counter() - t0
    return out


def cat_throughput(store: Path, point: str) -> dict:
    drop_caches()
    code = (
        "import resource,subprocess,sys,time;t=time.perf_counter();"
        "subprocess.run([sys.executable,'-m','agent','--store',sys.argv[1],'cat',sys.argv[2],"
        "'/big.bin'],stdout=subprocess.DEVNULL,check=True);"
        "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(store), point], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout.split()  # fmt: skip
    seconds, rss_kib = float(out[0]), int(out[1])
    return {"seconds": seconds, "mb_s": 2 * GIB / seconds / 1e6, "rss_mib": rss_kib / 1024}


def rpc_throughput(store: Path, point: str) -> dict:
    drop_caches()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "--store", str(store), "rpc"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)  # fmt: skip

    def call(i, method, **params):
        proc.stdin.write(json.dumps({"id": i, "method": method, "params": params}).encode() + b"\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        data = proc.stdout.read(answer["binary"]) if answer.get("binary") else b""
        return answer, data

    call(0, "hello", version=1)
    t0, offset, i = time.perf_counter(), 0, 1
    while True:
        answer, data = call(i, "files.cat", point=point, path="/big.bin", offset=offset,
                            length=4 * MIB)  # fmt: skip
        offset += len(data)
        i += 1
        if answer["result"]["eof"]:
            break
    seconds = time.perf_counter() - t0
    proc.stdin.close()
    proc.wait()
    rss = int(Path(f"/proc/{os.getpid()}/status").exists())  # the agent's RSS: see cat's
    del rss
    return {"seconds": seconds, "mb_s": offset / seconds / 1e6, "bytes": offset}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="work directory (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept --work store")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bdr-bench-restore-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    built = backed = 0.0
    if args.reuse and store.exists():
        point = json.loads(agent(store, "--json", "points").stdout)[-1]["id"]
    else:
        t0 = time.perf_counter()
        disk = build_image(work)
        built = time.perf_counter() - t0
        agent(store, "init", "--key-file", str(work / "key"))
        t0 = time.perf_counter()
        point = json.loads(agent(store, "--json", "backup", "bench", str(disk)).stdout)["id"]
        backed = time.perf_counter() - t0
        disk.unlink()
    rows = []
    r = step(store, point, "ls-root")
    rows.append(("list / (cold)", f"{r['seconds']:.2f} s ({r['wall']:.2f} s new process)",
                 f"{r['rss_mib']:.0f} MiB", "< 1 s"))  # fmt: skip
    r = step(store, point, "ls-1000")
    rows.append(("list 1,000-entry dir (cold)", f"{r['seconds']:.2f} s ({r['wall']:.2f} s new "
                 "process)", f"{r['rss_mib']:.0f} MiB", "< 1 s"))  # fmt: skip
    r = cat_throughput(store, point)
    rows.append(("2 GiB file, bdr-agent cat", f"{r['mb_s']:.0f} MB/s ({r['seconds']:.1f} s)",
                 f"{r['rss_mib']:.0f} MiB", ">= 200 MB/s"))  # fmt: skip
    r = rpc_throughput(store, point)
    rows.append(("2 GiB file, rpc 4 MiB windows", f"{r['mb_s']:.0f} MB/s ({r['seconds']:.1f} s)",
                 "-", ">= 200 MB/s"))  # fmt: skip
    r = step(store, point, "zip")
    rows.append(("zip of 10,000 small files", f"{r['seconds']:.1f} s, "
                 f"{r['zip_bytes'] / MIB:.0f} MiB", f"{r['rss_mib']:.0f} MiB", "-"))  # fmt: skip
    print(f"\n20 GiB point (ext4, MBR), image built in {built:.0f} s, backed up in {backed:.0f} s")
    print(f"| {'step':<32} | {'result':<36} | {'peak RSS':<9} | {'target':<11} |")
    print(f"|{'-' * 34}|{'-' * 38}|{'-' * 11}|{'-' * 13}|")
    for name, result, rss, target in rows:
        print(f"| {name:<32} | {result:<36} | {rss:<9} | {target:<11} |")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
