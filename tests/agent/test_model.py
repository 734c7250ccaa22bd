"""A model to compare with: the store's behaviour checked against a plain description of what
it must hold, so that sequences nobody thought of are tried too.

A Hypothesis state machine drives a real store on disk (format 2: 16 KiB chunks of 512-byte
blocks, stored full or as deltas of their changed blocks; gc grace 0) and a real volume
file through writes (random data at 4 KiB-aligned runs and at any byte offset and length,
straddling block and chunk boundaries; written zeros, punched holes, copies, resizes),
backups of two servers at a simulated clock (in process, and as a real
``python -m agent backup`` SIGKILLed at a chosen moment), retention policies, rollups
(also killed), gc (also killed), verify and restores. The model is the exact bytes each
point was given, its time and its tier (deltas re-base as their chunks keep changing
over many incrementals). After every step the store must list exactly
the model's points with unchanged records and the model's tiers; a killed backup's
point is in the model only if the reopened store lists it; a rollup keeps exactly what
``select_points`` says for the model's points, the newest always; after a gc exactly
the chunks of the model's points, and the bases their files say they are deltas of, are
on disk, every base is a full chunk and each point's index names the base of each of its
deltas; and every kept point restores (whole, or
any range) to the model's bytes, checked for all of them at the end of each run.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from agent.restore.reader import PointReader, restore_point
from agent.store.backup import backup_volume
from agent.store.datastore import Store, init_store
from agent.store.frames import DELTA, FULL, read_header
from agent.store.gc import collect_garbage
from agent.store.pointindex import make_point_id
from agent.store.retention import RetentionPolicy, select_points
from agent.store.rollup import rollup
from agent.store.verify import verify_points
from tests.agent.conftest import REPO, write_volume

pytestmark = pytest.mark.slow

CS = 16 << 10  # chunk size: a 256-512 KiB volume is 16-32 chunks
DELTA_BLOCK = 512  # the store's block: a chunk is 32 of them
BLOCK = 4096  # the volume's block: aligned writes are runs of them
SERVERS = ("srv1", "srv2")  # both back up the same volume: chunks shared across servers
VOLUME = "disk0"
SIZES = (256 << 10, 320 << 10, 384 << 10 | 1234, 512 << 10)  # one not a chunk multiple
T0 = datetime(2025, 12, 20, 9, 0, tzinfo=UTC)  # ISO week and year boundaries come soon
KINDS = ("random", "bytes", "zeros", "fill", "copy", "hole", "resize")
RECORD_FIELDS = (
    "id",
    "server",
    "volume",
    "taken_at",
    "size",
    "chunk_size",
    "stored_bytes",
    "chunks_total",
    "chunks_new",
    "chunks_reused",
    "chunks_zero",
)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2

write_op = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, (512 << 10) // BLOCK - 1),  # start block (wrapped to the size)
    st.integers(1, 8),  # blocks
    st.integers(0, 2**32 - 1),  # seed / fill byte / copy source block / new size
)
writes = st.lists(write_op, max_size=4)  # what the server wrote since the last backup
steps = st.integers(1, 6 * 60).map(lambda m: timedelta(minutes=m))  # between backups
backup_runs = st.lists(st.tuples(st.sampled_from(SERVERS), steps, writes), min_size=1, max_size=4)
advances = st.tuples(  # rollup's clock: minutes to weeks
    st.sampled_from([60, 3600, 86400, 7 * 86400]), st.integers(1, 8)
).map(lambda t: timedelta(seconds=t[0] * t[1]))
# Each kill starts a Python process (~60 ms to start, ~80 ms for a whole command on these
# volumes), so a few per example (later kill steps do nothing). The moment: 0-300 ms after
# the start, or 0-30 ms after the process took its lock, where its work is (on any
# machine, however slowly Python starts there).
MAX_KILLS = 4
kill_moments = st.one_of(
    st.tuples(st.just("after start"), st.integers(0, 300)),
    st.tuples(st.just("after lock"), st.integers(0, 30)),
)
policies = st.builds(
    RetentionPolicy,
    intraday=st.one_of(st.none(), st.integers(0, 3)),
    daily=st.integers(0, 3),
    weekly=st.integers(0, 2),
    monthly=st.integers(0, 2),
    yearly=st.integers(0, 1),
)


def punch_hole(fd: int, offset: int, length: int) -> bool:
    return _libc.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, offset, length) == 0


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CS] for i in range(0, len(data), CS)]


def is_zero(chunk: bytes) -> bool:
    return chunk.count(0) == len(chunk)


def start_agent(root: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("BDR_STORE", "BDR_KEY_FILE")}
    env["BDR_GC_GRACE"] = "0"
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "--store", str(root), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def recorded(f):
    """Run a rule or invariant unless an earlier one failed; keep its failure for teardown.

    Whether a killed process got to its commit depends on timing, so a bug may show one
    step earlier or later when Hypothesis replays the same choices. A failure raised at
    once would end the run after a different number of choices, which Hypothesis takes
    for a nondeterministic strategy; raised in teardown, every run makes all its choices
    and a timing-dependent failure is reported as flaky, with its own traceback. For the
    same reason no rule has a precondition.
    """

    @functools.wraps(f)
    def run(self, *args, **kwargs):
        if self.failure is not None:
            return
        try:
            f(self, *args, **kwargs)
        except Exception as exc:
            exc.add_note(f"first failure: in {f.__name__}")
            self.failure = exc

    return run


class StoreModel(RuleBasedStateMachine):
    """The store against a dict of point id -> (bytes, time, tier)."""

    def __init__(self):
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="bdr-model-"))
        self.root = self.tmp / "store"
        self.store = init_store(
            self.root, self.tmp / "storage.key", chunk_size=CS, gc_grace=0, block_size=DELTA_BLOCK
        )
        self.vol_path = self.tmp / "disk0.img"
        self.volume = bytearray()
        self.now = T0
        # The model: what a correct store holds.
        self.data: dict[str, bytes] = {}
        self.taken: dict[str, datetime] = {}
        self.tier: dict[str, str] = {}
        self.records: dict[str, dict] = {}  # each point's record as first seen
        self.policy = {server: RetentionPolicy() for server in SERVERS}
        self.leftovers = False  # a killed process may have left work for gc
        self.kills = 0
        self.failure: Exception | None = None

    # -- helpers -------------------------------------------------------------------------

    def server_points(self, server: str) -> list[str]:
        return sorted(pid for pid in self.data if pid.startswith(server + "/"))

    def chunk_files(self) -> dict[bytes, int]:
        """Chunk files on disk (not temp files) -> size."""
        found = {}
        for sub in (self.root / "chunks").iterdir():
            for entry in os.scandir(sub):
                if not entry.name.startswith("."):
                    found[bytes.fromhex(entry.name)] = entry.stat().st_size
        return found

    def temp_files(self) -> list[str]:
        return [p.name for p in (self.root / "chunks").glob("*/.tmp.*")]

    def chunk_ids(self) -> set[bytes]:
        """Ids of every non-zero chunk of every model point."""
        identify = self.store.identify
        return {
            identify(c)[0] for data in self.data.values() for c in chunks_of(data) if not is_zero(c)
        }

    def base_of(self, chunk_id: bytes) -> bytes | None:
        """The base a chunk's file says it is a delta of (None: full, or no file); a
        base must be a full chunk: reads never go two levels deep."""
        try:
            hdr = read_header(self.store.chunks.path(chunk_id), self.store.key, chunk_id)
        except FileNotFoundError:
            return None
        if hdr.kind != DELTA:
            return None
        base = read_header(self.store.chunks.path(hdr.base), self.store.key, hdr.base)
        assert base.kind == FULL, f"chunk {chunk_id.hex()} is a delta of a delta"
        return hdr.base

    def needed_chunks(self) -> set[bytes]:
        """What gc must keep: the model's chunks, and the bases of the deltas among them."""
        ids = self.chunk_ids()
        return ids | {b for b in map(self.base_of, ids) if b is not None}

    def check_bases(self) -> None:
        """Each point's index names, for every delta it holds, that delta's base (what
        gc marks and replication copies comes from indexes alone)."""
        for record in self.store.list_points():
            index = self.store.load_index(record)
            for i, chunk_id in enumerate(index.ids):
                base = self.base_of(chunk_id) if any(chunk_id) else None
                if base is not None:
                    assert index.bases[i] == base, f"{record.id}: chunk {i}'s base is not named"

    def add_point(self, point_id: str, data: bytes, when: datetime, before: set[bytes]):
        """A point was committed: check its record against the bytes it was given."""
        record = self.store.get_point(point_id)
        chunks = chunks_of(data)
        ids = [None if is_zero(c) else self.store.identify(c)[0] for c in chunks]
        assert record.id == make_point_id(record.server, VOLUME, when)
        assert record.volume == VOLUME and record.tier == "intraday"
        assert record.taken_at_dt == when
        assert record.size == len(data) and record.chunk_size == CS
        assert record.chunks_total == len(chunks)
        assert record.chunks_zero == ids.count(None)
        # Dedup: a chunk already on disk is reused, any other chunk is new (one that
        # occurs twice in the volume may be stored twice: both copies count then).
        new = [i for i in ids if i is not None and i not in before]
        assert record.chunks_new in (len(new), len(set(new))), (
            f"{point_id}: {record.chunks_new} chunks stored as new, but {len(new)} of its "
            "chunks were not on disk before the backup"
        )
        assert record.chunks_reused == len(chunks) - record.chunks_new - ids.count(None)
        files = self.chunk_files()
        assert all(i in files for i in ids if i is not None), "a chunk of a new point is missing"
        counted = new if record.chunks_new == len(new) else set(new)
        assert record.stored_bytes == sum(files[i] for i in counted)
        self.data[point_id] = data
        self.taken[point_id] = when
        self.tier[point_id] = "intraday"
        self.records[point_id] = {f: getattr(record, f) for f in RECORD_FIELDS}

    def apply_rollup(self, server: str, now: datetime) -> tuple[set[str], dict[str, str]]:
        old = self.server_points(server)
        keep = select_points([(p, self.taken[p]) for p in old], self.policy[server], now)
        assert set(keep) <= set(old)
        if old:
            assert max(old, key=lambda p: self.taken[p]) in keep, "the newest point must stay"
        return set(old), keep

    def commit_rollup(self, server: str, keep: dict[str, str]) -> None:
        for pid in self.server_points(server):
            if pid in keep:
                self.tier[pid] = keep[pid]
            else:
                for table in (self.data, self.taken, self.tier, self.records):
                    del table[pid]

    def check_gc_result(self) -> None:
        """After a gc (grace 0, nothing running): exactly the needed chunks are on disk."""
        on_disk = set(self.chunk_files())
        needed = self.needed_chunks()
        assert not needed - on_disk, f"gc deleted {len(needed - on_disk)} needed chunk(s)"
        assert on_disk == needed, f"gc left {len(on_disk - needed)} unneeded chunk(s)"
        assert not self.temp_files(), self.temp_files()
        self.check_bases()
        self.leftovers = False

    def holds_a_lock(self, pid: int) -> bool:
        for path in (self.root / "locks").glob("*.lock"):
            try:
                if json.loads(path.read_bytes()).get("pid") == pid:
                    return True
            except (OSError, ValueError):
                continue  # gone, or half written
        return False

    def kill_after(self, proc: subprocess.Popen, moment: tuple[str, int]) -> tuple[int, str]:
        """SIGKILL ``proc`` at ``moment`` (unless it finished), then reopen the store."""
        since, delay_ms = moment
        if since == "after lock":
            deadline = time.monotonic() + 10
            while proc.poll() is None and not self.holds_a_lock(proc.pid):
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.communicate()
                    raise AssertionError("the agent took no lock in 10 s")
                time.sleep(0.0005)
        time.sleep(delay_ms / 1000)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        rc = proc.returncode
        assert rc in (0, -signal.SIGKILL), f"agent failed on its own (exit {rc}): {err.decode()}"
        self.kills += 1
        self.leftovers = True
        self.store = Store.open(self.root)
        return rc, err.decode()

    def restore_and_compare(self, point_id: str) -> None:
        out = self.tmp / "restored.img"
        restore_point(self.store, point_id, out)
        got = out.read_bytes()
        want = self.data[point_id]
        assert len(got) == len(want), f"{point_id} restores {len(got)} bytes, not {len(want)}"
        if got != want:
            first = next(i for i in range(len(want)) if got[i] != want[i])
            raise AssertionError(f"{point_id} restores different bytes from offset {first}")
        out.unlink()

    def apply_writes(self, ops) -> None:
        """Write to the volume file and to the model's copy of it alike."""
        with open(self.vol_path, "r+b") as f:
            for kind, block, blocks, seed in ops:
                size = len(self.volume)
                if kind == "resize":  # growing leaves a hole at the end
                    size = SIZES[seed % len(SIZES)]
                    f.truncate(size)
                    del self.volume[size:]
                    self.volume.extend(bytes(size - len(self.volume)))
                    continue
                off = block % (size // BLOCK) * BLOCK
                n = min(blocks * BLOCK, size - off)
                if kind == "bytes":  # any offset and length: across blocks and chunks
                    off = (off + seed % BLOCK) % size
                    n = min(blocks * 5000 + seed % 997, size - off)
                    data = random.Random(seed).randbytes(n)
                elif kind == "random":
                    data = random.Random(seed).randbytes(n)
                elif kind == "zeros":
                    data = bytes(n)  # written zeros, not a hole
                elif kind == "fill":
                    data = bytes([seed % 255 + 1]) * n
                elif kind == "copy":  # duplicate another region (dedup inside a volume)
                    src = seed % (size // BLOCK) * BLOCK
                    data = bytes(self.volume[src : src + n]).ljust(n, b"\0")
                else:  # hole: punch one (read as zeros); write zeros where unsupported
                    data = bytes(n)
                    f.flush()
                    if punch_hole(f.fileno(), off, n):
                        self.volume[off : off + n] = data
                        continue
                f.seek(off)
                f.write(data)
                self.volume[off : off + n] = data

    def backup_now(self, server: str) -> None:
        data = self.vol_path.read_bytes()
        assert data == self.volume, "the test's own volume model is wrong"
        before = set(self.chunk_files())
        prev = self.store.load_catalog(server).latest(VOLUME)
        record = backup_volume(self.store, server, self.vol_path, taken_at=self.now)
        self.add_point(record.id, data, self.now, before)
        self.note_deltas(record, prev)

    def note_deltas(self, record, prev) -> None:
        """Tell Hypothesis's statistics whether deltas were made, and re-based."""
        index = self.store.load_index(record)
        deltas = sum(1 for b in index.bases if any(b))
        event(f"backup: {'some' if deltas else 'no'} chunks stored as deltas")
        if prev is None:
            return
        old = self.store.load_index(prev)
        old_ids = set(old.ids)
        rebased = any(
            any(old.bases[i]) and not any(index.bases[i]) and index.ids[i] not in old_ids
            for i in range(min(len(old.ids), len(index.ids)))
        )
        if rebased:
            event("backup: a delta's chunk changed so much it was stored full (re-based)")

    # -- rules ---------------------------------------------------------------------------

    @initialize(size=st.sampled_from(SIZES), seed=st.integers(0, 2**16))
    @recorded
    def first_backup(self, size, seed):
        """A volume (~30% holes, text, random regions) and its base point on srv1."""
        write_volume(self.vol_path, size, seed)
        self.volume = bytearray(self.vol_path.read_bytes())
        self.backup_now("srv1")

    @rule(runs=backup_runs)
    @recorded
    def backup(self, runs):
        """A few backups in a row, each after some writes (a day of a server's life)."""
        for server, step, ops in runs:
            self.apply_writes(ops)
            self.now += step
            self.backup_now(server)

    @rule(server=st.sampled_from(SERVERS), step=steps, ops=writes, ms=st.integers(0, 300))
    @recorded
    def backup_killed(self, server, step, ops, ms):
        """A real ``bdr-agent backup`` SIGKILLed ``ms`` after it started."""
        self.kill_backup(server, step, ops, ("after start", ms))

    @rule(server=st.sampled_from(SERVERS), step=steps, ops=writes, ms=st.integers(0, 30))
    @recorded
    def backup_killed_at_work(self, server, step, ops, ms):
        """A real ``bdr-agent backup`` SIGKILLed ``ms`` after it took the server's lock."""
        self.kill_backup(server, step, ops, ("after lock", ms))

    def kill_backup(self, server, step, ops, moment) -> None:
        """Kill a backup at ``moment``, reopen the store: its point is there, whole, or
        not at all."""
        self.apply_writes(ops)
        if self.kills >= MAX_KILLS:
            return
        data = self.vol_path.read_bytes()
        assert data == self.volume, "the test's own volume model is wrong"
        when = self.now + step
        point_id = make_point_id(server, VOLUME, when)
        before = set(self.chunk_files())
        temps = set(self.temp_files())
        proc = start_agent(
            self.root, "backup", server, str(self.vol_path), "--at", when.isoformat()
        )
        rc, _ = self.kill_after(proc, moment)
        listed = {p.id for p in self.store.list_points(server)}
        if rc == 0:
            assert point_id in listed, "a backup that exited 0 committed nothing"
        if point_id in listed:  # committed before the kill: a whole point
            self.now = when
            self.add_point(point_id, data, when, before)
            event("killed backup: committed")
        else:  # nothing happened; the same time may be used again
            idx = self.root / "servers" / server / "points" / VOLUME / f"{point_id[-16:]}.idx"
            left = set(self.temp_files()) - temps or set(self.chunk_files()) - before
            left = left or idx.exists()
            event(f"killed backup: not committed, {'left files' if left else 'no files yet'}")

    @rule(server=st.sampled_from(SERVERS), policy=policies)
    @recorded
    def set_policy(self, server, policy):
        self.store.save_policy(server, policy)
        self.policy[server] = policy

    @rule(advance=advances)
    @recorded
    def advance_and_rollup(self, advance):
        self.now += advance
        result = rollup(self.store, self.now)
        for server in SERVERS:
            old, keep = self.apply_rollup(server, self.now)
            done = next((s for s in result["servers"] if s["server"] == server), None)
            if old:
                assert done is not None and set(done["kept"]) == set(keep), (done, keep)
                assert set(done["removed"]) == old - set(keep)
            self.commit_rollup(server, keep)
            # dropped indexes are deleted, crash leftovers too
            idx = self.root / "servers" / server / "points" / VOLUME
            on_disk = {p.name for p in idx.glob("*")} if idx.is_dir() else set()
            kept = {f"{p.rsplit('/', 1)[1]}.idx" for p in self.server_points(server)}
            assert on_disk == kept, f"{server}: index files {on_disk} for points {kept}"
        self.check_gc_result()  # rollup ran gc

    @rule(advance=advances, moment=kill_moments)
    @recorded
    def rollup_killed(self, advance, moment):
        """A real ``bdr-agent rollup`` killed with SIGKILL: each catalog old or new."""
        if self.kills >= MAX_KILLS:
            return
        self.now += advance
        rc, _ = self.kill_after(
            start_agent(self.root, "rollup", "--now", self.now.isoformat()), moment
        )
        for server in SERVERS:
            old, keep = self.apply_rollup(server, self.now)
            listed = {p.id: p.tier for p in self.store.list_points(server)}
            old_tiers = {p: self.tier[p] for p in old}
            if listed == keep:
                self.commit_rollup(server, keep)
                event("killed rollup: catalog rolled up")
            else:
                assert rc != 0, "rollup exited 0 without rolling up"
                assert listed == old_tiers, f"{server}: neither the old nor the new catalog"
                event("killed rollup: catalog not rolled up")

    @rule()
    @recorded
    def gc(self):
        collect_garbage(self.store)
        self.check_gc_result()

    @rule(moment=kill_moments)
    @recorded
    def gc_killed(self, moment):
        if not self.leftovers or self.kills >= MAX_KILLS:
            return
        self.kill_after(start_agent(self.root, "gc"), moment)
        assert self.needed_chunks() <= set(self.chunk_files()), "a killed gc lost a chunk"

    @rule()
    @recorded
    def verify(self):
        report = verify_points(self.store)
        assert report.ok, report.to_json()
        assert report.points_checked == len(self.data)
        assert report.chunks_checked == len(self.needed_chunks())
        assert not self.store.chunks.damaged_ids()

    @rule(
        pick=st.integers(0, 63),
        whole=st.booleans(),
        offset=st.integers(0, 600 << 10),
        n=st.integers(0, 80 << 10),
    )
    @recorded
    def restore(self, pick, whole, offset, n):
        """Restore a kept point (or read a range of it) and compare with the model."""
        points = sorted(self.data)
        if not points:
            return
        point_id = points[pick % len(points)]
        if whole:
            self.restore_and_compare(point_id)
            return
        want = self.data[point_id]
        with PointReader(self.store, point_id, cache_chunks=2) as reader:
            assert reader.size == len(want)
            got = reader.read(offset, n)
            assert got == want[offset : offset + n], f"{point_id}: bytes {offset}+{n} differ"

    # -- invariants (cheap: catalogs only) -----------------------------------------------

    @invariant()
    @recorded
    def lists_exactly_the_model(self):
        listed = self.store.list_points()
        ids = [p.id for p in listed]
        assert len(ids) == len(set(ids))
        assert set(ids) <= set(self.data), "a point the model never committed is listed"
        assert set(ids) == set(self.data), "a committed point is gone"
        for p in listed:
            record = {f: getattr(p, f) for f in RECORD_FIELDS}
            assert record == self.records[p.id], f"{p.id}: its record changed"
            assert p.tier == self.tier[p.id], f"{p.id}: tier {p.tier}, not {self.tier[p.id]}"
            assert p.server == p.id.split("/")[0]
            assert p.chunks_new + p.chunks_reused + p.chunks_zero == p.chunks_total

    def teardown(self):
        """Raise the first failure; else every kept point restores to the model's bytes,
        before and after a last gc."""
        try:
            if self.failure is not None:
                raise self.failure
            if sys.exc_info()[1] is None:  # not while Hypothesis aborts a run
                self.store = Store.open(self.root)
                for point_id in sorted(self.data):
                    self.restore_and_compare(point_id)
                assert verify_points(self.store).ok
                collect_garbage(self.store)
                self.check_gc_result()
                for point_id in sorted(self.data):  # still whole after a final gc
                    self.restore_and_compare(point_id)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


StoreModel.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    database=None,
    # no explain phase: its line tracing slows every replay of a failure (and a failure
    # that depends on timing gets replayed a lot while shrinking)
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
TestStoreModel = StoreModel.TestCase
