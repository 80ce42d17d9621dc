"""The fake backend: catalog, storage elements and jobs in memory, jobs run on threads.

For fast workflow tests, as httpx's ``MockTransport`` is for HTTP: no daemon, no database, no
file outside one temporary folder (``root``). Jobs go through the statuses, minor and
application statuses the local backend reports, at most ``max_parallel`` at once, each on a
worker thread in ``root/<id>/work`` with its log in ``root/<id>/std.out``. Only a fake offers:

- ``programs``: a step whose ``step[0]`` is one of its names runs in-process, as the callable
  ``(args, work folder) -> exit code``, so a test stands in for protopipe without a process;
  other steps run as subprocesses (``python`` is ``sys.executable``);
- ``hold=True`` keeps jobs ``Waiting`` (confirmed or rescheduled) until ``release()``.

``close()`` (or leaving its ``with`` block) kills the active jobs, terminating their
subprocesses, and joins the workers (an in-process program is waited for).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..checksums import adler32_bytes
from ..exceptions import BackendError, DataError, PipelineError
from ..models import ANY_JOB, UNCONFIRMED, JobSelection, JobSpec, JobState, JobStatus, RemoteFile
from ..paths import validate_lfn
from .base import Backend
from .local import DEFAULT_SES, VO, now
from .usermeta import UserMetadata, Value, level_of, normalized

#: ``(args, work folder) -> exit code``: a program run in-process instead of as a subprocess
Program = Callable[[Sequence[str], Path], int]
#: one entry of a job's history: status, minor status, application status, time
HistoryEntry = tuple[JobStatus, str, str, str]

SITE = "FAKE.localhost.xx"
IN_FLIGHT = (JobStatus.MATCHED, JobStatus.RUNNING, JobStatus.COMPLETING)
ACTIVE = tuple(s for s in JobStatus if not s.is_final)
FINAL = tuple(s for s in JobStatus if s.is_final)


@dataclass
class FakeJob:
    """One job: its spec, current state, history, run number and running subprocess."""

    spec: JobSpec
    state: JobState
    submitted: str
    #: its scratch folder ``work`` and its log ``std.out``
    folder: Path
    history: list[HistoryEntry] = field(default_factory=list)
    #: incremented each time the job is matched: a run may only change the job in its own run
    run: int = 0
    process: subprocess.Popen[bytes] | None = None


class FakeBackend(Backend):
    """Everything in memory, jobs on threads; see the module docstring."""

    name = "fake"
    root: Path
    thread_safe = True

    def __init__(
        self,
        root: Path | None = None,
        programs: Mapping[str, Program] | None = None,
        hold: bool = False,
        max_parallel: int = 2,
        ses: Sequence[str] = DEFAULT_SES,
        user: str = "tester",
    ) -> None:
        self.owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="pgi-fake-") if root is None else root)
        self.programs = dict(programs or {})
        self.hold = hold
        self.max_parallel = max_parallel
        self.ses = list(ses)
        self.user = user
        self.lock = threading.RLock()
        self.catalog: dict[str, RemoteFile] = {}
        self.user_metadata = UserMetadata()
        self.storage: dict[str, dict[str, bytes]] = {se: {} for se in self.ses}
        self.jobs: dict[int, FakeJob] = {}
        self.ids = itertools.count(1)
        self.queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.workers: list[threading.Thread] = []
        self.closed = False

    def __enter__(self) -> FakeBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the active jobs (their steps are terminated), join the workers."""
        with self.lock:
            self.closed = True
            self.kill(list(self.jobs))
            for _ in self.workers:
                self.queue.put(None)
        for worker in self.workers:
            worker.join()
        self.workers.clear()
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- identity -----------------------------------------------------------------------------
    def home(self) -> str:
        return f"/{VO}/user/{self.user[0]}/{self.user}"

    def storage_elements(self) -> list[str]:
        return list(self.ses)

    # --- job bookkeeping ----------------------------------------------------------------------
    def job(self, job_id: int) -> FakeJob:
        with self.lock:
            if job_id not in self.jobs:
                raise BackendError(f"no job {job_id} on the fake backend")
            return self.jobs[job_id]

    def move(self, job: FakeJob, status: JobStatus, minor: str, application: str = "",
             only_from: Sequence[JobStatus] = (), run: int | None = None) -> bool:
        """Move ``job`` to ``status``, only from one of ``only_from`` (if given) and only while
        it is still in its run ``run`` (if given); record it in the history."""
        with self.lock:
            if (only_from and job.state.status not in only_from) or run not in (None, job.run):
                return False
            job.state = replace(job.state, status=status, minor_status=minor,
                                application_status=application)
            job.history.append((status, minor, application, now()))
            return True

    def set_status(self, job_id: int, status: JobStatus, minor: str,
                   application: str = "") -> None:
        """Put a job in a state, as DIRAC's agents or a test would (its steps are not run
        again: a held job stays where it is put)."""
        self.move(self.job(job_id), status, minor, application)

    def history(self, job_id: int) -> list[HistoryEntry]:
        """Every state the job went through, oldest first."""
        with self.lock:
            return list(self.job(job_id).history)

    def move_all(self, ids: Sequence[int], status: JobStatus, minor: str,
                 only_from: Sequence[JobStatus]) -> list[int]:
        """:meth:`move` each known job of ``ids``; return the ids of those moved."""
        with self.lock:
            return [i for i in ids if i in self.jobs
                    and self.move(self.jobs[i], status, minor, only_from=only_from)]

    def release(self, ids: Sequence[int] | None = None) -> None:
        """Let the jobs ``hold`` keeps ``Waiting`` run: those of ``ids``, or all of them."""
        with self.lock:
            self.start([i for i in (self.jobs if ids is None else ids) if i in self.jobs
                        and self.jobs[i].state.status == JobStatus.WAITING])

    def start(self, ids: Sequence[int], unless_held: bool = False) -> None:
        """Hand ``Waiting`` jobs to the workers (``unless_held`` by ``hold``), starting the
        workers on first use; a worker skips a job no longer ``Waiting``."""
        with self.lock:
            self.check_open()
            if not ids or (unless_held and self.hold):
                return
            for job_id in ids:
                self.queue.put(job_id)
            while len(self.workers) < self.max_parallel:
                worker = threading.Thread(target=self.work, daemon=True,
                                          name=f"pgi-fake-worker-{len(self.workers)}")
                worker.start()
                self.workers.append(worker)

    def check_open(self) -> None:
        if self.closed:
            raise BackendError("the fake backend is closed: it runs no more jobs")

    # --- jobs ---------------------------------------------------------------------------------
    def submit(self, specs: Sequence[JobSpec]) -> list[int]:
        """Create the jobs ``Submitting``, then confirm them (DIRAC's bulk transaction); a
        failed confirmation removes the jobs it left unconfirmed."""
        stamp = now()
        ids: list[int] = []
        with self.lock:
            self.check_open()
            for spec in specs:
                job_id = next(self.ids)
                job = FakeJob(spec, JobState(job_id, JobStatus.SUBMITTING), stamp,
                              self.root / str(job_id))
                self.move(job, JobStatus.SUBMITTING, UNCONFIRMED)
                self.jobs[job_id] = job
                ids.append(job_id)
        try:
            self.confirm(ids)
        except Exception:
            with self.lock:
                for job_id in ids:
                    if self.jobs[job_id].state.status == JobStatus.SUBMITTING:
                        del self.jobs[job_id]
            raise
        return ids

    def confirm(self, ids: Sequence[int]) -> None:
        with self.lock:
            confirmed = self.move_all(ids, JobStatus.RECEIVED, "Job accepted",
                                      [JobStatus.SUBMITTING])
            for job_id in confirmed:
                self.move(self.jobs[job_id], JobStatus.WAITING, "Pilot Agent Submission")
            self.start(confirmed, unless_held=True)

    def find_jobs(self, names: Sequence[str]) -> dict[str, list[int]]:
        wanted = set(names)
        found: dict[str, list[int]] = {}
        with self.lock:
            for job_id, job in self.jobs.items():
                if job.spec.name in wanted:
                    found.setdefault(job.spec.name, []).append(job_id)
        return found

    def select_jobs(self, selection: JobSelection = ANY_JOB) -> list[int]:
        s = selection
        if s.owner is not None and s.owner != self.user:
            return []
        with self.lock:
            return [job_id for job_id, job in self.jobs.items() if all(
                wanted is None or wanted == value for wanted, value in (
                    (s.status, job.state.status.value), (s.minor_status, job.state.minor_status),
                    (s.application_status, job.state.application_status),
                    (s.site, job.state.site), (s.job_group, job.spec.job_group),
                    (s.date, job.submitted[:10])))]

    def status(self, ids: Sequence[int]) -> dict[int, JobState]:
        with self.lock:
            return {i: self.jobs[i].state for i in ids if i in self.jobs}

    def stop(self, ids: Sequence[int], status: JobStatus, minor: str) -> None:
        """Move the active jobs of ``ids`` to the final ``status``; terminate their steps."""
        with self.lock:
            for job_id in self.move_all(ids, status, minor, ACTIVE):
                process = self.jobs[job_id].process
                if process is not None and process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):  # a session of its own
                        os.killpg(process.pid, signal.SIGTERM)

    def kill(self, ids: Sequence[int]) -> None:
        self.stop(ids, JobStatus.KILLED, "Marked for termination")

    def delete(self, ids: Sequence[int]) -> None:
        with self.lock:
            self.kill(ids)
            self.move_all(ids, JobStatus.DELETED, "Deleted by user",
                          [s for s in JobStatus if s != JobStatus.DELETED])

    def reschedule(self, ids: Sequence[int]) -> None:
        with self.lock:
            self.start(self.move_all(ids, JobStatus.WAITING, "Job Rescheduled", FINAL),
                       unless_held=True)

    def set_failed(self, ids: Sequence[int], reason: str) -> None:
        with self.lock:
            self.stop(ids, JobStatus.FAILED, reason)
            still = [i for i, s in self.status(ids).items() if s.status != JobStatus.FAILED]
        if still:
            raise BackendError(f"jobs not set to Failed: {still}")

    def job_log(self, job_id: int) -> str:
        log = self.job(job_id).folder / "std.out"
        return log.read_text(errors="replace") if log.exists() else ""

    def job_input_data(self, job_id: int) -> list[str]:
        spec = self.job(job_id).spec
        return [*spec.input_lfns, *spec.input_data]

    # --- running jobs: what DIRAC's JobWrapper does -------------------------------------------
    def work(self) -> None:
        """A worker thread: run the jobs handed over until told to stop (``None``)."""
        while (job_id := self.queue.get()) is not None:
            with self.lock:
                job = self.jobs[job_id]
                if not self.move(job, JobStatus.MATCHED, "Assigned",
                                 only_from=[JobStatus.WAITING]):
                    continue  # killed, deleted or forced while it waited
                job.run += 1
                job.state = replace(job.state, site=SITE)
                run = job.run
            try:
                self.run(job, run)
            except Exception:  # a bug here must end the job, not the worker
                self.fail(job, run, "Job stalled: worker died", "", traceback.format_exc())

    def fail(self, job: FakeJob, run: int, minor: str, application: str, detail: str) -> None:
        """End the run ``Failed`` (unless it was stopped meanwhile), the reason in the log."""
        with open(job.folder / "std.out", "a") as log:
            log.write(f"ERROR {minor}: {detail}\n")
        self.move(job, JobStatus.FAILED, minor, application, only_from=IN_FLIGHT, run=run)

    def run(self, job: FakeJob, run: int) -> None:
        """Stage the inputs into a fresh scratch folder, run the steps, register the output;
        each change only while the job is still in this run, in the state it expects."""
        spec, work = job.spec, job.folder / "work"
        shutil.rmtree(job.folder, ignore_errors=True)
        work.mkdir(parents=True)
        if not self.move(job, JobStatus.RUNNING, "Input Data Resolution",
                         only_from=[JobStatus.MATCHED], run=run):
            return
        try:
            for lfn in (*spec.input_lfns, *spec.input_data):
                self.get_file(lfn, work / Path(lfn).name)
            for sandbox_file in spec.input_sandbox:
                shutil.copy2(sandbox_file, work / Path(sandbox_file).name)
        except (PipelineError, OSError) as exc:
            return self.fail(job, run, "Input Data Resolution", "", str(exc))
        for step in spec.steps:
            program = Path(step[0]).name
            if not self.move(job, JobStatus.RUNNING, "Application", f"{program} running",
                             only_from=[JobStatus.RUNNING], run=run):
                return  # killed or forced to a final state meanwhile: stop here
            try:
                code = self.run_step(job, run, step)
            except OSError as exc:
                return self.fail(job, run, "Application Finished With Errors",
                                 f"{program} not found", str(exc))
            if code != 0:
                return self.fail(job, run, "Application Finished With Errors",
                                 f"{program} Exited With Status {code}", f"exit code {code}")
        if not self.move(job, JobStatus.COMPLETING, "Uploading Output Data",
                         only_from=[JobStatus.RUNNING], run=run):
            return
        output = work / spec.output_file
        if not output.is_file():
            return self.fail(job, run, "Application Finished With Errors",
                             "output file missing", str(output))
        data = output.read_bytes()
        with self.lock:  # the output is registered only if nothing stopped the job meanwhile
            if job.run == run and job.state.status == JobStatus.COMPLETING:
                try:
                    self.check_se(spec.output_se)
                    self.remove([spec.output_lfn])
                    self.register(spec.output_lfn, spec.output_se, data)
                except PipelineError as exc:
                    return self.fail(job, run, "Uploading Job OutputData", "", str(exc))
                self.move(job, JobStatus.DONE, "Execution Complete", "Job Finished Successfully")

    def run_step(self, job: FakeJob, run: int, step: Sequence[str]) -> int:
        """Run one step in the job's scratch folder, in-process if its program is one of
        ``programs`` (an exception is exit code 1), else as a subprocess in a session of its
        own, its output appended to the log; return its exit code."""
        with open(job.folder / "std.out", "a") as log:
            log.write(f"=== {' '.join(step)}\n")
            if step[0] in self.programs:
                try:
                    return self.programs[step[0]](list(step[1:]), job.folder / "work")
                except Exception:
                    log.write(traceback.format_exc())
                    return 1
            log.flush()
            with self.lock:
                if job.run != run or job.state.status != JobStatus.RUNNING:
                    return 0  # stopped meanwhile: start nothing, the next move ends the run
                process = job.process = subprocess.Popen(  # noqa: S603 - the job's own step
                    [sys.executable if step[0] == "python" else step[0], *step[1:]],
                    cwd=job.folder / "work", stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            return process.wait()
        finally:
            with self.lock:
                if job.process is process:  # not a later run's
                    job.process = None

    # --- files --------------------------------------------------------------------------------
    def check_se(self, se: str) -> str:
        if se not in self.ses:
            raise BackendError(f"unknown storage element {se!r}", f"known: {', '.join(self.ses)}")
        return se

    def register(self, lfn: str, se: str, data: bytes) -> RemoteFile:
        """Store ``data`` on ``se`` and catalog it as ``lfn``; refuse a registered LFN."""
        with self.lock:
            if validate_lfn(lfn) in self.catalog:
                raise BackendError(f"file already registered: {lfn}", "remove it first")
            self.storage[self.check_se(se)][lfn] = data
            entry = self.catalog[lfn] = RemoteFile(lfn, len(data), adler32_bytes(data), (se,))
            return entry

    def stored(self, lfn: str) -> bytes:
        """The bytes of ``lfn`` (all its replicas hold the same)."""
        with self.lock:
            if lfn not in self.catalog:
                raise DataError(f"no such file in the catalog: {lfn}")
            return self.storage[self.catalog[lfn].replicas[0]][lfn]

    def list_directory(self, path: str, recursive: bool = False) -> list[RemoteFile]:
        prefix = validate_lfn(path).rstrip("/") + "/"
        with self.lock:
            return [self.catalog[lfn] for lfn in sorted(self.catalog) if lfn.startswith(prefix)
                    and (recursive or "/" not in lfn[len(prefix):])]

    def path_level(self, path: str, doing: str) -> str:
        """Whether ``path`` is a file or a directory of the catalog (see ``usermeta.level_of``)."""
        below = path.rstrip("/") + "/"
        files_below = any(lfn.startswith(below) for lfn in self.catalog)
        return level_of(path, path in self.catalog, files_below, doing, self.user_metadata.values)

    def find_files(self, path: str, query: Mapping[str, Value]) -> list[str]:
        with self.lock:
            lfns = [f.lfn for f in self.list_directory(path, recursive=True)]
            return self.user_metadata.find(lfns, query)

    def set_metadata(self, path: str, metadata: Mapping[str, Value]) -> None:
        path = normalized(validate_lfn(path))
        with self.lock:
            self.user_metadata.set(path, self.path_level(
                path, f"set metadata {', '.join(metadata)} on"), metadata)

    def get_metadata(self, path: str) -> dict[str, Value]:
        path = normalized(validate_lfn(path))
        with self.lock:
            self.path_level(path, "read the metadata of")
            return self.user_metadata.get(path)

    def metadata(self, lfns: Sequence[str]) -> dict[str, RemoteFile]:
        with self.lock:
            return {lfn: self.catalog[lfn] for lfn in lfns if lfn in self.catalog}

    def get_file(self, lfn: str, destination: Path,
                 known: RemoteFile | None = None) -> str | None:
        data = self.stored(lfn)
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
        return adler32_bytes(data)

    def put_file(self, path: Path, lfn: str, se: str) -> RemoteFile:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"local file not found: {path}")
        return self.register(lfn, se, path.read_bytes())

    def replicate(self, lfn: str, se: str) -> None:
        with self.lock:
            self.storage[self.check_se(se)][lfn] = self.stored(lfn)
            self.catalog[lfn] = replace(self.catalog[lfn], replicas=tuple(
                sorted(s for s in self.storage if lfn in self.storage[s])))

    def remove(self, lfns: Sequence[str]) -> None:
        with self.lock:
            for lfn in lfns:
                if self.catalog.pop(lfn, None) is not None:
                    self.user_metadata.values.pop(lfn, None)
                    for stored in self.storage.values():
                        stored.pop(lfn, None)
