"""Disk images with real filesystems, made with the real tools, for the file-restore tests.

``make_disk(path, [(kind, files), ...], table)`` builds each partition with mke2fs -d,
mkfs.vfat + mcopy, mkntfs + ntfs-3g, or mkfs.exfat + exfat-fuse on a loop device, then
writes an MBR or GPT table with sfdisk and splices the partitions in (sparsely).
``files`` maps absolute paths to bytes (a path ending in "/" is an empty folder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MIB = 1 << 20
START = 1 * MIB  # first partition at 1 MiB, as every partitioner does
SIZES = {"ext4": 24, "ext2": 16, "fat32": 40, "ntfs": 24, "exfat": 16}
MBR_TYPES = {"ext4": "83", "ext2": "83", "fat32": "c", "ntfs": "7", "exfat": "7"}
LINUX_GUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
BASIC_DATA_GUID = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


def run(*cmd: str, **kw) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60, **kw)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path.lstrip("/")
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _copy_into_mount(files: dict[str, bytes], mountpoint: Path) -> None:
    write_tree(mountpoint, files)
    os.sync()


def make_partition(path: Path, kind: str, files: dict[str, bytes]) -> Path:
    """One filesystem image file of ``kind`` holding ``files``."""
    size = SIZES[kind] * MIB
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="bdr-fs-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        if kind in ("ext4", "ext2"):
            write_tree(tree, files)
            run("mke2fs", "-q", "-F", "-t", kind, "-d", str(tree), str(path), f"{size >> 10}k")
        elif kind == "fat32":
            run("mkfs.vfat", "-F", "32", "-S", "512", "-s", "1", "-C", str(path), str(size >> 10))
            write_tree(tree, files)
            for top in sorted(tree.iterdir()):
                run("mcopy", "-s", "-m", "-i", str(path), str(top), "::/")
        elif kind == "ntfs":
            path.write_bytes(b"")
            os.truncate(path, size)
            run("mkntfs", "-q", "-F", "-Q", "-s", "512", str(path))
            _with_mount(["ntfs-3g", str(path)], Path(tmp) / "m", files)
        elif kind == "exfat":
            path.write_bytes(b"")
            os.truncate(path, size)
            run("mkfs.exfat", str(path))
            loop = subprocess.run(
                ["losetup", "-f", "--show", str(path)], capture_output=True, text=True, check=True
            ).stdout.strip()
            try:
                _with_mount(["mount.exfat-fuse", loop], Path(tmp) / "m", files)
            finally:
                subprocess.run(["losetup", "-d", loop], check=False)
        else:
            raise ValueError(kind)
    return path


def _with_mount(mount_cmd: list[str], mountpoint: Path, files: dict[str, bytes]) -> None:
    mountpoint.mkdir()
    run(*mount_cmd, str(mountpoint))
    try:
        _copy_into_mount(files, mountpoint)
    finally:
        subprocess.run(["fusermount", "-u", str(mountpoint)], check=True, timeout=30)


def exfat_available() -> bool:
    if not (shutil.which("mkfs.exfat") and shutil.which("mount.exfat-fuse")):
        return False
    probe = subprocess.run(["losetup", "-f"], capture_output=True)
    return probe.returncode == 0 and os.path.exists("/dev/fuse")


def make_disk(path: Path, parts: list[tuple[str, dict[str, bytes]]], table: str = "mbr") -> Path:
    """A disk image at ``path`` with one partition per (kind, files); table mbr, gpt or none."""
    work = path.parent / f".{path.name}.parts"
    work.mkdir(exist_ok=True)
    images = [make_partition(work / f"p{i}.img", k, f) for i, (k, f) in enumerate(parts)]
    if table == "none":
        assert len(images) == 1
        shutil.copyfile(images[0], path)
        shutil.rmtree(work)
        return path
    offsets, pos = [], START
    for img in images:
        offsets.append(pos)
        pos += img.stat().st_size
    total = pos + 2 * MIB  # room for GPT's backup header
    with open(path, "wb") as f:
        f.truncate(total)
    lines = ["label: dos" if table == "mbr" else "label: gpt"]
    for img, off, (kind, _) in zip(images, offsets, parts, strict=True):
        ptype = MBR_TYPES[kind] if table == "mbr" else (
            LINUX_GUID if kind.startswith("ext") else BASIC_DATA_GUID
        )  # fmt: skip
        lines.append(f"start={off // 512}, size={img.stat().st_size // 512}, type={ptype}")
    run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(path),
        input=("\n".join(lines) + "\n").encode())  # fmt: skip
    with open(path, "r+b") as disk:
        for img, off in zip(images, offsets, strict=True):
            with open(img, "rb") as src:
                at = off
                while piece := src.read(MIB):
                    if any(piece):
                        disk.seek(at)
                        disk.write(piece)
                    at += len(piece)
    shutil.rmtree(work)
    return path
