"""adler32 checksums as DIRAC stores them (8 lowercase hex digits), and atomic file copies."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def adler32(path: Path) -> str:
    """The adler32 checksum of a file, formatted like the DIRAC File Catalog does."""
    value = 1
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"


def same_checksum(a: str, b: str) -> bool:
    """Compare two adler32 strings, ignoring case and DIRAC's dropped leading zeros."""
    return a.lower().lstrip("0") == b.lower().lstrip("0")


def copy_atomic(source: Path, destination: Path) -> str:
    """Copy ``source`` to ``destination`` through ``destination.part``; return the adler32.

    The final name appears only once the bytes are on disk, so a killed copy never leaves a
    file that looks complete.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    value = 1
    with open(source, "rb") as src, open(partial, "wb") as dst:
        while chunk := src.read(CHUNK):
            value = zlib.adler32(chunk, value)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(partial, destination)
    return f"{value & 0xFFFFFFFF:08x}"
