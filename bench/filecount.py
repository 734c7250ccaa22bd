"""How many chunk files a format-2 store keeps, and how big they are: a simulation.

    .venv/bin/python bench/filecount.py [--daily-percent 2] [--days 400] [--rebase 35]

Per 4 MiB chunk of a 16 GiB volume (scaled to 1 TiB), 96 incrementals a day: each writes
``--daily-percent``/96 of the 4 KiB blocks in mkvol.py's runs (1, 2, 8, 32 or 256 blocks
at random places); a touched chunk becomes a delta holding every 64 KiB block changed
since its base, or full again past ``--rebase`` percent of its blocks (the rules of
agent/store/deltas.py). At the end, the default retention keeps today's points, the last
of each of 7 days, 4 weeks and 12 months; the files kept are the chunk versions those
points need and the bases of the deltas among them. Stored bytes: 0.45 of the plaintext
(mkvol's mix at zstd level 3) plus 1.5 KiB of header a file. Prints files and bytes per
TiB protected, the mean file, and so the files in a full 2 TB store.
"""

from __future__ import annotations

import argparse
import bisect
import random

CHUNKS, BLOCKS, PER_DAY = 4096, 1024, 96
RUNS = [1, 2, 8, 32, 256]
RATIO, HEADER = 0.45, 1500
FULL = 64 * 65536 * RATIO + HEADER


def simulate(daily: float, days: int, rebase: int, seed: int = 5) -> list[list[tuple]]:
    """Per chunk, its versions: (incremental, stored bytes, base version or None)."""
    rng = random.Random(seed)
    per_inc = daily / 100 * CHUNKS * BLOCKS / PER_DAY
    versions: list[list[tuple]] = [[(0, FULL, None)] for _ in range(CHUNKS)]
    changed: list[set[int]] = [set() for _ in range(CHUNKS)]
    base = [0] * CHUNKS
    for inc in range(1, days * PER_DAY + 1):
        done, touched = 0, set()
        while done < per_inc:
            n = rng.choice(RUNS)
            start = rng.randrange(0, CHUNKS * BLOCKS - n)
            for b in range(start, start + n):
                c, w = divmod(b, BLOCKS)
                touched.add(c)
                changed[c].add(w // 16)
            done += n
        for c in touched:
            if len(changed[c]) * 100 > 64 * rebase:
                versions[c].append((inc, FULL, None))
                base[c], changed[c] = len(versions[c]) - 1, set()
            else:
                versions[c].append((inc, len(changed[c]) * 65536 * RATIO + HEADER, base[c]))
    return versions


def kept_points(end: int) -> set[int]:
    kept = set(range(end - PER_DAY + 1, end + 1))
    kept |= {end - PER_DAY * d for d in range(1, 8)}
    kept |= {end - PER_DAY * 7 * w for w in range(1, 5)}
    kept |= {end - PER_DAY * 30 * m for m in range(1, 13)}
    return {k for k in kept if k >= 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--daily-percent", type=float, default=2.0)
    ap.add_argument("--days", type=int, default=400)
    ap.add_argument("--rebase", type=int, default=35)
    args = ap.parse_args()
    versions = simulate(args.daily_percent, args.days, args.rebase)
    kept = kept_points(args.days * PER_DAY)
    files, size = 0, 0.0
    for chunk in versions:
        times = [v[0] for v in chunk]
        live = set()
        for t in kept:
            i = bisect.bisect_right(times, t) - 1
            live.add(i)
            if chunk[i][2] is not None:
                live.add(chunk[i][2])
        files += len(live)
        size += sum(chunk[i][1] for i in live)
    scale = (1 << 40) / (CHUNKS * (4 << 20))
    mean = size / files
    print(f"{args.daily_percent}% of blocks written a day, re-base at {args.rebase}%: per TiB "
          f"protected {files * scale / 1e6:.2f} M files, {size * scale / 1e12:.2f} TB stored; "
          f"mean file {mean / 1e3:.0f} KB; a full 2 TB store: {2e12 / mean / 1e6:.2f} M files")  # fmt: skip


if __name__ == "__main__":
    main()
