"""Check a downloaded set against the catalog, file by file.

For every catalogued file, the local file of the same name in the folder is missing, has the
wrong size, has the wrong adler32, or is ok; local files the catalog does not know are listed
too. Nothing is changed: ``collect.download`` is what fetches missing and wrong files again.
Checksums are computed in parallel threads (adler32 releases the GIL).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..backends.base import Backend
from ..checksums import adler32, same_checksum
from ..exceptions import DataError, InputError
from ..models import Particle, RemoteFile, Stage
from ..paths import AnalysisTree, merged_file_name
from ..store import Store
from .collect import Tracker, stage_outputs
from .files import remote_files

#: ``advance(n)``: n more files checked
Progress = Callable[[int], None]


class Verdict(StrEnum):
    """What a local file is, measured against the catalog."""

    OK = "ok"
    MISSING = "missing"
    WRONG_SIZE = "wrong size"
    WRONG_CHECKSUM = "wrong adler32"
    EXTRA = "not in catalog"


#: verdicts that make a downloaded set incomplete (an extra file does not)
BAD = frozenset({Verdict.MISSING, Verdict.WRONG_SIZE, Verdict.WRONG_CHECKSUM})


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One file's verdict; ``lfn`` and the expected values are None for an extra file, the
    found ones for a missing file (and ``checksum`` when the size was already wrong)."""

    path: Path
    verdict: Verdict
    lfn: str | None = None
    expected_size: int | None = None
    size: int | None = None
    expected_checksum: str | None = None
    checksum: str | None = None


@dataclass
class VerifyReport:
    """The checks of one local folder against one catalog folder (or file)."""

    label: str
    folder: Path
    source: str
    checks: list[FileCheck]

    @property
    def counts(self) -> dict[Verdict, int]:
        """How many files got each verdict (every verdict present, zeros included)."""
        found = Counter(check.verdict for check in self.checks)
        return {verdict: found.get(verdict, 0) for verdict in Verdict}

    @property
    def catalogued(self) -> int:
        return sum(1 for check in self.checks if check.verdict != Verdict.EXTRA)

    @property
    def bad(self) -> list[FileCheck]:
        return [check for check in self.checks if check.verdict in BAD]

    @property
    def extra(self) -> list[FileCheck]:
        return [check for check in self.checks if check.verdict == Verdict.EXTRA]

    @property
    def complete(self) -> bool:
        """True when every catalogued file is here, intact."""
        return not self.bad


def check_file(remote: RemoteFile, path: Path) -> FileCheck:
    """Compare one local file with its catalog entry (size first, adler32 only if it fits)."""
    def result(verdict: Verdict, size: int | None = None,
               checksum: str | None = None) -> FileCheck:
        return FileCheck(path, verdict, remote.lfn, remote.size, size, remote.checksum,
                         checksum)

    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return result(Verdict.MISSING)
    if not stat.S_ISREG(info.st_mode):
        return result(Verdict.MISSING)
    if info.st_size != remote.size:
        return result(Verdict.WRONG_SIZE, info.st_size)
    checksum = adler32(path)
    ok = same_checksum(checksum, remote.checksum)
    return result(Verdict.OK if ok else Verdict.WRONG_CHECKSUM, info.st_size, checksum)


def local_files(folder: Path) -> list[Path]:
    """The regular files directly in ``folder`` (none if it does not exist)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    return sorted(Path(entry.path) for entry in entries if entry.is_file(follow_symlinks=False))


def verify(
    files: Sequence[RemoteFile],
    folder: Path,
    source: str,
    label: str = "",
    workers: int = 4,
    ignore: Collection[str] = (),
    progress: Progress | None = None,
) -> VerifyReport:
    """Check ``folder`` against the catalog entries ``files`` (listed from ``source``).

    Local files are named like the last part of their LFN, as ``collect.download`` names them.
    Local files no entry names are reported as extra, except those named in ``ignore`` (the
    merged file a download writes beside its inputs).
    """
    folder = Path(folder)
    checks: list[FileCheck] = []
    with ThreadPoolExecutor(max(1, min(workers, len(files)))) as pool:
        targets = [folder / Path(remote.lfn).name for remote in files]
        for check in pool.map(check_file, files, targets):
            checks.append(check)
            if progress:
                progress(1)
    known = {Path(remote.lfn).name for remote in files} | set(ignore)
    checks += [FileCheck(path, Verdict.EXTRA, size=path.stat().st_size)
               for path in local_files(folder) if path.name not in known]
    return VerifyReport(label or folder.name, folder, source, checks)


def verify_stage(store: Store, backend: Backend, tree: AnalysisTree, mode: str, stage: Stage,
                 particles: Sequence[Particle], workers: int = 4,
                 tracker: Tracker | None = None) -> list[VerifyReport]:
    """Each particle's downloads of a stage, against the outputs ``data download`` fetches
    (:func:`~.collect.stage_outputs`); the merged file beside them is not an extra file."""
    reports = []
    for particle in particles:
        outputs = stage_outputs(store, backend, tree, stage, particle, mode)
        advance = tracker(f"verifying {particle.value}", len(outputs)) if tracker else None
        reports.append(verify(outputs, tree.data_dir(stage, particle),
                              tree.lfn_data_dir(stage, particle), particle.value, workers,
                              (merged_file_name(stage, particle, mode),), advance))
    if not any(report.catalogued for report in reports):
        raise DataError(f"nothing to verify: no {stage.value} output is known yet",
                        "were the jobs run (protopipe-grid jobs status)?")
    return reports


def verify_folder(backend: Backend, folder: Path, lfn_path: str, workers: int = 4,
                  tracker: Tracker | None = None) -> VerifyReport:
    """A download folder against the catalog file or folder it came from (``files get``)."""
    if not folder.is_dir():
        raise InputError(f"--local-dir {folder}: folder not found")
    remote = remote_files(backend, lfn_path)
    advance = tracker(f"verifying {folder.name}", len(remote)) if tracker else None
    return verify(remote, folder, lfn_path, folder.name, workers, progress=advance)
