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

import glob
import hashlib
import logging
import multiprocessing
import os
import stat
from collections.abc import Callable, Mapping, Sequence
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
from typing import Any, Literal

from ..atomic import partial_path
from ..backends.base import Backend
from ..checksums import adler32, same_checksum
from ..exceptions import DataError, InputError, PipelineError
from ..models import JobStatus, Particle, RemoteFile, Stage
from ..paths import AnalysisTree, merged_file_name, output_prefix
from ..retry import attempts
from ..store import Download, MergeRecord, Store
from .plan import is_canary
from .results import merge_step, table_rows, table_warnings

log = logging.getLogger(__name__)

#: ``advance(n)``: n more units of work done (files, here)
Progress = Callable[[int], None]
#: ``tracker(what, total)`` starts showing the progress of a task; it returns ``advance(n)``,
#: called as units are done
Tracker = Callable[[str, int], Callable[[int], None]]
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
        manifest: list[Download] = []

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
            mtime = None if state == "failed" else target.stat().st_mtime_ns
            manifest.append(Download(remote.lfn, target, remote.size, remote.checksum, state,
                                     mtime))
            if len(manifest) >= MANIFEST_BATCH:
                flush()
            if progress:
                progress(1)
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


def stage_outputs(store: Store, backend: Backend | None, tree: AnalysisTree, stage: Stage,
                  particle: Particle, mode: str) -> list[RemoteFile]:
    """The outputs of one stage and particle: those of its Done jobs, as the state database
    recorded them (LFN, size, adler32).

    An analysis whose jobs another tool submitted has no job of the stage in the state
    database: its outputs are then listed from the catalog folder, or without a ``backend``
    taken from the stage's local folder (names and sizes, no checksum). A canary job's
    output is never one of them (see :mod:`.canary`)."""
    records = [r for r in store.jobs(stage=stage, particle=particle) if not is_canary(r.name)]
    if not records and backend is not None:
        log.info("no %s %s job in the state database: listing the catalog", stage.value,
                 particle.value)
        return [f for f in backend.list_directory(tree.lfn_data_dir(stage, particle))
                if f.lfn.endswith(".h5")]
    if not records:
        pattern = f"{output_prefix(stage)}_{particle.value}_{mode}_*.h5"
        return [RemoteFile(path.name, path.stat().st_size, "")
                for path in sorted(tree.data_dir(stage, particle).glob(pattern))]
    done = [r for r in records if r.status == JobStatus.DONE]
    known = [RemoteFile(r.spec.output_lfn, r.output_size, r.output_checksum or "")
             for r in done if r.output_size is not None]
    unknown = [r.spec.output_lfn for r in done if r.output_size is None]
    found = backend.metadata(unknown) if unknown and backend is not None else {}
    return sorted([*known, *found.values()], key=lambda f: f.lfn)


@dataclass(frozen=True)
class MergeResult:
    """A merged file: how many inputs it holds, their simulated showers, what the merge had
    to say (inputs skipped, shared obs_ids), and whether it was already up to date (the same
    inputs as its last merge)."""

    path: Path
    files: int
    showers: int
    #: files given to the merge (some may have been skipped: see ``notes``)
    inputs: int = 0
    notes: tuple[str, ...] = ()
    up_to_date: bool = False
    #: rows of each table of the merged file, by table path (``/LSTCam``, ``/reco_events``)
    tables: Mapping[str, int] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """What makes the merged file unusable: no table, or a table without rows."""
        return table_warnings(self.path.name, self.tables)

    def figures(self) -> dict[str, Any]:
        """What the state database keeps of this merge."""
        return {"file": self.path.name, "inputs": self.inputs, "files": self.files,
                "showers": self.showers, "tables": dict(self.tables), "notes": list(self.notes)}


#: how a pipeline merges files: (inputs, output, overwrite) -> what the merge made
Merger = Callable[[Sequence[Path], Path, bool], MergeResult]


@dataclass
class CollectReport:
    """What collecting one stage and particle did."""

    stage: Stage
    particle: Particle
    outdir: Path
    outputs: list[RemoteFile]
    #: jobs of the stage not final yet: their outputs come later
    unfinished: int
    download: DownloadReport
    merged: MergeResult | None = None


def verified(store: Store, files: Sequence[RemoteFile], outdir: Path) -> set[str]:
    """LFNs whose download the manifest records as verified, with the file still as it was
    then (same size and modification time): not read again."""
    rows = store.downloads([f.lfn for f in files])
    good = set()
    for remote in files:
        row = rows.get(remote.lfn)
        target = outdir / Path(remote.lfn).name
        if row is None or row.state == "failed" or row.path != target or row.mtime_ns is None:
            continue
        try:
            info = target.stat()
        except FileNotFoundError:
            continue
        if ((row.size, row.checksum) == (remote.size, remote.checksum)
                and (info.st_size, info.st_mtime_ns) == (remote.size, row.mtime_ns)):
            good.add(remote.lfn)
    return good


def check_target(store: Store, target: Path, overwrite: bool) -> None:
    """Refuse a merged file this analysis did not make (or that changed since), unless
    ``overwrite``."""
    record = store.merge_record(target)
    if target.exists() and not overwrite and not (record and record.made(target)):
        raise DataError(f"{target} exists and was not merged by this analysis (or changed "
                        "since)", "use --overwrite to replace it")


def merge_stage(store: Store, outputs: Sequence[RemoteFile], outdir: Path, target: Path,
                overwrite: bool = False, merger: Merger | None = None) -> MergeResult:
    """Merge exactly the local copies of ``outputs`` (in ``outdir``) into ``target`` (with
    ``merger``, else protopipe's :func:`merge`), unless its last merge had the same inputs
    (then it is up to date); record the merge."""
    check_target(store, target, overwrite)
    if not outputs:
        raise DataError(f"nothing to merge into {target}", "no job of this stage is Done yet")
    inputs = [outdir / Path(f.lfn).name for f in outputs]
    missing = [path for path in inputs if not path.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: not downloaded ({len(missing)} of {len(inputs)} "
                        "missing)", "download the stage first")
    digest = inputs_digest(outputs)
    record = store.merge_record(target)
    if record is not None and record.inputs == digest and record.made(target):
        return MergeResult(target, record.files, record.showers, len(inputs),
                           up_to_date=True, tables=table_rows(target))
    result = (merger or merge)(inputs, target, True)
    info = target.stat()
    store.record_merge(MergeRecord(target, digest, result.files, result.showers, info.st_size,
                                   info.st_mtime_ns))
    return result


def collect_stage(
    store: Store,
    downloader: Downloader,
    tree: AnalysisTree,
    stage: Stage,
    particle: Particle,
    mode: str,
    merge_into: Path | None,
    overwrite: bool = False,
    tracker: Tracker | None = None,
    merger: Merger | None = None,
) -> CollectReport:
    """Download the outputs of one stage and particle (:func:`stage_outputs`), then merge
    exactly those into ``merge_into`` (None: no merge) with ``merger`` (None: protopipe's).

    Order of work: refuse a merged file this analysis did not make unless ``overwrite``,
    before anything is downloaded; skip the files the manifest verified and that are
    unchanged; fetch the others (verified, see :func:`fetch_one`); merge once every output is
    here (:func:`merge_stage`: not again for the same inputs). Run again while the stage
    runs, it collects what is new.
    """
    if merge_into is not None:
        check_target(store, merge_into, overwrite)
    outputs = stage_outputs(store, downloader.backend, tree, stage, particle, mode)
    outdir = tree.data_dir(stage, particle)
    skip = verified(store, outputs, outdir)
    advance = tracker(f"downloading {particle.value}", len(outputs)) if tracker else None
    if advance:
        advance(len(skip))
    download = downloader.download([f for f in outputs if f.lfn not in skip], outdir, store,
                                   progress=advance)
    download.present += [outdir / Path(lfn).name for lfn in sorted(skip)]
    unfinished = sum(not r.status.is_final for r in store.jobs(stage=stage, particle=particle))
    report = CollectReport(stage, particle, outdir, outputs, unfinished, download)
    if merge_into is not None and outputs and not download.failed:
        report.merged = record_merge(store, stage, particle,
                                     merge_stage(store, outputs, outdir, merge_into, overwrite,
                                                 merger))
    return report


def collect(
    store: Store,
    backend: Backend,
    tree: AnalysisTree,
    mode: str,
    stage: Stage,
    particles: Sequence[Particle],
    workers: int = 4,
    merge: bool = True,
    overwrite: bool = False,
    tracker: Tracker | None = None,
) -> list[CollectReport]:
    """:func:`collect_stage` for each particle of a stage, with one set of download workers;
    every merged file is checked before anything is downloaded."""
    targets = {p: tree.data_dir(stage, p) / merged_file_name(stage, p, mode) if merge else None
               for p in particles}
    for target in targets.values():
        if target is not None:
            check_target(store, target, overwrite)
    with Downloader(backend, workers) as downloader:
        return [collect_stage(store, downloader, tree, stage, particle, mode, targets[particle],
                              overwrite, tracker) for particle in particles]


def check_downloaded(reports: Sequence[CollectReport]) -> None:
    """Raise :class:`DataError` when a file of ``reports`` could not be downloaded."""
    failed = sum(len(report.download.failed) for report in reports)
    if failed:
        raise DataError(f"{failed} file(s) could not be downloaded",
                        "run the same command again to retry")


def merge_particles(store: Store, tree: AnalysisTree, mode: str, stage: Stage,
                    particles: Sequence[Particle], overwrite: bool = False
                    ) -> list[MergeResult]:
    """Merge each particle's downloaded outputs, without downloading (see :func:`collect`)."""
    targets = {p: tree.data_dir(stage, p) / merged_file_name(stage, p, mode) for p in particles}
    for target in targets.values():
        check_target(store, target, overwrite)
    return [record_merge(store, stage, p, merge_stage(
        store, stage_outputs(store, None, tree, stage, p, mode), tree.data_dir(stage, p),
        targets[p], overwrite)) for p in particles]


def record_merge(store: Store, stage: Stage, particle: Particle, merged: MergeResult
                 ) -> MergeResult:
    """Keep a merge's figures and warnings in the state database (a merge found up to date
    keeps those of the merge that made the file); return the merge."""
    step = merge_step(stage.value)
    if merged.up_to_date and any(r.particle == particle.value for r in store.results(step)):
        return merged
    store.record_result(step, particle.value, merged.figures(), merged.warnings)
    return merged


def merge_folder(folder: Path, prefix: str, output: Path, overwrite: bool = False
                 ) -> MergeResult:
    """Merge ``<folder>/<prefix>*.h5`` (``prefix`` may hold glob patterns) into ``output``:
    what ``protopipe-MERGE_FILES`` does."""
    pattern = os.path.join(glob.escape(str(folder)), f"{prefix}*.h5")
    inputs = sorted(Path(p) for p in glob.glob(pattern) if Path(p).resolve() != output.resolve())
    if not inputs:
        raise InputError(f"{folder}/{prefix}*.h5: no file to merge",
                         "check --indir and --template_file_name")
    return merge(inputs, output, overwrite)


def inputs_digest(files: Sequence[RemoteFile]) -> str:
    """What identifies a set of merge inputs: their names and adler32s."""
    text = "\n".join(f"{Path(f.lfn).name} {f.checksum.lower().lstrip('0')}"
                      for f in sorted(files, key=lambda f: f.lfn))
    return hashlib.sha256(text.encode()).hexdigest()


def merge(inputs: Sequence[Path], output: Path, overwrite: bool = False) -> MergeResult:
    """Merge protopipe files into ``output`` (atomically): see ``payload/merge_tables.py``."""
    from ..payload import merge_tables

    if not inputs:
        raise DataError(f"nothing to merge into {output}")
    if output.exists() and not overwrite:
        raise DataError(f"{output} already exists", "use --overwrite to merge again")
    notes: list[str] = []
    try:
        merged, showers = merge_tables.merge(  # type: ignore[no-untyped-call]
            str(output), [str(p) for p in inputs],
            note=lambda text: notes.append(text.removeprefix("warning: ")))
    except merge_tables.MergeError as exc:
        raise DataError(f"merge into {output.name}: {exc}") from None
    return MergeResult(output, int(merged), int(showers), len(inputs), tuple(notes),
                       tables=table_rows(output))
