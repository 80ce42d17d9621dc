"""Collect outputs: verified, resumable, parallel downloads, then merges.

Each file is fetched to ``name.part``, its size and adler32 checked against the catalog, then
renamed: a file under its final name is always complete. A file already present with the right
checksum is skipped; a wrong one is fetched again; failures are retried with backoff, then
reported. Every outcome is kept in the state database's download manifest.

Files are fetched in parallel: in threads, or in worker processes for a backend whose client
is not thread safe (``Backend.thread_safe``: DIRAC's is not); each worker process gets its own
copy of the backend, which connects lazily there.
"""

from __future__ import annotations

import logging
import multiprocessing
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..atomic import partial_path
from ..backends.base import Backend
from ..checksums import adler32, same_checksum
from ..exceptions import DataError, PipelineError
from ..models import Particle, RemoteFile, Stage
from ..paths import AnalysisTree
from ..retry import attempts
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
    partial = partial_path(target)
    try:
        for attempt in attempts(PipelineError, retries + 1, backoff, remote.lfn):
            with attempt:
                checksum = backend.get_file(remote.lfn, partial, remote)
                size = partial.stat().st_size
                if size != remote.size:
                    raise DataError(f"size {size}, catalog says {remote.size}")
                if not same_checksum(checksum or adler32(partial), remote.checksum):
                    raise DataError(f"adler32 mismatch (catalog says {remote.checksum})")
                partial.replace(target)
    except PipelineError as exc:
        raise DataError(f"{remote.lfn}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return True


#: how one file's download ended, and the problem if it failed
Outcome = tuple[Literal["fetched", "present", "failed"], str]


def fetch_outcome(backend: Backend, remote: RemoteFile, target: Path, retries: int,
                  backoff: float) -> Outcome:
    """``fetch_one``, with a failure returned instead of raised (it crosses process bounds)."""
    try:
        return ("fetched" if fetch_one(backend, remote, target, retries, backoff)
                else "present"), ""
    except PipelineError as exc:
        return "failed", str(exc)


#: the backend of a download worker process, built there by ``start_worker``
_worker_backend: Backend | None = None


def start_worker(backend: Backend, log_level: int) -> None:
    """Initialiser of a download worker process: keep its own copy of the backend.

    The copy is unpickled from the parent's without its connections (a backend connects
    lazily: ``DiracBackend`` initialises DIRAC in ``ready()``), so each process has its own
    client. Warnings (retries) are logged at the parent's level.
    """
    global _worker_backend
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    _worker_backend = backend


def fetch_in_worker(remote: RemoteFile, target: Path, retries: int, backoff: float) -> Outcome:
    if _worker_backend is None:  # pragma: no cover - start_worker always runs first
        raise RuntimeError("download worker without a backend")
    return fetch_outcome(_worker_backend, remote, target, retries, backoff)


class Downloader:
    """Workers that fetch files, kept for several :meth:`download` calls (a command downloads
    a stage particle by particle, and a DIRAC worker process starts its own client once).

    ``workers`` at a time: threads when the backend is thread safe (``backend.thread_safe``),
    else as many spawned worker processes, each with its own copy of the backend
    (``processes`` forces one or the other). Use it as a context manager.
    """

    def __init__(self, backend: Backend, workers: int = 4, processes: bool | None = None
                 ) -> None:
        self.backend = backend
        self.workers = max(1, workers)
        self.processes = not backend.thread_safe if processes is None else processes
        self._pool: Executor | None = None

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:  # files in flight end as .part or whole
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def pool(self) -> Executor:
        """The workers (both kinds of pool start a worker only when work waits for one)."""
        if self._pool is None:
            if self.processes:  # spawned, not forked: a fresh interpreter, no client state
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=start_worker,
                    initargs=(self.backend, logging.getLogger().getEffectiveLevel()))
            else:
                self._pool = ThreadPoolExecutor(self.workers)
        return self._pool

    def download(
        self,
        files: Sequence[RemoteFile],
        outdir: Path,
        store: Store | None = None,
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

        pool = self.pool()
        futures: dict[Future[Outcome], RemoteFile] = {}
        for remote in files:
            target = outdir / Path(remote.lfn).name
            if self.processes:
                future = pool.submit(fetch_in_worker, remote, target, retries, backoff)
            else:
                future = pool.submit(fetch_outcome, self.backend, remote, target, retries,
                                     backoff)
            futures[future] = remote
        for future in as_completed(futures):
            remote = futures[future]
            target = outdir / Path(remote.lfn).name
            try:
                state, problem = future.result()
            except BrokenExecutor as exc:
                state, problem = "failed", f"download worker died: {exc}"
            if state == "failed":
                report.failed[remote.lfn] = problem
            else:
                (report.fetched if state == "fetched" else report.present).append(target)
            manifest.append((remote.lfn, target, remote.size, remote.checksum, state))
            if len(manifest) >= MANIFEST_BATCH:
                flush()
            if progress:
                progress(remote)
        flush()
        return report


def download(
    backend: Backend,
    files: Sequence[RemoteFile],
    outdir: Path,
    store: Store | None = None,
    workers: int = 4,
    retries: int = 2,
    backoff: float = 0.5,
    progress: Progress | None = None,
    processes: bool | None = None,
) -> DownloadReport:
    """Download ``files`` into ``outdir`` with workers of their own (see :class:`Downloader`)."""
    with Downloader(backend, workers, processes) as downloader:
        return downloader.download(files, outdir, store, retries, backoff, progress)


def stage_outputs(backend: Backend, tree: AnalysisTree, stage: Stage,
                  particle: Particle) -> list[RemoteFile]:
    """The catalogued outputs of one stage and particle: what ``data download`` fetches."""
    return [f for f in backend.list_directory(tree.lfn_data_dir(stage, particle))
            if f.lfn.endswith(".h5")]


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
