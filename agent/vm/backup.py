"""Backups of a server while its VM runs: the VM's disk becomes the backup's source.

So the chain goes on and the writes made in the VM are kept for when the real server comes
back. A consistent read of the running drive is qemu's image fleecing: a temporary qcow2
node backed by the VM's disk, a ``blockdev-backup sync=none`` job that copies every block
the guest overwrites into it first, and qemu's own NBD server exporting that node. The
export is a frozen picture of the disk at one instant while the guest keeps running.

It is copied (sparse: zeros and holes are not written) to a temporary raw image beside the
overlay, backed up as the server's volume, and deleted. The temporary copy is the price of
``backup_volume`` reading files; the guest never pauses.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from agent.errors import AgentError, UsageError
from agent.restore.export import convert_image
from agent.store.backup import backup_volume
from agent.store.catalog import PointRecord
from agent.store.datastore import Store
from agent.store.progress import Progress
from agent.vm.machines import read_vm, sockets, vm_dir
from agent.vm.qmp import Qmp, QmpError


def backup_from_vm(store_root: Path, vm_id: str, *, taken_at=None, progress=None) -> PointRecord:
    """A new recovery point of the VM's server and volume, read from the running VM's disk."""
    store_root = Path(store_root)
    vm = read_vm(store_root, vm_id)
    if vm["state"] != "running":
        raise UsageError(f"VM {vm_id} is {vm['state']}, not running")
    directory = vm_dir(store_root, vm_id)
    fleece = directory / "fleece.qcow2"
    export = sockets(directory) / "export.sock"
    image = directory / "backup-source.raw"
    fleece.unlink(missing_ok=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(fleece), str(vm["size"])],
        check=True,
        capture_output=True,
    )
    try:
        with Qmp(sockets(directory) / "qmp.sock") as q:
            _export_fleece(q, fleece, export)
        progress = progress or Progress()
        progress.start("reading the VM's disk", vm["size"])
        convert_image(f"nbd+unix:///disk0?socket={export}", image, "raw", vm["size"], progress)
        return backup_volume(
            Store.open(store_root),
            vm["server"],
            str(image),
            vm["volume"],
            taken_at,
            progress=progress,
        )
    except QmpError as exc:
        raise AgentError(f"could not take a consistent read of VM {vm_id}'s disk: {exc}") from None
    except subprocess.CalledProcessError as exc:
        raise AgentError(
            f"reading VM {vm_id}'s disk failed: {exc.stderr.decode().strip()}"
        ) from None
    finally:
        image.unlink(missing_ok=True)
        try:
            with Qmp(sockets(directory) / "qmp.sock") as q:
                _teardown(q, quiet=True)
        except QmpError:
            pass  # qemu is gone; so is everything it held
        fleece.unlink(missing_ok=True)
        export.unlink(missing_ok=True)


def _export_fleece(q: Qmp, fleece: Path, export: Path) -> None:
    """Freeze a view of disk0 (copy-before-write into ``fleece``) and serve it over NBD."""
    _teardown(q, quiet=True)  # leftovers of a backup that was killed
    q.execute("blockdev-add", driver="qcow2", **{"node-name": "fleece"},
              file={"driver": "file", "filename": str(fleece)}, backing="disk0")  # fmt: skip
    q.execute("blockdev-backup", device="disk0", target="fleece", sync="none",
              **{"job-id": "fleece"})  # fmt: skip
    q.execute("nbd-server-start", addr={"type": "unix", "data": {"path": str(export)}})
    q.execute("block-export-add", type="nbd", id="fleece-export", **{"node-name": "fleece"},
              name="disk0", writable=False)  # fmt: skip


def _teardown(q: Qmp, quiet: bool) -> None:
    steps = [
        ("block-export-del", {"id": "fleece-export", "mode": "hard"}),
        ("nbd-server-stop", {}),
        ("block-job-cancel", {"device": "fleece", "force": True}),
    ]
    for command, args in steps:
        try:
            q.execute(command, **args)
        except QmpError:
            if not quiet:
                raise
    for _ in range(100):  # the job and export must be gone before their node can be deleted
        jobs_left = any(j.get("device") == "fleece" for j in q.execute("query-block-jobs"))
        if not jobs_left and not q.execute("query-block-exports"):
            break
        time.sleep(0.05)
    try:
        q.execute("blockdev-del", **{"node-name": "fleece"})
    except QmpError:
        if not quiet:
            raise
