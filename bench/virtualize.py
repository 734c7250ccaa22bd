"""Seconds from "Start VM" to qemu running and to the first serial marker, by point size.

For points of 1, 8 and 32 GiB (sparse, a boot sector at the front), through the real CLI:
``bdr-agent vm start`` (a virtualize job: NBD export + qcow2 overlay + qemu) until the
record says running, then until the boot sector's marker is on the serial port. Nothing is
converted, so neither figure should grow with the size. Beside them, what the seed's
conversion (1.0-3.6 GB per minute) would take before a VM could even start.

    .venv/bin/python bench/virtualize.py [--sizes-gib 1,8,32] [--accel tcg|kvm|auto]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.vm.bootsector import write_boot_disk  # noqa: E402


def agent(store: Path, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "agent", "--store", str(store), "--json", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(work: Path, gib: int) -> tuple[float, float]:
    store = work / f"store{gib}"
    agent(store, "init", "--key-file", str(work / "key"))
    disk = write_boot_disk(work / f"disk{gib}.img", f"BENCH-{gib}GIB", gib << 30)
    point = agent(store, "backup", "bench", str(disk))["id"]
    disk.unlink()
    t0 = time.monotonic()
    vm = agent(store, "vm", "start", point, "--net", "none", "--memory", "256")
    t_running = time.monotonic() - t0
    serial = store / "appliance" / "vms" / vm["id"] / "serial.log"
    marker = f"BENCH-{gib}GIB".encode()
    while marker not in (serial.read_bytes() if serial.exists() else b""):
        if time.monotonic() - t0 > 300:
            raise SystemExit(f"{gib} GiB: no marker in 300 s")
        time.sleep(0.01)
    t_marker = time.monotonic() - t0
    agent(store, "vm", "stop", vm["id"], "--force")
    return t_running, t_marker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-gib", default="1,8,32")
    ap.add_argument("--accel", default=os.environ.get("BDR_VM_ACCEL", "auto"))
    args = ap.parse_args()
    os.environ["BDR_VM_ACCEL"] = args.accel
    print(f"accel: {args.accel}")
    print(
        f"{'point':>7} | {'to qemu running':>15} | {'to serial marker':>16} | seed conversion at 3.6 / 1.0 GB/min"
    )
    with tempfile.TemporaryDirectory(dir=os.environ.get("BDR_BENCH_DIR")) as tmp:
        for gib in (int(s) for s in args.sizes_gib.split(",")):
            running, marker = measure(Path(tmp), gib)
            gb = gib * 2**30 / 1e9
            seed = f"{gb / 3.6 * 60:7.0f} s / {gb / 1.0 * 60:7.0f} s"
            print(f"{gib:>4} GiB | {running:>13.2f} s | {marker:>14.2f} s | {seed}")


if __name__ == "__main__":
    main()
