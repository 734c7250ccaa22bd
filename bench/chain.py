"""Long chains: 96 scattered incrementals, then the first and the newest point compared.

    .venv/bin/python bench/chain.py [--size-mib 2048] [--incrementals 96] [--percent 2]
                                    [--rounds 3] [--workdir DIR] [--keep] [--agent-format 2]

mkvol.py makes raw data with no filesystem, and ``bdr-agent cat`` needs one: so the
volume is an ext4 filesystem made the way the agent's tests make theirs (``mke2fs -d``
over a tree) holding one big file, ``/big.bin``, made by ``mkvol.py create`` (its mix of
holes, text and random data), three quarters of the volume. Each incremental first
changes ``--percent`` of the big file's 4 KiB blocks the way ``mkvol.py mutate`` does
(runs of 1, 2, 8, 32 or 256 blocks, half random bytes, half mkvol's text), written in
place at the blocks' places in the image (found with ``debugfs blocks``), so the
filesystem stays consistent; then backs the volume up.

Then, best of ``--rounds`` with the store read once before each (warm, like
bench/engine.py): the restore of the first point after the base and of the newest, each
compared byte for byte with the image it was taken from, and ``bdr-agent cat`` of the
big file from each (to /dev/null). Targets (issue 13): the newest restores in <= 1.2x the
first's time and cats at >= 0.9x its speed. Also prints the bytes each incremental added
(first, median, last), the share of the newest point's chunks stored as deltas, and peak
RSS. Exits 1 when a target is missed or a restore differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from engine import MKVOL, VENV_BIN, run, same_bytes, settle

BLOCK = 4096
RUNS = [1, 2, 8, 32, 256]  # mkvol.py mutate's run lengths, in 4 KiB blocks


def load_mkvol():
    spec = importlib.util.spec_from_file_location("mkvol", MKVOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def agent(store: Path, *args: str) -> list[str]:
    exe = shutil.which("bdr-agent", path=str(VENV_BIN)) or "bdr-agent"
    return [exe, "--store", str(store), *args]


def build_volume(work: Path, size_mib: int) -> tuple[Path, list[int]]:
    """An ext4 image holding /big.bin; returns it and the big file's physical blocks."""
    tree = work / "tree"
    tree.mkdir()
    big_mib = size_mib * 3 // 4
    subprocess.run(
        [sys.executable, str(MKVOL), "create", str(tree / "big.bin"), str(big_mib), "--seed", "3"],
        check=True,
    )
    image = work / "volume.img"
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-b", str(BLOCK), "-d", str(tree), str(image),
         f"{size_mib}M"], check=True,
    )  # fmt: skip
    shutil.rmtree(tree)
    return image, _file_blocks(image)


def _file_blocks(image: Path) -> list[int]:
    out = subprocess.run(["debugfs", "-R", "blocks /big.bin", str(image)],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return [int(b) for b in out.split()]


def mutate(image: Path, blocks: list[int], percent: float, rng: random.Random, mkvol) -> None:
    """mkvol.py mutate's runs over the big file's allocated blocks, written in place."""
    target = int(len(blocks) * percent / 100)
    done = 0
    with open(image, "r+b") as f:
        while done < target:
            n = min(rng.choice(RUNS), target - done)
            start = rng.randrange(0, len(blocks) - n)
            text = rng.random() >= 0.5
            data = mkvol.text_block(rng, n * BLOCK) if text else rng.randbytes(n * BLOCK)
            for k in range(n):
                f.seek(blocks[start + k] * BLOCK)
                f.write(data[k * BLOCK : (k + 1) * BLOCK])
            done += n


def points(store: Path) -> list[dict]:
    out = subprocess.run(agent(store, "points", "--json"), check=True, capture_output=True)
    return json.loads(out.stdout)


def make_chain(args, work: Path, store: Path, image: Path, blocks: list[int]) -> Path:
    """Base and incrementals; returns a copy of the image the first incremental saw."""
    run(agent(store, "init", "--key-file", str(work / "key"), "--format", str(args.agent_format)))
    mkvol, rng = load_mkvol(), random.Random(7)
    first = work / "first.img"
    times = []
    for n in range(args.incrementals + 1):
        if n:
            mutate(image, blocks, args.percent, rng, mkvol)
        settle(image)
        seconds, _ = run(agent(store, "backup", "chain", str(image)))
        times.append(seconds)
        if n == 1:
            subprocess.run(["cp", "--sparse=always", str(image), str(first)], check=True)
        if n % 16 == 0:
            print(f"  {n} incrementals, last took {seconds:.2f} s", flush=True)
    added = [p["stored_bytes"] for p in points(store)[1:]]
    print(f"base {times[0]:.2f} s; incrementals {min(times[1:]):.2f}-{max(times[1:]):.2f} s; "
          f"added per incremental: first {added[0] / 1e6:.1f} MB, median "
          f"{statistics.median(added) / 1e6:.1f} MB, last {added[-1] / 1e6:.1f} MB; "
          f"store {sum(f.stat().st_size for f in store.rglob('*') if f.is_file()) / 1e9:.2f} GB")  # fmt: skip
    return first


def measure(store: Path, work: Path, point: str, image: Path) -> dict:
    """One restore (checked) and one cat of /big.bin from ``point``."""
    settle(store)
    dest = work / "restored.img"
    restore_s, restore_rss = run(agent(store, "restore", point, str(dest)))
    identical = same_bytes(dest, image)
    dest.unlink()
    settle(store)
    cat_s, cat_rss = run(
        ["sh", "-c", " ".join(agent(store, "cat", point, "/big.bin")) + " >/dev/null"]
    )
    return {"restore": restore_s, "cat": cat_s, "rss": max(restore_rss, cat_rss), "ok": identical}


def delta_share(store: Path, point: str) -> float:
    code = (
        "import sys; from agent.store.datastore import Store; s = Store.open(sys.argv[1]);"
        "i = s.load_index(s.get_point(sys.argv[2])); d = [c for c in i.ids if any(c)];"
        "print(sum(1 for b in i.bases if any(b)) / max(1, len(d)))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(store), point], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    return float(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--incrementals", type=int, default=96)
    ap.add_argument("--percent", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--agent-format", type=int, choices=(1, 2), default=2)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--measure-only", action="store_true", help="reuse --workdir's chain")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bdr-chain-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work dir {work}", flush=True)
    store = work / "store"
    if args.measure_only:
        image, first_image = work / "volume.img", work / "first.img"
        blocks = _file_blocks(image)
    else:
        image, blocks = build_volume(work, args.size_mib)
        first_image = make_chain(args, work, store, image, blocks)
    listed = points(store)
    first, newest = listed[1]["id"], listed[-1]["id"]
    big = len(blocks) * BLOCK
    results: dict[str, list[dict]] = {first: [], newest: []}
    for n in range(args.rounds):
        for point in [first, newest] if n % 2 == 0 else [newest, first]:
            image_of = first_image if point == first else image
            results[point].append(measure(store, work, point, image_of))
    met = report(results, first, newest, big, delta_share(store, newest))
    if not args.keep:
        shutil.rmtree(work)
    return 0 if met else 1


def report(results: dict, first: str, newest: str, big: int, share: float) -> bool:
    print(f"\nfirst point after the base: {first}; newest: {newest} "
          f"({share:.0%} of its data chunks are deltas)")  # fmt: skip
    for name, point in (("first", first), ("newest", newest)):
        rows = results[point]
        restores = " ".join(f"{r['restore']:.2f}" for r in rows)
        cats = " ".join(f"{big / r['cat'] / 1e6:.0f}" for r in rows)
        rss = max(r["rss"] for r in rows) / 1e6
        print(f"  {name:7} restore s: {restores}; cat MB/s: {cats}; peak RSS {rss:.0f} MB;"
              f" identical: {all(r['ok'] for r in rows)}")  # fmt: skip
    best = {p: (min(r["restore"] for r in results[p]), min(r["cat"] for r in results[p]))
            for p in results}  # fmt: skip
    restore_ratio = best[newest][0] / best[first][0]
    cat_speed = best[first][1] / best[newest][1]
    ok_restore, ok_cat = restore_ratio <= 1.2, cat_speed >= 0.9
    print(f"targets: newest restore <= 1.2x first's: {restore_ratio:.2f}x "
          f"{'met' if ok_restore else 'MISSED'}; newest cat >= 0.9x first's speed: "
          f"{cat_speed:.2f}x {'met' if ok_cat else 'MISSED'}")  # fmt: skip
    identical = all(r["ok"] for rows in results.values() for r in rows)
    rss = max(r["rss"] for rows in results.values() for r in rows)
    print(f"  peak RSS < 256 MB: {rss / 1e6:.0f} MB {'met' if rss < 256e6 else 'MISSED'}")
    return ok_restore and ok_cat and identical and rss < 256e6


if __name__ == "__main__":
    sys.exit(main())
