"""Files that appear whole or not at all: written to ``<name>.part``, synced, then renamed."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


#: compression suffixes that belong to the extension before them (``.fits.gz``)
COMPRESSED = (".gz", ".bz2", ".xz", ".zst")


def partial_path(path: Path, keep_extension: bool = False) -> Path:
    """``<name>.part`` beside ``path``: where a file is written before it gets its name. With
    ``keep_extension``, ``<stem>.part<extension>`` (``irf.part.fits.gz``), for writers that
    check the extension of their output."""
    if not keep_extension:
        return path.with_name(path.name + ".part")
    suffixes = path.suffixes
    count = 2 if len(suffixes) > 1 and suffixes[-1] in COMPRESSED else min(len(suffixes), 1)
    extension = "".join(suffixes[len(suffixes) - count:])
    return path.with_name(path.name[:len(path.name) - len(extension)] + ".part" + extension)


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


def write_with(path: Path, write: Callable[[Path], T], keep_extension: bool = False) -> T:
    """Let ``write(partial)`` make the file under its ``.part`` name (:func:`partial_path`),
    then give it its name; return what ``write`` returned. The partial file goes if anything
    fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path, keep_extension)
    try:
        result = write(partial)
        replace_synced(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return result


def write_all(paths: Sequence[Path], write: Callable[[list[Path]], T],
              keep_extension: bool = False) -> T:
    """:func:`write_with` for a writer of several files: ``write(partials)`` makes them under
    their partial names; each that exists then gets its name (a file the writer chose not to
    make stays absent). Every partial file goes if anything fails."""
    paths = [Path(path) for path in paths]
    partials = [partial_path(path, keep_extension) for path in paths]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = write(partials)
        for partial, path in zip(partials, paths, strict=True):
            if partial.exists():
                replace_synced(partial, path)
    except BaseException:
        for partial in partials:
            partial.unlink(missing_ok=True)
        raise
    return result
