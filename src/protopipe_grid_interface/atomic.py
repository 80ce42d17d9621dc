"""Files that appear whole or not at all: written to ``<name>.part``, synced, then renamed."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def partial_path(path: Path) -> Path:
    """``<name>.part`` beside ``path``: where a file is written before it gets its name."""
    return path.with_name(path.name + ".part")


def replace_synced(partial: Path, path: Path) -> None:
    """Flush ``partial`` to disk, then rename it to ``path`` (atomic on one file system)."""
    descriptor = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(partial, path)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all."""
    write_with(path, lambda partial: partial.write_bytes(
        data.encode() if isinstance(data, str) else data))


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """A list file: one entry per line, written whole or not at all."""
    write_atomic(path, "".join(f"{line}\n" for line in lines))


def write_with(path: Path, write: Callable[[Path], T]) -> T:
    """Let ``write(partial)`` make the file under its ``.part`` name, then give it its name;
    return what ``write`` returned. The partial file goes if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        result = write(partial)
        replace_synced(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return result
