"""``vault verify``: every blob against the digest recorded when it was stored, without keys.

A blob whose bytes no longer hash to their digest (bit rot, a truncated or zeroed file)
is recorded in ``damaged/`` and moved to ``quarantine/``, so the vault no longer holds it:
the next replication from a good copy (the appliance, or the other vault) stores it again.
Every point that references a damaged or missing blob is marked not whole (and named in
the report); senders see it as not committed and send what it lacks, and its commit
clears the mark.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from agent.errors import DamageFound
from agent.store.progress import Progress
from agent.vault.backend import sha256
from agent.vault.store import VaultStore


def _check_blob(vault: VaultStore, app: str, blob_id: bytes) -> str | None:
    try:
        data, digest = vault.backend.get_blob(app, blob_id)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if digest is None:
        return "its header is damaged"
    if sha256(data) != digest:
        return "bytes do not match the digest recorded at upload"
    return None


def verify_vault(
    vault: VaultStore, apps: list[str] | None = None, progress: Progress | None = None
) -> dict:
    """Check every blob and point of ``apps`` (default all); the report names damage."""
    progress = progress or Progress()
    report = {
        "vault": vault.name,
        "blobs_checked": 0,
        "bytes_checked": 0,
        "damaged_blobs": [],
        "damaged_points": [],
    }
    for app in apps or vault.appliances():
        _verify_app(vault, app, report, progress)
    report["ok"] = not report["damaged_blobs"] and not report["damaged_points"]
    return report


def _verify_app(vault: VaultStore, app: str, report: dict, progress: Progress) -> None:
    sizes = dict(vault.backend.iter_blobs(app))
    progress.start(f"verify {app}", sum(sizes.values()))

    def check(blob_id: bytes) -> tuple[bytes, str | None]:
        reason = _check_blob(vault, app, blob_id)
        progress.advance(sizes[blob_id])
        return blob_id, reason

    workers = max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(workers, thread_name_prefix="bdr-vault-verify") as pool:
        bad = {bid: reason for bid, reason in pool.map(check, list(sizes)) if reason}
    progress.finish()
    report["blobs_checked"] += len(sizes)
    report["bytes_checked"] += sum(sizes.values())
    for blob_id, reason in bad.items():
        vault.mark_damaged(app, blob_id, reason)
    users: dict[bytes, list[str]] = {bid: [] for bid in bad}
    for record in vault.points(app):
        problems = _point_problems(vault, app, record, sizes, bad, users)
        vault.mark_point(app, record["point"], problems or None)
        if problems:
            report["damaged_points"].append(
                {"appliance": app, "point": record["point"], "problems": problems}
            )
    for blob_id, reason in bad.items():
        report["damaged_blobs"].append(
            {
                "appliance": app,
                "blob": blob_id.hex(),
                "reason": reason,
                "points": sorted(users[blob_id]),
            }
        )


def _point_problems(vault, app, record, sizes, bad, users) -> list[str]:
    try:
        ids = vault.point_blob_ids(app, record)
    except DamageFound as exc:
        return [str(exc)]
    needed = [*ids, bytes.fromhex(record["index"]), bytes.fromhex(record["catalog"])]
    problems = []
    for blob_id in needed:
        if blob_id in bad:
            users[blob_id].append(record["point"])
            problems.append(f"blob {blob_id.hex()}: {bad[blob_id]}")
        elif blob_id not in sizes:
            problems.append(f"blob {blob_id.hex()}: missing")
    return problems
