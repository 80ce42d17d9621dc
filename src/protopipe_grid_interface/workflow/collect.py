"""Collect outputs: verified, resumable, parallel downloads, then merges.

Each file is fetched to ``name.part``, its size and adler32 checked against the catalog, then
renamed: a file under its final name is always complete. A file already present with the right
checksum is skipped; a wrong one is fetched again; failures are retried with backoff, then
reported. Every outcome is kept in the state database's download manifest.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.base import Backend
from ..checksums import adler32, same_checksum
from ..exceptions import DataError, PipelineError
from ..models import RemoteFile
from ..store import Store

log = logging.getLogger(__name__)

Progress = Callable[[RemoteFile], None]
#: manifest rows written per transaction
MANIFEST_BATCH = 100


@dataclass
class DownloadReport:
    """What a download did, file by file."""

    fetched: list[Path] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return sorted(self.fetched + self.present)


def is_intact(path: Path, remote: RemoteFile) -> bool:
    """True when ``path`` is a file with the catalog's size and checksum."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    return (stat.S_ISREG(info.st_mode) and info.st_size == remote.size
            and same_checksum(adler32(path), remote.checksum))


def fetch_one(backend: Backend, remote: RemoteFile, target: Path, retries: int,
              backoff: float) -> bool:
    """Fetch one file unless already intact; True if it was fetched.

    The backend writes ``target.part``; its size on disk and the adler32 of the bytes written
    (computed by the backend while writing, or else read back here) must match the catalog
    before it is renamed to ``target``.
    """
    if is_intact(target, remote):
        return False
    partial = target.with_name(target.name + ".part")
    problem = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            checksum = backend.get_file(remote.lfn, partial, remote)
        except PipelineError as exc:
            problem = str(exc)
            continue
        size = partial.stat().st_size
        if size != remote.size:
            problem = f"size {size}, catalog says {remote.size}"
        elif not same_checksum(checksum or adler32(partial), remote.checksum):
            problem = f"adler32 mismatch (catalog says {remote.checksum})"
        else:
            partial.replace(target)
            return True
        log.warning("%s: %s (attempt %d)", remote.lfn, problem, attempt + 1)
    partial.unlink(missing_ok=True)
    raise DataError(f"{remote.lfn}: {problem}")


def download(
    backend: Backend,
    files: Sequence[RemoteFile],
    outdir: Path,
    store: Store | None = None,
    workers: int = 4,
    retries: int = 2,
    backoff: float = 0.5,
    progress: Progress | None = None,
) -> DownloadReport:
    """Download ``files`` into ``outdir``; see the module docstring."""
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob("*.part"):
        stale.unlink()
    report = DownloadReport()
    manifest: list[tuple[str, Path, int, str, str]] = []

    def flush() -> None:
        if store is not None and manifest:
            store.record_downloads(manifest)
        manifest.clear()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(fetch_one, backend, remote, outdir / Path(remote.lfn).name,
                               retries, backoff): remote for remote in files}
        for future in as_completed(futures):
            remote = futures[future]
            target = outdir / Path(remote.lfn).name
            try:
                fetched = future.result()
            except PipelineError as exc:
                report.failed[remote.lfn] = str(exc)
                state = "failed"
            else:
                (report.fetched if fetched else report.present).append(target)
                state = "fetched" if fetched else "present"
            manifest.append((remote.lfn, target, remote.size, remote.checksum, state))
            if len(manifest) >= MANIFEST_BATCH:
                flush()
            if progress:
                progress(remote)
    flush()
    return report


def merge(inputs: Sequence[Path], output: Path, overwrite: bool = False) -> tuple[int, int]:
    """Merge protopipe files into ``output`` (atomically); return (files merged, num_showers)."""
    from ..payload import merge_tables

    if not inputs:
        raise DataError(f"nothing to merge into {output}")
    if output.exists() and not overwrite:
        raise DataError(f"{output} already exists", "use --overwrite to merge again")
    try:
        merged, showers = merge_tables.merge(  # type: ignore[no-untyped-call]
            str(output), [str(p) for p in inputs], note=log.warning)
    except merge_tables.MergeError as exc:
        raise DataError(f"merge into {output.name}: {exc}") from None
    return int(merged), int(showers)
