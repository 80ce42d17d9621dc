"""Catalogued files as a user names them: one LFN, or a whole catalog folder."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_lines
from ..backends.base import Backend
from ..exceptions import DataError, InputError
from ..models import RemoteFile
from ..paths import validate_lfn
from .split import read_list
from .upload import UploadReport, upload_file


def remote_files(backend: Backend, path: str) -> list[RemoteFile]:
    """The file ``path`` itself, or the files of the folder ``path`` and its subfolders; a
    path the catalog does not know is an error."""
    validate_lfn(path)
    found = backend.metadata([path])
    files = [found[path]] if path in found else backend.list_directory(path, recursive=True)
    if not files:
        raise DataError(f"{path}: no such file or folder in the catalog")
    return files


def remove(backend: Backend, files: Sequence[RemoteFile]) -> None:
    """Remove the files with every replica; raise if the catalog still lists any."""
    backend.remove([f.lfn for f in files])
    left = backend.metadata([f.lfn for f in files])
    if left:
        raise DataError(f"{len(left)} file(s) still in the catalog, e.g. {next(iter(left))}")


def filter_replicas(backend: Backend, list_file: Path, ses: Sequence[str], output: Path,
                    max_files: int | None = None) -> tuple[list[str], list[str], int]:
    """Write to ``output`` the LFNs of ``list_file`` (its first ``max_files``) that have a
    replica on one of ``ses``; return (kept, not in the catalog, LFNs read)."""
    if not ses:
        raise InputError("no storage element to filter on")
    lfns = read_list(list_file)[:max_files]
    found = backend.metadata(lfns)
    kept = [lfn for lfn in lfns if lfn in found and set(ses) & set(found[lfn].replicas)]
    write_lines(output, kept)
    return kept, [lfn for lfn in lfns if lfn not in found], len(lfns)


def register(backend: Backend, paths: Sequence[Path], lfn_dir: str, se: str,
             list_file: Path | None) -> tuple[list[str], UploadReport]:
    """Upload local files to ``lfn_dir`` on ``se`` (files already there with the same bytes
    are kept) and write their list file; return their LFNs and what the uploads did."""
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: file not found")
    lfns = [validate_lfn(posixpath.join(validate_lfn(lfn_dir.rstrip("/")), path.name))
            for path in paths]
    report = UploadReport()
    for path, lfn in zip(paths, lfns, strict=True):
        upload_file(backend, path, lfn, se, report)
    if list_file is not None:
        write_lines(list_file, lfns)
    return lfns, report
