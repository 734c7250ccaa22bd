"""Benchmark replication (appliance -> vault over SSH on 127.0.0.1) against rsync.

    .venv/bin/python bench/replicate.py [--size-mib 4096] [--workdir DIR] [--rounds N]
        [--steps first,incremental,latency,throttle,cuts,seed] [--change 0.1] [--keep]

What it measures (agent/README.md has the figures), on a store of one mkvol point (seed 1):

- first: ``replicate`` into an empty vault vs ``rsync -a`` of the store directory into an
  empty directory, over the same sshd, the same ssh options and cipher; best of N rounds,
  the order alternating; target: replicate <= 1.0x rsync.
- incremental: ``mkvol mutate`` (--change percent, a quarter hour of writes), a backup,
  then replicate vs rsync of the store again (each round a new incremental); the same
  incremental is also backed up into a 40 GiB sparse copy of the volume (the 4 GiB of data
  and 36 GiB of hole) and replicated to its own vault: its time within 1.2x of the 4 GiB
  store's (the cost follows the new bytes, not the store).
- latency: a first replication of the store through a relay that delays each direction
  by 50 ms (100 ms round trip) vs the same relay at 0 ms, rounds alternating, the best
  rate of each; target: >= 0.8x the throughput. (netem would be the natural tool, but
  this kernel has no sch_netem, nor sch_fq for an eBPF departure-time delay; tbf, htb and
  clsact do not delay. The relay, one Python process, delays every byte, so SSH's channel
  windows and our acknowledgements see the round trip, while TCP's own window does not;
  it costs 0.2-0.4 of a core itself, which lowers the 0 ms figure too: 8 streams 174-197
  MB/s through it at 0 ms, 296-300 MB/s without it. ``--relay-kind threads``, a thread per
  direction and connection, measured the same: 186 and 129 MB/s against 194 and 131.)
  ``bench/replicate_probe.py`` breaks a run down by process.
- throttle: --limit 4M and --limit 512kbit for 70 s each; the rate the vault received over
  the minute after the first 10 s; target: within 5% of the limit.
- cuts: 20 cuts (the ssh client, the sender, the vault's serve, killed in turn at seeded
  random byte counts) during a first replication, then a clean run; what the vault received
  beyond what it keeps; target: <= 20 x the largest blob.
- seed: a new store seeded from the vault over SSH; target: <= 1.2x the first replication;
  the newest point restores byte-identical to the volume, the first to the original.
- peak RSS of replicate, vault serve and seed: < 256 MB.

It creates /tmp/QUIET for the measured steps when nobody holds it (other sessions then
start no tests; hold it at most 15 minutes: run a few steps at a time, ``--steps ""`` only
makes the volume and the store), and waits for the load average to come down before each
measured step.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MKVOL = Path(
    os.environ.get("BDR_MKVOL", Path(__file__).resolve().parents[2] / "shared/bench/mkvol.py")
)
PY = sys.executable
CIPHER = "aes128-gcm@openssh.com"
T0 = "2025-03-01T08:00:00Z"
QUIET = Path("/tmp/QUIET")


# -- processes ---------------------------------------------------------------------------
def timed(cmd: list[str], check: bool = True) -> tuple[float, int, str]:
    """Like ``run`` but the peak RSS comes from wait4() of the process itself."""
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - began
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if check and code != 0:
        raise SystemExit(f"{cmd[:6]} failed ({code}): {err.decode()[-800:]}")
    return elapsed, usage.ru_maxrss * 1024, out.decode()


def agent(*args: str) -> list[str]:
    return [PY, "-m", "agent", *args]


def settle(*warm: Path) -> None:
    """Dirty pages written, the inputs read once (warm cache for every tool), and a machine
    not busy with someone else's work."""
    os.sync()
    for path in warm:
        for f in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            with open(f, "rb") as fh:
                while fh.read(16 << 20):
                    pass
    wait_for_quiet()


def wait_for_quiet(limit: float = 2.0, patience: float = 30) -> None:
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        time.sleep(5)


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(16 << 20):
            h.update(block)
    return h.hexdigest()


# -- the delay relay (latency step) ----------------------------------------------------------
async def _pump(reader, writer, delay: float) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def forward():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(forward())
    while data := await reader.read(256 << 10):
        await queue.put((time.monotonic() + delay, data))
    await queue.put((0, None))
    await task


async def _relay(listen: int, target: int, delay: float) -> None:
    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(_pump(reader, up_writer, delay), _pump(up_reader, writer, delay),
                             return_exceptions=True)  # fmt: skip

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


def _thread_pump(src, dst, delay: float) -> None:
    """One direction of one connection: a thread reads, another writes each piece once it
    is ``delay`` old (the sockets' calls release the GIL, so directions run in parallel)."""
    import queue
    import threading

    pieces: queue.SimpleQueue = queue.SimpleQueue()

    def forward():
        while (item := pieces.get())[1]:
            wait = item[0] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                dst.sendall(item[1])
            except OSError:
                break
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    writer = threading.Thread(target=forward, daemon=True)
    writer.start()
    try:
        while data := src.recv(1 << 20):
            pieces.put((time.monotonic() + delay, data))
    except OSError:
        pass
    pieces.put((0.0, b""))
    writer.join()


def _thread_relay(listen: int, target: int, delay: float) -> None:
    import threading

    server = socket.create_server(("127.0.0.1", listen))
    while True:
        down, _ = server.accept()
        up = socket.create_connection(("127.0.0.1", target))
        for src, dst in ((down, up), (up, down)):
            threading.Thread(target=_thread_pump, args=(src, dst, delay), daemon=True).start()


def start_relay(listen: int, target: int, delay_ms: float, kind: str = "async") -> subprocess.Popen:
    proc = subprocess.Popen([PY, __file__, "--relay", str(listen), str(target), str(delay_ms),
                             "--relay-kind", kind])  # fmt: skip
    time.sleep(1.0)
    return proc


# -- the world: a store, a vault host, an rsync destination ---------------------------------
class World:
    def __init__(self, work: Path, size_mib: int):
        from tests.support.sshd import authorize, start_sshd, vault_forced_command

        self.work = work
        self.volume = work / "vol.img"
        self.store = work / "store"
        self.vault = work / "vault"
        self.dest = work / "rsync-dest"
        if not self.volume.exists():
            subprocess.run([PY, str(MKVOL), "create", str(self.volume), str(size_mib),
                            "--seed", "1"], check=True)  # fmt: skip
        if not (self.store / "config.json").exists():
            shutil.rmtree(self.store, ignore_errors=True)
            timed(agent("--store", str(self.store), "init", "--key-file", str(work / "key")))
            timed(agent("--store", str(self.store), "backup", "srv1", str(self.volume),
                        "--at", T0))  # fmt: skip
        self.original = json.loads((work / "digests.json").read_text()) if (
            work / "digests.json").exists() else {"base": sha(self.volume)}  # fmt: skip
        (work / "digests.json").write_text(json.dumps(self.original))
        self.identity = self._vault_key(self.store)
        shutil.rmtree(work / "sshd", ignore_errors=True)
        self.command = vault_forced_command(self.vault)
        self.sshd = start_sshd(work / "sshd", self.vault, command=self.command)
        authorize(self.sshd, Path(f"{self.identity}.pub").read_text(), self.command)
        rsync_key = work / "rsync_key"
        if not rsync_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(rsync_key)],
                           check=True)  # fmt: skip
        with open(self.sshd.authorized_keys, "a") as f:
            f.write(Path(f"{rsync_key}.pub").read_text())
        self.known = work / "known_hosts"
        self.known.write_text(f"[127.0.0.1]:{self.sshd.port} {self.sshd.host_key}\n")
        self.rsync_ssh = (f"ssh -T -c {CIPHER} -i {rsync_key} -p {self.sshd.port} -o BatchMode=yes "
                          f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.known} "
                          "-o IdentitiesOnly=yes -o Compression=no")  # fmt: skip
        self._authorize = authorize

    @staticmethod
    def _vault_key(store: Path) -> Path:
        timed(
            [
                PY,
                "-c",
                f"from agent.offsite.replicate import vault_files; vault_files({str(store)!r})",
            ]
        )
        return store / "appliance" / "vault_ed25519"

    def vault_host(self, name: str, vault: Path, store: Path):
        """Another sshd whose forced command serves ``vault``, letting ``store``'s key in."""
        from tests.support.sshd import start_sshd, vault_forced_command

        shutil.rmtree(self.work / name, ignore_errors=True)
        command = vault_forced_command(vault)
        sshd = start_sshd(self.work / name, vault, command=command)
        self._authorize(sshd, Path(f"{self._vault_key(store)}.pub").read_text(), command)
        return sshd

    def target(self, port: int | None = None, vault: Path | None = None) -> str:
        return f"ssh://root@127.0.0.1:{port or self.sshd.port}{vault or self.vault}"

    def fresh_vault(self, vault: Path | None = None) -> None:
        vault = vault or self.vault
        shutil.rmtree(vault, ignore_errors=True)
        timed(agent("vault", "init", str(vault), "--name", "dc1"))

    def replicate(self, store: Path | None = None, *extra: str, target: str = "") -> tuple:
        cmd = agent("--store", str(store or self.store), "--json", "replicate",
                    target or self.target(), "--host-key", self.sshd.host_key, *extra)  # fmt: skip
        if "--limit" not in extra:
            cmd += ["--limit", "off"]
        seconds, rss, out = timed(cmd)
        return seconds, rss, json.loads(out)

    def rsync(self) -> float:
        seconds, _, _ = timed(["rsync", "-a", "-e", self.rsync_ssh, f"{self.store}/",
                               f"root@127.0.0.1:{self.dest}/"])  # fmt: skip
        return seconds

    def serve_rss(self) -> int:
        log = self.vault / "sessions" / "log.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        return max((json.loads(line).get("max_rss_kib", 0) for line in lines), default=0) * 1024

    def stop(self) -> None:
        self.sshd.stop()


# -- steps ------------------------------------------------------------------------------------
def step_first(w: World, rounds: int) -> dict:
    got: dict[str, list[float]] = {"replicate": [], "rsync": []}
    rss, sent = 0, 0
    for r in range(rounds):
        for tool in ("replicate", "rsync") if r % 2 == 0 else ("rsync", "replicate"):
            if tool == "replicate":
                w.fresh_vault()
                settle(w.store)
                seconds, peak, out = w.replicate()
                rss, sent = max(rss, peak), out["bytes_sent"]
            else:
                shutil.rmtree(w.dest, ignore_errors=True)
                w.dest.mkdir()
                settle(w.store)
                seconds = w.rsync()
            got[tool].append(seconds)
            print(f"  first round {r + 1}: {tool} {seconds:.2f} s", flush=True)
    best = {tool: min(times) for tool, times in got.items()}
    return {**best, "ratio": best["replicate"] / best["rsync"], "rounds": got,
            "rss_replicate": rss, "bytes": sent}  # fmt: skip


def step_incremental(w: World, rounds: int, change: float) -> dict:
    vol40, store40, vault40 = w.work / "vol40.img", w.work / "store40", w.work / "vault40"
    for path in (store40, vault40, vol40):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    subprocess.run(["cp", "--sparse=always", str(w.volume), str(vol40)], check=True)
    os.truncate(vol40, 40 << 30)
    timed(agent("--store", str(store40), "init", "--key-file", str(w.work / "key")))
    timed(agent("--store", str(store40), "backup", "srv1", str(vol40), "--at", T0))
    w.fresh_vault(vault40)
    sshd40 = w.vault_host("sshd40", vault40, store40)
    target40 = f"ssh://root@127.0.0.1:{sshd40.port}{vault40}"
    replicate40 = agent("--store", str(store40), "--json", "replicate", target40,
                        "--host-key", sshd40.host_key, "--limit", "off")  # fmt: skip
    timed(replicate40)
    got: dict[str, list[float]] = {"replicate": [], "rsync": [], "replicate 40 GiB": []}
    try:
        for r in range(rounds):
            at = _after_the_newest(w.store, r)
            subprocess.run([PY, str(MKVOL), "mutate", str(w.volume), str(change), "--seed",
                            str(100 + r)], check=True)  # fmt: skip
            timed(agent("--store", str(w.store), "backup", "srv1", str(w.volume), "--at", at))
            for tool in ("replicate", "rsync") if r % 2 == 0 else ("rsync", "replicate"):
                settle(w.store)
                seconds = w.replicate()[0] if tool == "replicate" else w.rsync()
                got[tool].append(seconds)
            subprocess.run(["dd", f"if={w.volume}", f"of={vol40}", "bs=4M", "conv=notrunc,sparse",
                            "status=none"], check=True)  # fmt: skip
            timed(agent("--store", str(store40), "backup", "srv1", str(vol40), "--at", at))
            settle(store40)
            got["replicate 40 GiB"].append(timed(replicate40)[0])
            print(f"  incremental round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s"
                                                             for k, v in got.items()), flush=True)  # fmt: skip
    finally:
        sshd40.stop()
    best = {tool: min(times) for tool, times in got.items()}
    return {**best, "ratio": best["replicate"] / best["rsync"],
            "ratio_40": best["replicate 40 GiB"] / best["replicate"], "rounds": got}  # fmt: skip


def _after_the_newest(store: Path, r: int) -> str:
    """A quarter of an hour after the store's newest point (a kept workdir has some)."""
    import datetime as dt

    stamps = [p.stem for p in (store / "servers").rglob("*.idx")]
    newest = max((dt.datetime.strptime(t, "%Y%m%dT%H%M%SZ") for t in stamps),
                 default=dt.datetime(2025, 3, 1, 8))  # fmt: skip
    return (newest + dt.timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")


def step_latency(w: World, extra: list[str] | None = None, rounds: int = 1) -> dict:
    from tests.support.sshd import free_port

    vault = w.work / "vault-lat"
    w.fresh_vault(vault)
    sshd = w.vault_host("sshd-lat", vault, w.store)
    got: dict[str, list[float]] = {"0 ms": [], "100 ms": []}
    try:
        for r in range(rounds):
            for delay in (0, 50) if r % 2 == 0 else (50, 0):
                w.fresh_vault(vault)
                port = free_port()
                relay = start_relay(port, sshd.port, delay)
                try:
                    settle(w.store)
                    seconds, rss, result = timed(agent("--store", str(w.store), "--json",
                                                       "replicate",
                                                       f"ssh://root@127.0.0.1:{port}{vault}",
                                                       "--host-key", sshd.host_key, "--limit",
                                                       "off", *(extra or [])))  # fmt: skip
                finally:
                    relay.terminate()
                    relay.wait()
                rate = json.loads(result)["bytes_sent"] / seconds
                got[f"{2 * delay} ms"].append(rate)
                print(f"  latency round {r + 1} {2 * delay} ms: {rate / 1e6:.1f} MB/s "
                      f"({seconds:.1f} s, peak RSS {rss / 1e6:.0f} MB)", flush=True)  # fmt: skip
    finally:
        sshd.stop()
    out: dict = {k: max(v) for k, v in got.items()}
    out["rounds"] = got
    out["ratio"] = out["100 ms"] / out["0 ms"]
    return out


def step_throttle(w: World) -> dict:
    from agent.vault.throttle import parse_rate

    out = {}
    for limit in ("4M", "512kbit"):
        w.fresh_vault()
        settle(w.store)
        before = (
            set((w.vault / "sessions").glob("*.json")) if (w.vault / "sessions").exists() else set()
        )
        proc = subprocess.Popen(agent("--store", str(w.store), "replicate", w.target(),
                                      "--host-key", w.sshd.host_key, "--limit", limit),
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        samples = []
        began = time.monotonic()
        while time.monotonic() - began < 70.5:
            time.sleep(0.25)
            sessions = [p for p in (w.vault / "sessions").glob("*.json") if p not in before]
            counter = sessions[0].with_suffix(".received") if sessions else None
            if counter and counter.exists():
                samples.append((time.monotonic() - began,
                                int.from_bytes(counter.read_bytes()[:8] or b"\0", "big")))  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        t10 = min(samples, key=lambda s: abs(s[0] - 10))
        t70 = min(samples, key=lambda s: abs(s[0] - 70))
        rate = (t70[1] - t10[1]) / (t70[0] - t10[0])
        expected = parse_rate(limit)
        out[limit] = {"limit": expected, "measured": rate, "error": rate / expected - 1}
        print(f"  throttle {limit}: {rate:.0f} B/s vs {expected:.0f} ({out[limit]['error']:+.2%})",
              flush=True)  # fmt: skip
    return out


def step_cuts(w: World, cuts: int = 20) -> dict:
    from agent.records import process_alive
    from agent.vault.store import open_vault
    from tests.agent.vault_world import child_pid, received_bytes

    w.fresh_vault()
    rng = random.Random(20250301)
    done = 0
    for i in range(cuts):
        sessions = w.vault / "sessions"
        before = {p.stem for p in sessions.glob("*.json")} if sessions.exists() else set()
        proc = subprocess.Popen(agent("--store", str(w.store), "replicate", w.target(),
                                      "--host-key", w.sshd.host_key, "--limit", "off"),
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        threshold, how = rng.randrange(64 << 10, 12 << 20), ("ssh", "sender", "vault")[i % 3]
        while proc.poll() is None:
            live = [p for p in sessions.glob("*.json") if p.stem not in before
                    and process_alive(int(p.stem))] if sessions.exists() else []  # fmt: skip
            counter = live[0].with_suffix(".received") if live else None
            if counter and counter.exists() and int.from_bytes(counter.read_bytes()[:8] or b"\0",
                                                                "big") >= threshold:  # fmt: skip
                victim = {"ssh": child_pid(proc.pid, "ssh"), "sender": proc.pid,
                          "vault": int(live[0].stem)}[how]  # fmt: skip
                if victim:
                    os.kill(victim, signal.SIGKILL)
                    done += 1
                break
            time.sleep(0.001)
        proc.wait()
    _, _, final = w.replicate()
    vault = open_vault(w.vault)
    app = vault.appliances()[0]
    sizes = [size for _, size in vault.backend.iter_blobs(app)]
    resent = received_bytes(w.vault) - sum(sizes)
    whole = all(p["whole"] for p in vault.points(app))
    verify = timed(agent("vault", "verify", str(w.vault)), check=False)
    print(f"  cuts: {done} made, {resent} bytes resent, largest blob {max(sizes)}", flush=True)
    return {"cuts": done, "resent": resent, "largest": max(sizes), "limit": done * max(sizes),
            "whole": whole and verify[1] >= 0 and final["points_on_vault"] == final["points_local"]}  # fmt: skip


def step_seed(w: World, first_seconds: float) -> dict:
    new = w.work / "seeded"
    shutil.rmtree(new, ignore_errors=True)
    timed(agent("--store", str(new), "init", "--key-file", str(w.work / "key")))
    w._authorize(w.sshd, Path(f"{w._vault_key(new)}.pub").read_text(), w.command)
    settle(w.vault)
    seconds, rss, out = timed(agent("--store", str(new), "--json", "seed", "--from", w.target(),
                                    "--key-file", str(w.work / "key"),
                                    "--host-key", w.sshd.host_key))  # fmt: skip
    result = json.loads(out)
    points = json.loads(timed(agent("--store", str(new), "--json", "points"))[2])
    identical = True
    for point, expected in (
        (points[-1]["id"], sha(w.volume)),
        (points[0]["id"], w.original["base"]),
    ):
        dest = w.work / "restored.img"
        timed(agent("--store", str(new), "restore", point, str(dest)))
        identical &= sha(dest) == expected
        dest.unlink()
    print(
        f"  seed: {seconds:.2f} s, {result['bytes_fetched']} bytes, identical {identical}",
        flush=True,
    )
    return {"seconds": seconds, "ratio": seconds / first_seconds, "rss": rss,
            "bytes": result["bytes_fetched"], "points": result["points_seeded"],
            "identical": identical}  # fmt: skip


# -- report -----------------------------------------------------------------------------------
def report(results: dict) -> bool:
    rows = []
    if "first" in results:
        f = results["first"]
        rows.append(("first replication vs rsync -a", f"{f['replicate']:.2f} s / {f['rsync']:.2f} s",
                     f"{f['ratio']:.2f}x", f["ratio"] <= 1.0))  # fmt: skip
    if "incremental" in results:
        i = results["incremental"]
        rows.append(("after a 15-minute incremental vs rsync -a",
                     f"{i['replicate']:.2f} s / {i['rsync']:.2f} s", f"{i['ratio']:.2f}x",
                     i["ratio"] <= 1.0))  # fmt: skip
        rows.append(("same incremental, 40 GiB vs 4 GiB store",
                     f"{i['replicate 40 GiB']:.2f} s / {i['replicate']:.2f} s",
                     f"{i['ratio_40']:.2f}x", i["ratio_40"] <= 1.2))  # fmt: skip
    if "latency" in results:
        lat = results["latency"]
        rows.append(("100 ms round trip vs 0 ms (throughput)",
                     f"{lat['100 ms'] / 1e6:.1f} / {lat['0 ms'] / 1e6:.1f} MB/s",
                     f"{lat['ratio']:.2f}x", lat["ratio"] >= 0.8))  # fmt: skip
    for limit, t in results.get("throttle", {}).items():
        rows.append((f"throttle {limit} over a minute", f"{t['measured']:.0f} B/s",
                     f"{t['error']:+.2%}", abs(t["error"]) <= 0.05))  # fmt: skip
    if "cuts" in results:
        c = results["cuts"]
        rows.append((f"{c['cuts']} cuts: bytes resent", f"{c['resent']:,} B",
                     f"<= {c['limit']:,}", c["resent"] <= c["limit"] and c["whole"]))  # fmt: skip
    if "seed" in results:
        s = results["seed"]
        rows.append(("seed vs first replication", f"{s['seconds']:.2f} s", f"{s['ratio']:.2f}x",
                     s["ratio"] <= 1.2 and s["identical"]))  # fmt: skip
    rss = {k: v for k, v in results.get("rss", {}).items() if v}
    for name, value in rss.items():
        rows.append((f"peak RSS {name}", f"{value / 1e6:.0f} MB", "< 256 MB", value < 256e6))
    width = max(len(r[0]) for r in rows) if rows else 10
    for what, figure, ratio, ok in rows:
        print(f"{what:<{width}}  {figure:>26}  {ratio:>16}  {'met' if ok else 'MISSED'}")
    return all(r[3] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=4096)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/bdr-bench-replicate"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--change", type=float, default=0.1, help="percent mutated per incremental")
    ap.add_argument("--steps", default="first,incremental,latency,throttle,cuts,seed")
    ap.add_argument("--keep", action="store_true", help="keep the workdir (volumes are reused)")
    ap.add_argument("--no-hold", action="store_true", help="never create /tmp/QUIET")
    ap.add_argument("--latency-args", default="", help="more replicate args (latency step)")
    ap.add_argument("--relay", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--relay-kind", default="async", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.relay:
        listen, target, delay = args.relay
        if args.relay_kind == "threads":
            _thread_relay(int(listen), int(target), float(delay) / 1000)
        else:
            asyncio.run(_relay(int(listen), int(target), float(delay) / 1000))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    w = World(args.workdir, args.size_mib)  # volumes and stores made before the quiet hold
    mine = not QUIET.exists() and not args.no_hold
    if mine and args.steps:
        QUIET.write_text("bench/replicate.py\n")
    results: dict = {"rss": {}}
    steps = args.steps.split(",") if args.steps else []
    try:
        if "first" in steps:
            results["first"] = step_first(w, args.rounds)
            results["rss"]["replicate"] = results["first"]["rss_replicate"]
        if "incremental" in steps:
            results["incremental"] = step_incremental(w, args.rounds, args.change)
        if "latency" in steps:
            extra = args.latency_args.split() if args.latency_args else None
            results["latency"] = step_latency(w, extra, args.rounds)
        if "throttle" in steps:
            results["throttle"] = step_throttle(w)
        if "cuts" in steps:
            results["cuts"] = step_cuts(w)
        results["rss"]["vault serve"] = w.serve_rss()
        if "seed" in steps:
            first = results.get("first", {}).get("replicate") or w.replicate()[0]
            results["seed"] = step_seed(w, first)
            results["rss"]["seed"] = results["seed"]["rss"]
    finally:
        w.stop()
        if mine:
            QUIET.unlink(missing_ok=True)
    (args.workdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    ok = report(results)
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
