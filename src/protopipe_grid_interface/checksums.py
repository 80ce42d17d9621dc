"""adler32 checksums as DIRAC stores them (8 lowercase hex digits), and atomic file copies."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

CHUNK = 1024 * 1024


def adler32(path: Path) -> str:
    """The adler32 checksum of a file, formatted like the DIRAC File Catalog does."""
    value = 1
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        while size := stream.readinto(buffer):
            value = zlib.adler32(view[:size], value)
    return f"{value & 0xFFFFFFFF:08x}"


def same_checksum(a: str, b: str) -> bool:
    """Compare two adler32 strings, ignoring case and DIRAC's dropped leading zeros."""
    return a.lower().lstrip("0") == b.lower().lstrip("0")


def copy_atomic(source: Path, destination: Path, durable: bool = True) -> str:
    """Copy ``source`` to ``destination`` through ``destination.part``; return the adler32.

    The final name appears only once every byte is written, so a killed copy never leaves a
    file that looks complete; ``durable`` also waits until the bytes are on disk (for stored
    replicas; downloads are checked again on the next run instead).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    value = 1
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(source, "rb", buffering=0) as src, open(partial, "wb", buffering=0) as dst:
        while size := src.readinto(buffer):
            value = zlib.adler32(view[:size], value)
            dst.write(view[:size])
        if durable:
            os.fsync(dst.fileno())
    os.replace(partial, destination)
    return f"{value & 0xFFFFFFFF:08x}"
