"""Benchmark bdr-agent against restic and borg on one synthetic volume, side by side.

    .venv/bin/python bench/engine.py [--size-mib 4096] [--workdir DIR] [--volume IMG]
                                     [--tools bdr-agent,restic,borg] [--rounds N] [--keep]
                                     [--change-pattern clustered|scattered]
                                     [--change-percent P] [--agent-format 1|2]

Steps, each tool in turn on the same file: base backup; then the volume changed once
(mkvol.py mutate: runs of 1, 2, 8, 32 or 256 4 KiB blocks at random offsets, half random
bytes, half text); incremental backup; restore of the latest point, compared byte for
byte with the volume. Change patterns: ``clustered`` (default) is the workload this
benchmark always ran, 1% of the blocks (~175 runs on 4 GiB); ``scattered`` is issue 13's,
2% (~350 runs, twice as many places touched). Prints seconds, the bytes each step added
to the tool's repository and peak RSS per tool per step, with bdr-agent's (and borg's)
time and incremental bytes as a ratio of restic's; then each target as met or MISSED,
with the ratio of every round. Exits 1 when a target is missed (on the best times) or a
restore is not byte-identical.

Fairness: before each timed step: sync, then read the step's input once (the volume
for backups, the tool's repository for restores), so every tool reads its input from a
warm cache and none pays for another's dirty pages; with --rounds N the whole sequence
runs N times on fresh repositories, the tools' order reversed every other round, and
the table shows each step's best time (shared VMs are noisy); every tool's repository is on
the same filesystem; each tool runs with its defaults for encryption and compression
(restic 0.14: repo v2, zstd "auto", AES-256-CTR+Poly1305, fsyncs its packs; borg 1.2:
repokey-blake2, lz4, fsyncs its segments; bdr-agent: zstd level 1, AES-256-GCM, 4 MiB
chunks, fsync before commit). Peak RSS comes from wait4() of each tool's process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MKVOL = Path(
    os.environ.get("BDR_MKVOL", Path(__file__).resolve().parents[2] / "shared/bench/mkvol.py")
)
VENV_BIN = Path(sys.executable).parent
TARGETS = {"base": 0.35, "incremental": 0.2, "restore": 0.4}  # bdr-agent's time / restic's
BYTES_TARGET = 0.5  # scattered: bytes the incremental added / restic's
PATTERNS = {"clustered": 1.0, "scattered": 2.0}  # default percent of 4 KiB blocks changed


def run(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, int]:
    """Run ``cmd``; return (seconds, peak RSS in bytes). Raises on failure."""
    began = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss * 1024


def settle(*warm: Path) -> None:
    """Same start for every tool: dirty pages written, the step's inputs read once so
    every tool reads them from the page cache.

    (Dropping the page cache was tried: on this VM freed pages go back to the host, and
    every tool then pays several seconds of faults for fresh ones; times varied 3x.)
    """
    os.sync()
    for path in warm:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for f in files:
            with open(f, "rb") as fh:
                while fh.read(16 << 20):
                    pass


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def same_bytes(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


class Tool:
    name = ""

    def __init__(self, work: Path, options: dict | None = None):
        self.work = work
        self.options = options or {}
        self.repo = work / f"repo-{self.name}"
        self.out = work / f"restore-{self.name}"

    def env(self) -> dict:
        return {}

    def init(self) -> None: ...
    def backup(self, volume: Path, label: str) -> list[str]: ...
    def restore(self, volume: Path) -> tuple[list[str], Path, Path | None]: ...


class BdrAgent(Tool):
    name = "bdr-agent"

    def cmd(self, *args: str) -> list[str]:
        exe = shutil.which("bdr-agent", path=str(VENV_BIN)) or "bdr-agent"
        return [exe, "--store", str(self.repo), *args]

    def init(self) -> None:
        fmt = str(self.options.get("agent_format", 2))
        run(self.cmd("init", "--key-file", str(self.work / "bdr.key"), "--format", fmt))

    def backup(self, volume, label):
        return self.cmd("backup", "bench", str(volume))

    def restore(self, volume):
        points = subprocess.run(self.cmd("points", "--json"), capture_output=True, check=True)
        latest = json.loads(points.stdout)[-1]["id"]
        dest = self.out / volume.name
        self.out.mkdir(exist_ok=True)
        return self.cmd("restore", latest, str(dest)), dest, None


class Restic(Tool):
    name = "restic"

    def env(self):
        return {"RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(self.repo)}

    def init(self):
        run(["restic", "init", "-q"], self.env())

    def backup(self, volume, label):
        return ["restic", "backup", "-q", "--tag", label, str(volume)]

    def restore(self, volume):
        cmd = ["restic", "restore", "latest", "--target", str(self.out)]
        return cmd, self.out / str(volume).lstrip("/"), None


class Borg(Tool):
    name = "borg"

    def env(self):
        return {"BORG_PASSPHRASE": "bench", "BORG_REPO": str(self.repo)}

    def init(self):
        run(["borg", "init", "-e", "repokey-blake2"], self.env())

    def backup(self, volume, label):
        return ["borg", "create", f"::{label}", str(volume)]

    def restore(self, volume):
        self.out.mkdir(exist_ok=True)
        cmd = ["borg", "extract", "--sparse", "::incremental"]
        return cmd, self.out / str(volume).lstrip("/"), self.out


TOOLS = {t.name: t for t in (BdrAgent, Restic, Borg)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=4096)
    ap.add_argument("--workdir", type=Path, help="default: a new directory under /var/tmp")
    ap.add_argument("--volume", type=Path, help="reuse this image (copied) instead of mkvol create")
    ap.add_argument("--tools", default="bdr-agent,restic,borg")
    ap.add_argument("--change-pattern", choices=PATTERNS, default="clustered")
    ap.add_argument("--change-percent", type=float, help="default: the pattern's (1 or 2)")
    ap.add_argument("--agent-format", type=int, choices=(1, 2), default=2, help="store format")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--rounds", type=int, default=1, help="repeat; report each step's best")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bdr-bench-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    original = work / "original.img"
    volume = work / "volume.img"
    print(f"work dir {work}", flush=True)
    if args.volume:
        subprocess.run(["cp", "--sparse=always", str(args.volume), str(original)], check=True)
    else:
        print(f"making a {args.size_mib} MiB volume with {MKVOL}", flush=True)
        mkvol = [sys.executable, str(MKVOL), "create", str(original), str(args.size_mib)]
        subprocess.run([*mkvol, "--seed", "1"], check=True)
    percent = args.change_percent or PATTERNS[args.change_pattern]
    label = f"{args.change_pattern} {percent:g}%"
    names = args.tools.split(",")
    best: dict[str, dict] = {name: {"identical": True} for name in names}
    per_round: list[dict] = []
    for n in range(args.rounds):
        print(f"-- round {n + 1} of {args.rounds}", flush=True)
        subprocess.run(["cp", "--sparse=always", str(original), str(volume)], check=True)
        # Alternate the order: the first tool to write a big file after another's was
        # deleted pays for page reclaim (restore times varied 2x with order alone).
        order = names if n % 2 == 0 else names[::-1]
        tools = [TOOLS[name](work, {"agent_format": args.agent_format}) for name in order]
        for tool in tools:
            shutil.rmtree(tool.repo, ignore_errors=True)
            shutil.rmtree(tool.out, ignore_errors=True)
            tool.init()
        round_results = one_round(tools, volume, percent)
        if "bdr-agent" in round_results and "restic" in round_results:
            per_round.append(round_results)
        for name, result in round_results.items():
            for step, value in result.items():
                if step == "identical":
                    best[name][step] = best[name][step] and value
                elif step not in best[name] or value[0] < best[name][step][0]:
                    best[name][step] = value
    print_table(best, original.stat().st_size >> 20, args.rounds, label)
    met = True
    if "bdr-agent" in best and "restic" in best:
        met = report_targets(best, per_round, args.change_pattern == "scattered")
    if not args.keep:
        shutil.rmtree(work)
    return 0 if met and all(r["identical"] for r in best.values()) else 1


def one_round(tools: list[Tool], volume: Path, change_percent: float) -> dict[str, dict]:
    results: dict[str, dict] = {t.name: {} for t in tools}
    for step in ("base", "incremental"):
        if step == "incremental":
            mutate = [sys.executable, str(MKVOL), "mutate", str(volume), str(change_percent)]
            subprocess.run([*mutate, "--seed", "2"], check=True)
        for tool in tools:
            settle(volume)
            before = tree_bytes(tool.repo)
            seconds, rss = run(tool.backup(volume, step), tool.env())
            os.sync()
            stored = tree_bytes(tool.repo) - before
            results[tool.name][step] = (seconds, stored, rss)
            print(
                f"{tool.name:10} {step:12} {seconds:8.2f} s  {stored / 1e6:9.1f} MB"
                f"  {rss / 1e6:7.1f} MB RSS",
                flush=True,
            )
    for tool in tools:
        cmd, restored, cwd = tool.restore(volume)
        settle(tool.repo)
        seconds, rss = run(cmd, tool.env(), cwd)
        ok = same_bytes(restored, volume)
        results[tool.name]["restore"] = (seconds, restored.stat().st_size, rss)
        results[tool.name]["identical"] = ok
        print(
            f"{tool.name:10} {'restore':12} {seconds:8.2f} s  byte-identical: {ok}"
            f"  {rss / 1e6:7.1f} MB RSS",
            flush=True,
        )
        restored.unlink()
    return results


def print_table(results: dict, size_mib: int, rounds: int, label: str) -> None:
    restic = results.get("restic")
    print(
        f"\nvolume {size_mib} MiB, {label} change, best of {rounds} round(s); seconds / MB added"
        " to the repository / peak RSS MB; xN = time / restic's, (xN) = bytes / restic's"
    )
    head = f"{'tool':10} | {'base':>24} | {'incremental':>32} | {'restore':>16} | ident"
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        cells = []
        for step in ("base", "incremental", "restore"):
            s, stored, rss = r[step]
            ratio = f" x{s / restic[step][0]:.2f}" if restic and name != "restic" else ""
            if step == "restore":
                cells.append(f"{s:6.2f}s{ratio:6} {rss / 1e6:4.0f}M".rjust(16))
                continue
            cell = f"{s:6.2f}s{ratio:6} {stored / 1e6:6.0f}MB"
            if step == "incremental":
                share = f"(x{stored / restic[step][1]:.2f})" if restic and name != "restic" else ""
                cell += f" {share:8}"
            cells.append(f"{cell} {rss / 1e6:4.0f}M")
        print(f"{name:10} | " + " | ".join(cells) + f" | {r['identical']}")


def target_ratios(results: dict) -> dict[str, float]:
    """bdr-agent's time over restic's for each step with a target, and the incremental's
    bytes over restic's (``bytes``)."""
    ours, theirs = results["bdr-agent"], results["restic"]
    ratios = {k: ours[k][0] / theirs[k][0] for k in TARGETS}
    ratios["bytes"] = ours["incremental"][1] / theirs["incremental"][1]
    return ratios


def print_rounds(per_round: list[dict]) -> None:
    """Every round's figures for bdr-agent and restic (seconds, MB added)."""
    print("\nround by round (bdr-agent / restic):")
    for n, r in enumerate(per_round, 1):
        cells = []
        for step in ("base", "incremental", "restore"):
            ours, theirs = r["bdr-agent"][step], r["restic"][step]
            cells.append(f"{step} {ours[0]:.2f}/{theirs[0]:.2f} s")
        ours, theirs = r["bdr-agent"]["incremental"][1], r["restic"]["incremental"][1]
        cells.append(f"incremental added {ours / 1e6:.0f}/{theirs / 1e6:.0f} MB")
        print(f"  round {n}: " + ", ".join(cells))


def report_targets(best: dict, per_round: list[dict], scattered: bool) -> bool:
    """Print each target as met or MISSED (best times, and round by round); True if all
    best-time ratios, the bytes target (scattered) and the peak RSS are within theirs."""
    print_rounds(per_round)
    ratios = target_ratios(best)
    by_round = [target_ratios(r) for r in per_round]
    limits = {**TARGETS, **({"bytes": BYTES_TARGET} if scattered else {})}
    rss = max(best["bdr-agent"][k][2] for k in TARGETS)
    print("\ntargets (bdr-agent / restic; time: best times; bytes: incremental's added bytes):")
    for step, limit in limits.items():
        rounds = " ".join(f"{r[step]:.2f}" for r in by_round)
        verdict = "met" if ratios[step] <= limit else "MISSED"
        print(f"  {step:12} <= {limit}x: {ratios[step]:.2f}x {verdict:6}  by round: {rounds}")
    print(f"  peak RSS     < 256 MB: {rss / 1e6:.0f} MB {'met' if rss < 256e6 else 'MISSED'}")
    return all(ratios[k] <= v for k, v in limits.items()) and rss < 256e6


if __name__ == "__main__":
    sys.exit(main())
