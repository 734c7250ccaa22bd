"""A tiny bootable disk: a 512-byte boot sector that proves a VM really booted a point.

It prints ``MARKER`` to the first serial port (COM1, 0x3f8) and the screen, copies itself
to sector 1 of its own disk with BIOS int 13h (so a test can see a VM's write land in the
overlay and in backups taken while it runs), prints ``WROTE MARKER`` and halts. The
appliance uses it to check its hypervisor; tests, the demo and bench/virtualize.py use it
as a protected server's volume. Assembled here by hand (16-bit real mode, org 0x7c00), so
no assembler is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

ORG = 0x7C00


def _assemble(marker: bytes) -> bytes:
    code = bytearray()
    labels: dict[str, int] = {}
    fixups: list[tuple[int, str, int]] = []  # (position, label, size: 1 rel8, 2 rel16, 0 abs16)

    def emit(*parts):
        for part in parts:
            code.extend(part if isinstance(part, bytes) else bytes([part]))

    def rel8(label):
        fixups.append((len(code), label, 1))
        emit(0)

    def rel16(label):
        fixups.append((len(code), label, 2))
        emit(0, 0)

    def abs16(label):
        fixups.append((len(code), label, 0))
        emit(0, 0)

    def here(label):
        labels[label] = len(code)

    emit(0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0)  # cli; xor ax,ax; ds=es=ss=0
    emit(0xBC, 0x00, 0x7C, 0xFB)  # mov sp,0x7c00; sti
    emit(0x88, 0x16, 0x00, 0x05)  # mov [0x500],dl  (the boot drive)
    emit(0xBE), abs16("msg")  # mov si,msg
    emit(0xE8), rel16("print")  # call print
    emit(0xB8, 0x01, 0x03)  # mov ax,0x0301   write 1 sector
    emit(0xB9, 0x02, 0x00)  # mov cx,0x0002   cylinder 0, sector 2 (= LBA 1)
    emit(0x30, 0xF6)  # xor dh,dh       head 0
    emit(0x8A, 0x16, 0x00, 0x05)  # mov dl,[0x500]
    emit(0xBB, 0x00, 0x7C)  # mov bx,0x7c00   this very sector
    emit(0xCD, 0x13)  # int 0x13
    emit(0x72), rel8("fail")  # jc fail
    emit(0xBE), abs16("wrote")
    emit(0xE8), rel16("print")
    here("halt")
    emit(0xFA, 0xF4, 0xEB, 0xFC)  # cli; hlt; jmp halt
    here("fail")
    emit(0xBE), abs16("failmsg")
    emit(0xE8), rel16("print")
    emit(0xEB), rel8("halt")
    here("print")  # si -> NUL-terminated text to COM1 and the screen
    emit(0xAC, 0x84, 0xC0)  # lodsb; test al,al
    emit(0x74), rel8("done")  # jz done
    emit(0xBA, 0xF8, 0x03, 0xEE)  # mov dx,0x3f8; out dx,al
    emit(0xB4, 0x0E, 0x31, 0xDB, 0xCD, 0x10)  # mov ah,0x0e; xor bx,bx; int 0x10
    emit(0xEB), rel8("print")
    here("done")
    emit(0xC3)
    here("msg")
    emit(marker + b"\r\n\0")
    here("wrote")
    emit(b"WROTE " + marker + b"\r\n\0")
    here("failmsg")
    emit(b"DISK WRITE FAILED\r\n\0")
    for pos, label, size in fixups:
        target = labels[label]
        if size == 0:
            code[pos : pos + 2] = (ORG + target).to_bytes(2, "little")
        elif size == 1:
            code[pos] = (target - (pos + 1)) & 0xFF
        else:
            code[pos : pos + 2] = ((target - (pos + 2)) & 0xFFFF).to_bytes(2, "little")
    return bytes(code)


def boot_sector(marker: str) -> bytes:
    """The 512-byte boot sector printing ``marker`` (ASCII, at most 100 characters)."""
    raw = marker.encode("ascii")
    if not raw or len(raw) > 100 or any(b < 0x20 or b > 0x7E for b in raw):
        raise ValueError("marker must be 1-100 printable ASCII characters")
    code = _assemble(raw)
    if len(code) > 446:  # keep clear of the partition table
        raise ValueError("boot sector code too long")
    return code + bytes(510 - len(code)) + b"\x55\xaa"


def write_boot_disk(path: str | os.PathLike, marker: str, size: int = 1 << 20) -> Path:
    """A sparse disk image of ``size`` bytes whose boot sector prints ``marker``."""
    path = Path(path)
    with open(path, "r+b" if path.exists() else "wb") as f:
        f.write(boot_sector(marker))
        f.write(bytes(512))  # sector 1 starts empty: the VM's copy of sector 0 lands here
        f.truncate(size)
    return path
