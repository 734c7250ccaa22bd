"""Where a replication over a long link spends its time: MB/s and CPU per process.

    .venv/bin/python bench/replicate_probe.py --workdir DIR [--configs 8x1@0,8x1@50,...]
        [--relay async|threads] [--seconds 12]

Needs a workdir that ``bench/replicate.py --steps "" --keep --workdir DIR`` prepared (the
volume and the store). Each config ``CxK@D`` is a first replication into an empty vault
with C connections of K channels (``--streams C --channels K``), through the bench's delay
relay at D ms each way (D = "direct": no relay at all). It samples, every 0.25 s, the
bytes the vault received and the CPU time of every process taking part (the sender, ssh,
sshd, vault serve, the relay) from /proc, and reports the rate and the CPU of each kind
of process (in cores) over the steady part of the run: from 1 s after the first byte to
the end, at most ``--seconds`` long (then the run is stopped). Figures on a shared
machine: take the best of a few rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import replicate as bench  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds) of a process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _kind(pid: int) -> str:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    if comm == "ssh":
        return "ssh mux client" if " -S " in cmd and " -M " not in cmd else "ssh"
    if comm == "sshd" or cmd.startswith("sshd"):
        return "sshd"
    if "vault serve" in cmd:
        return "vault serve"
    if "--relay" in cmd:
        return "relay"
    if " replicate " in cmd:
        return "sender"
    return comm or "?"


KINDS: dict[int, str] = {}


def _tree(roots: list[int]) -> dict[int, float]:
    """cpu seconds of ``roots`` and all their descendants (their kinds noted in KINDS)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (s := _stat(int(entry))) is not None:
            stats[int(entry)] = s
    keep = set(r for r in roots if r in stats)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in keep and pid not in keep:
                keep.add(pid)
                grew = True
    for pid in keep:
        if pid not in KINDS or KINDS[pid] in ("?", "python"):
            KINDS[pid] = _kind(pid)
    return {pid: stats[pid][1] for pid in keep}


def _idle() -> float:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / TICK


def run_config(w, sshd, vault: Path, conns: int, channels: int, delay: str, relay_kind: str,
               seconds: float) -> dict:  # fmt: skip
    from tests.agent.vault_world import received_bytes
    from tests.support.sshd import free_port

    w.fresh_vault(vault)
    relay = None
    port = sshd.port
    if delay != "direct":
        port = free_port()
        relay = subprocess.Popen([bench.PY, str(REPO / "bench/replicate.py"), "--relay", str(port),
                                  str(sshd.port), delay, "--relay-kind", relay_kind])  # fmt: skip
        time.sleep(1.0)
    bench.settle(w.store)
    cmd = bench.agent("--store", str(w.store), "--json", "replicate",
                      f"ssh://root@127.0.0.1:{port}{vault}", "--host-key", sshd.host_key,
                      "--limit", "off", "--streams", str(conns))  # fmt: skip
    if channels > 1:
        cmd += ["--channels", str(channels)]
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    roots = [proc.pid, sshd.process.pid] + ([relay.pid] if relay else [])
    samples = []  # (t, received, idle, {pid: cpu})
    first = None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            got = received_bytes(vault) if (vault / "sessions").exists() else 0
            tree = _tree(roots)
            samples.append((now, got, _idle(), tree))
            if got and first is None:
                first = now
            if first is not None and now - first > seconds + 1:
                break
            time.sleep(0.25)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate()
        if relay is not None:
            relay.terminate()
            relay.wait()
    done = proc.returncode == 0
    window = [s for s in samples if first is not None and s[0] >= first + 1]
    if len(window) < 2:
        return {"error": err.decode()[-300:], "rate": 0}
    (t0, b0, i0, _), (t1, b1, i1, _) = window[0], window[-1]
    start: dict[int, float] = {}
    last: dict[int, float] = {}
    for _, _, _, tree in window:  # a process that ended in the window counts until it did
        for pid, cpu in tree.items():
            start.setdefault(pid, cpu)
            last[pid] = cpu
    kinds: dict[str, list[float]] = {}
    for pid, cpu in last.items():
        kinds.setdefault(KINDS.get(pid, "?"), []).append((cpu - start[pid]) / (t1 - t0))
    return {
        "rate": (b1 - b0) / (t1 - t0),
        "span": t1 - t0,
        "finished": done,
        "total_s": time.monotonic() - began,
        "idle": (i1 - i0) / (t1 - t0),
        "cpu": {k: (sum(v), len(v), max(v)) for k, v in sorted(kinds.items())},
    }


def run_raw(w, conns: int, channels: int, delay: str, relay_kind: str, total_mib: int) -> dict:
    """``total_mib`` of zeros through ``conns`` ssh connections of ``channels`` sessions each
    (OpenSSH ControlMaster), each session ``cat > /dev/null`` on the far side: the link
    and SSH alone, none of our code."""
    import tempfile

    from tests.support.sshd import free_port

    port = w.sshd.port
    relay = None
    if delay != "direct":
        port = free_port()
        relay = subprocess.Popen([bench.PY, str(REPO / "bench/replicate.py"), "--relay", str(port),
                                  str(w.sshd.port), delay, "--relay-kind", relay_kind])  # fmt: skip
        time.sleep(1.0)
    alias = f"-o HostKeyAlias=[127.0.0.1]:{w.sshd.port}"
    ssh = w.rsync_ssh.replace(f"-p {w.sshd.port}", f"-p {port} {alias}")
    tmp = Path(tempfile.mkdtemp(prefix="probe-"))
    each = (total_mib << 20) // (conns * channels)
    masters, shells = [], []
    began = time.monotonic()
    try:
        for c in range(conns):
            ctl = tmp / f"c{c}"
            if channels > 1:
                master = f"{ssh} -M -N -S {ctl} -o ControlPersist=no root@127.0.0.1"
                masters.append(subprocess.Popen(master, shell=True))  # noqa: S602
            for _ in range(channels):
                mux = f"-S {ctl} -o ControlMaster=no" if channels > 1 else ""
                shells.append(
                    f"head -c {each} /dev/zero | {ssh} {mux} root@127.0.0.1 'cat >/dev/null'"
                )
        deadline = time.monotonic() + 10
        while masters and not all((tmp / f"c{c}").exists() for c in range(conns)):
            if time.monotonic() > deadline:
                raise SystemExit("the ssh masters did not start")
            time.sleep(0.02)
        ready = time.monotonic()
        procs = [subprocess.Popen(sh, shell=True, start_new_session=True)  # noqa: S602
                 for sh in shells]  # fmt: skip
        roots = [p.pid for p in procs] + [m.pid for m in masters] + [w.sshd.process.pid]
        roots += [relay.pid] if relay else []
        samples = []
        while any(p.poll() is None for p in procs):
            samples.append((time.monotonic(), _idle(), _tree(roots)))
            time.sleep(0.25)
        end = time.monotonic()
    finally:
        for m in masters:
            m.terminate()
            m.wait()
        if relay is not None:
            relay.terminate()
            relay.wait()
    start: dict[int, float] = {}
    last: dict[int, float] = {}
    for _, _, tree in samples:
        for pid, cpu in tree.items():
            start.setdefault(pid, cpu)
            last[pid] = cpu
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 1
    kinds: dict[str, list[float]] = {}
    for pid, cpu in last.items():
        kinds.setdefault(KINDS.get(pid, "?"), []).append((cpu - start[pid]) / span)
    return {
        "rate": each * conns * channels / (end - ready),
        "setup": ready - began,
        "idle": (samples[-1][1] - samples[0][1]) / span if len(samples) > 1 else 0,
        "cpu": {k: (sum(v), len(v), max(v)) for k, v in sorted(kinds.items())},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/bdr-bench-replicate"))
    ap.add_argument("--configs", default="8x1@0,8x1@50")
    ap.add_argument("--relay-kind", default="async", choices=("async", "threads"))
    ap.add_argument("--seconds", type=float, default=12)
    ap.add_argument("--raw-mib", type=int, default=1600, help="raw: MiB sent in all")
    args = ap.parse_args()
    w = bench.World(args.workdir, 4096)
    vault = w.work / "vault-probe"
    w.fresh_vault(vault)
    sshd = w.vault_host("sshd-probe", vault, w.store)
    rows = []
    try:
        for config in args.configs.split(","):
            shape, delay = config.split("@")
            raw = shape.startswith("raw:")
            conns, channels = (int(x) for x in shape.removeprefix("raw:").split("x"))
            while bench.QUIET.exists():
                time.sleep(5)
            if raw:
                r = run_raw(w, conns, channels, delay, args.relay_kind, args.raw_mib)
            else:
                r = run_config(w, sshd, vault, conns, channels, delay, args.relay_kind,
                               args.seconds)  # fmt: skip
            rows.append((config, r))
            cpu = "  ".join(f"{k} {tot:.2f}/{n} (max {mx:.2f})"
                            for k, (tot, n, mx) in r.get("cpu", {}).items())  # fmt: skip
            print(f"{config:>12} {args.relay_kind:>7}  {r['rate'] / 1e6:7.1f} MB/s  "
                  f"idle {r.get('idle', 0):.2f}  {cpu}", flush=True)  # fmt: skip
            if "error" in r:
                print("   ", r["error"])
    finally:
        sshd.stop()
        w.stop()
    (w.work / "probe.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
