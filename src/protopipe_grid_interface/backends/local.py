"""The embedded backend: a file catalog, storage elements and a job queue under one folder.

It mirrors DIRAC closely enough that the workflow cannot tell them apart: LFNs map to files on
storage elements (one folder per SE) with size and adler32 in a catalog; a submission is DIRAC's
transaction (jobs created ``Submitting``, then confirmed to ``Waiting``); a background queue
runner (``local_worker``) matches each Waiting job to one of the backend's ``sites`` it is not
banned from (none left: it stays Waiting, as on DIRAC), starts as many as there are cores, each
in its own scratch folder with its input data staged, runs the job's steps in the payload
environment, uploads and registers the output, and ends ``Done`` or ``Failed`` with DIRAC's
minor and application statuses. :meth:`LocalBackend.inject` makes chosen jobs or sites fail in
any of the ways DIRAC reports (``faults``). Everything lives in ``root``::

    root/catalog.sqlite     files, replicas, user metadata, jobs, job history, injected faults
    root/se/<SE>/<lfn>      stored replicas
    root/jobs/<id>/         each job's scratch folder and std.out
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from .. import sqlite
from ..checksums import copy_atomic, copy_into, same_checksum
from ..exceptions import BackendError, DataError, InputError
from ..iterutils import chunked
from ..models import (
    ANY_JOB,
    UNCONFIRMED,
    FailureClass,
    JobSelection,
    JobSpec,
    JobState,
    JobStatus,
    RemoteFile,
)
from ..paths import validate_lfn
from . import faults
from .base import Backend
from .faults import Fault
from .usermeta import Field, UserMetadata, Value, ancestors, level_of, normalized

DEFAULT_SES = ("LOCAL-SE", "LOCAL-SE2")
QUEUED = frozenset({JobStatus.WAITING, JobStatus.MATCHED, JobStatus.RUNNING,
                    JobStatus.COMPLETING})
#: the first site of the local backend
SITE = "LOCAL.localhost.xx"
#: the sites a local backend runs jobs at unless told otherwise
DEFAULT_SITES = (SITE, "LOCAL.otherhost.xx")
VO = "vo.cta.in2p3.fr"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    lfn TEXT PRIMARY KEY, size INTEGER NOT NULL, checksum TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replicas (
    lfn TEXT NOT NULL REFERENCES files(lfn) ON DELETE CASCADE, se TEXT NOT NULL,
    path TEXT NOT NULL, PRIMARY KEY (lfn, se));
CREATE TABLE IF NOT EXISTS meta_fields (
    name TEXT PRIMARY KEY, level TEXT NOT NULL, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta_values (
    path TEXT NOT NULL, name TEXT NOT NULL REFERENCES meta_fields(name), value NOT NULL,
    PRIMARY KEY (path, name));
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, job_group TEXT NOT NULL,
    spec TEXT NOT NULL, env TEXT NOT NULL, status TEXT NOT NULL,
    minor_status TEXT NOT NULL DEFAULT '', application_status TEXT NOT NULL DEFAULT '',
    site TEXT NOT NULL DEFAULT '', pid INTEGER, submitted TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_by_name ON jobs(name);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status);
CREATE TABLE IF NOT EXISTS job_history (
    id INTEGER NOT NULL, status TEXT NOT NULL, minor_status TEXT NOT NULL,
    application_status TEXT NOT NULL, time TEXT NOT NULL);
"""


def daemonize(argv: list[str], stdin: int, output: int) -> None:
    """Start ``argv`` detached (double fork, new session): no zombie, no handle to keep."""
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        try:
            os.setsid()
            if os.fork() == 0:
                os.dup2(stdin, 0)
                os.dup2(output, 1)
                os.dup2(output, 2)
                os.execv(argv[0], argv)
        finally:
            os._exit(0)
    os.waitpid(child, 0)


def now() -> str:
    """UTC timestamp as DIRAC prints it."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def connect(path: Path) -> sqlite3.Connection:
    """Open the catalog database, shared safely by the CLI, the queue runner and the jobs."""
    conn = sqlite.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(SCHEMA + faults.SCHEMA)
    return conn


class LocalBackend(Backend):
    """Jobs as local processes, files in a local catalog; see the module docstring."""

    name = "local"
    root: Path

    def __init__(
        self,
        root: Path,
        payload_env: Path | None = None,
        ses: Sequence[str] = DEFAULT_SES,
        max_parallel: int | None = None,
        user: str | None = None,
        sites: Sequence[str] = DEFAULT_SITES,
    ) -> None:
        if not sites or len(set(sites)) != len(sites):
            raise InputError(f"local backend sites {list(sites)}: expected distinct names",
                             f"for example {', '.join(DEFAULT_SITES)}")
        self.root = Path(root).resolve()
        self.payload_env = payload_env
        self.ses = list(ses)
        self.sites = list(sites)
        self.max_parallel = max_parallel or os.cpu_count() or 1
        self.user = user or getpass.getuser()
        self.local = threading.local()
        connect(self.root / "catalog.sqlite").close()

    def __getstate__(self) -> dict[str, object]:
        """Picklable (for download worker processes): connections stay behind."""
        state = dict(self.__dict__)
        del state["local"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.local = threading.local()

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the catalog (downloads run in threads)."""
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = connect(self.root / "catalog.sqlite")
        return conn

    # --- helpers ------------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction on this thread's connection (see ``sqlite.transaction``)."""
        return sqlite.transaction(self.db)

    def replica_path(self, lfn: str, se: str) -> Path:
        """Where the replica of ``lfn`` on ``se`` is stored."""
        return self.root / "se" / se / validate_lfn(lfn).lstrip("/")

    def check_se(self, se: str) -> str:
        if se not in self.ses:
            raise BackendError(f"unknown storage element {se!r}", f"known: {', '.join(self.ses)}")
        return se

    # --- identity -----------------------------------------------------------------------------
    def home(self) -> str:
        return f"/{VO}/user/{self.user[0]}/{self.user}"

    def storage_elements(self) -> list[str]:
        return list(self.ses)

    # --- jobs ---------------------------------------------------------------------------------
    def submit(self, specs: Sequence[JobSpec]) -> list[int]:
        """Create the jobs ``Submitting`` in one transaction, confirm them in a second one (as
        DIRAC's bulk submission does), so the window a killed client leaves exists here too."""
        if not specs:
            return []
        env = str(self.payload_env or "")
        stamp = now()
        ids: list[int] = []
        with self.transaction() as db:
            for spec in specs:
                cursor = db.execute(
                    "INSERT INTO jobs (name, job_group, spec, env, status, minor_status, "
                    "submitted, updated) VALUES (?, ?, ?, ?, 'Submitting', ?, ?, ?)",
                    (spec.name, spec.job_group, json.dumps(spec.to_dict()), env, UNCONFIRMED,
                     stamp, stamp),
                )
                job_id = int(cursor.lastrowid or 0)
                ids.append(job_id)
                db.execute("INSERT INTO job_history VALUES (?, 'Submitting', ?, '', ?)",
                           (job_id, UNCONFIRMED, stamp))
        try:
            self.confirm(ids)
        except Exception:
            with self.transaction() as db:  # confirmed jobs or none
                for chunk in chunked(ids, 500):
                    db.execute(f"DELETE FROM jobs WHERE status = 'Submitting' AND id IN "
                               f"({','.join('?' * len(chunk))})", chunk)  # noqa: S608
            raise
        return ids

    def confirm(self, ids: Sequence[int]) -> None:
        stamp = now()
        confirmed: list[int] = []
        with self.transaction() as db:
            for chunk in chunked([int(i) for i in ids], 500):
                marks = ",".join("?" * len(chunk))
                confirmed += [int(i) for (i,) in db.execute(
                    f"SELECT id FROM jobs WHERE status = 'Submitting' AND id IN ({marks})",  # noqa: S608
                    chunk)]
            for job_id in confirmed:
                db.execute("UPDATE jobs SET status = 'Waiting', minor_status = "
                           "'Pilot Agent Submission', updated = ? WHERE id = ?", (stamp, job_id))
                db.executemany("INSERT INTO job_history VALUES (?, ?, ?, '', ?)",
                               [(job_id, "Received", "Job accepted", stamp),
                                (job_id, "Waiting", "Pilot Agent Submission", stamp)])
        if confirmed:
            self.ensure_runner()

    def runner_alive(self) -> bool:
        """True while a queue runner holds the lock."""
        with open(self.root / "runner.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
        return False

    def ensure_runner(self) -> None:
        """Start the queue runner in the background; it exits by itself when the queue is empty."""
        argv = [sys.executable, "-m", "protopipe_grid_interface.backends.local_worker",
                "queue", str(self.root), str(self.max_parallel), *self.sites]
        log = os.open(self.root / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            daemonize(argv, null, log)
        finally:
            os.close(log)
            os.close(null)

    def find_jobs(self, names: Sequence[str]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for chunk in chunked(list(names), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT name, id FROM jobs WHERE name IN ({marks}) ORDER BY id", chunk  # noqa: S608
            )
            for name, job_id in rows:
                found.setdefault(name, []).append(int(job_id))
        return found

    def select_jobs(self, selection: JobSelection = ANY_JOB) -> list[int]:
        if selection.owner is not None and selection.owner != self.user:
            return []  # every local job belongs to the local user
        query, args = "SELECT id FROM jobs WHERE 1 = 1", []
        for column, value in (("status", selection.status),
                              ("minor_status", selection.minor_status),
                              ("application_status", selection.application_status),
                              ("site", selection.site), ("job_group", selection.job_group),
                              ("substr(submitted, 1, 10)", selection.date)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        return [int(row[0]) for row in self.db.execute(query + " ORDER BY id", args)]

    def status(self, ids: Sequence[int]) -> dict[int, JobState]:
        states: dict[int, JobState] = {}
        for chunk in chunked(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT id, status, minor_status, application_status, site FROM jobs "
                f"WHERE id IN ({marks})", chunk  # noqa: S608
            )
            for job_id, status, minor, app, site in rows:
                states[int(job_id)] = JobState(int(job_id), JobStatus(status), minor, app, site)
        if any(s.status in QUEUED for s in states.values()) and not self.runner_alive():
            self.ensure_runner()  # the runner died (reboot, kill): start another, it recovers
        return states

    def set_status(
        self, job_id: int, status: JobStatus, minor: str, application: str = "",
        only_from: Sequence[JobStatus] = (), site: str | None = None,
    ) -> bool:
        """Move one job to ``status`` (and to ``site`` if given); with ``only_from``, only if it
        is in one of those states."""
        stamp = now()
        with self.transaction() as db:
            query = ("UPDATE jobs SET status = ?, minor_status = ?, application_status = ?, "
                     "site = coalesce(?, site), updated = ? WHERE id = ?")
            args: list[object] = [status.value, minor, application, site, stamp, job_id]
            if only_from:
                query += f" AND status IN ({','.join('?' * len(only_from))})"
                args += [s.value for s in only_from]
            changed = db.execute(query, args).rowcount > 0
            if changed:
                db.execute("INSERT INTO job_history VALUES (?, ?, ?, ?, ?)",
                           (job_id, status.value, minor, application, stamp))
        return changed

    # --- the queue runner's view ------------------------------------------------------------
    def job_pids(self, statuses: Sequence[JobStatus]) -> list[tuple[int, int | None]]:
        """(id, wrapper process id) of the jobs in ``statuses``."""
        marks = ",".join("?" * len(statuses))
        rows = self.db.execute(f"SELECT id, pid FROM jobs WHERE status IN ({marks})",  # noqa: S608
                               [s.value for s in statuses])
        return [(int(job_id), pid) for job_id, pid in rows]

    def site_for(self, job_id: int, banned: Sequence[str]) -> str | None:
        """The site a job runs at: its id spreads jobs over the sites it is not banned from."""
        allowed = [site for site in self.sites if site not in banned]
        return allowed[(job_id - 1) % len(allowed)] if allowed else None

    def match_waiting(self, limit: int) -> list[int]:
        """Match up to ``limit`` Waiting jobs, oldest first, each to its site; skip those
        banned from every site or held by a ``hold`` fault (they stay Waiting)."""
        matched: list[int] = []
        last = 0
        if limit <= 0:
            return matched
        with self.transaction() as db:
            held = faults.holds(db)
            while len(matched) < limit:
                rows = db.execute("SELECT id, name, spec FROM jobs WHERE status = 'Waiting' "
                                  "AND id > ? ORDER BY id LIMIT 100", (last,)).fetchall()
                if not rows:
                    break
                for job_id, name, spec in rows:
                    last = job_id
                    site = self.site_for(job_id, json.loads(spec).get("banned_sites", ()))
                    if site is None or any(fault.hits(name, site) for fault in held):
                        continue
                    stamp = now()
                    db.execute("UPDATE jobs SET status = 'Matched', minor_status = 'Assigned', "
                               "application_status = '', site = ?, updated = ? WHERE id = ?",
                               (site, stamp, job_id))
                    db.execute("INSERT INTO job_history VALUES (?, 'Matched', 'Assigned', '', ?)",
                               (job_id, stamp))
                    matched.append(int(job_id))
                    if len(matched) == limit:
                        break
        return matched

    def has_waiting(self) -> bool:
        """True while a job is Waiting (matchable or not)."""
        row = self.db.execute("SELECT 1 FROM jobs WHERE status = 'Waiting' LIMIT 1")
        return row.fetchone() is not None

    def set_process(self, job_id: int, pid: int) -> None:
        """Record the process running a job (its wrapper)."""
        self.db.execute("UPDATE jobs SET pid = ? WHERE id = ?", (pid, job_id))

    # --- fault injection (see ``faults``) -----------------------------------------------------
    def inject(self, fault: Fault) -> int:
        """Make the jobs ``fault`` matches fail as it says, from their next attempt on; return
        its id. Other processes on the same root (the queue runner, the jobs, a ``run``
        command) see it at once."""
        return faults.record(self.db, fault)

    def injected_faults(self) -> list[Fault]:
        """The faults in force (``times``: the attempts each still hits)."""
        return faults.recorded(self.db)

    def clear_faults(self) -> None:
        """Remove every injected fault: held jobs are matched again."""
        faults.clear(self.db)

    def take_fault(self, job_id: int) -> FailureClass | None:
        """The failure this attempt of a (matched) job must go through, if a fault hits it."""
        name, site = self.db.execute("SELECT name, site FROM jobs WHERE id = ?",
                                     (job_id,)).fetchone()
        return faults.take(self.db, name, site)

    def kill(self, ids: Sequence[int]) -> None:
        active = [s for s in self.status(ids).values() if not s.status.is_final]
        for state in active:
            row = self.db.execute("SELECT pid FROM jobs WHERE id = ?", (state.backend_id,))
            pid = row.fetchone()[0]
            if self.set_status(state.backend_id, JobStatus.KILLED, "Marked for termination",
                               only_from=[s for s in JobStatus if not s.is_final]) and pid:
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def delete(self, ids: Sequence[int]) -> None:
        self.kill(ids)
        for job_id in ids:
            self.set_status(job_id, JobStatus.DELETED, "Deleted by user",
                            only_from=[s for s in JobStatus if s != JobStatus.DELETED])

    def reschedule(self, ids: Sequence[int]) -> None:
        for job_id in ids:
            self.set_status(job_id, JobStatus.WAITING, "Job Rescheduled", site="",
                            only_from=sorted(s for s in JobStatus if s.is_final))
        self.ensure_runner()

    def set_failed(self, ids: Sequence[int], reason: str) -> None:
        for job_id in ids:
            self.set_status(job_id, JobStatus.FAILED, reason,
                            only_from=[s for s in JobStatus if not s.is_final])
        still = [s.backend_id for s in self.status(ids).values() if s.status != JobStatus.FAILED]
        if still:
            raise BackendError(f"jobs not set to Failed: {still}")

    def job_dir(self, job_id: int) -> Path:
        return self.root / "jobs" / str(job_id)

    def job_log(self, job_id: int) -> str:
        log = self.job_dir(job_id) / "std.out"
        if not self.status([job_id]):
            raise BackendError(f"no job {job_id} on the local backend in {self.root}",
                               "is this the analysis' local backend (--local-root)?")
        return log.read_text(errors="replace") if log.exists() else ""

    def job_spec(self, job_id: int) -> tuple[JobSpec, str]:
        """The spec and payload environment a job was submitted with."""
        row = self.db.execute("SELECT spec, env FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise BackendError(f"no job {job_id} on the local backend in {self.root}",
                               "is this the analysis' local backend (--local-root)?")
        return JobSpec.from_dict(json.loads(row[0])), row[1]

    def job_input_data(self, job_id: int) -> list[str]:
        spec, _ = self.job_spec(job_id)
        return [*spec.input_lfns, *spec.input_data]

    # --- files --------------------------------------------------------------------------------
    def lfns_below(self, path: str, recursive: bool = True, limit: int = -1) -> list[str]:
        """The LFNs inside the directory ``path`` (with ``recursive``, in its subdirectories
        too), sorted."""
        prefix = validate_lfn(path).rstrip("/") + "/"
        rows = self.db.execute(
            "SELECT lfn FROM files WHERE lfn >= ? AND lfn < ? ORDER BY lfn LIMIT ?",
            (prefix, prefix[:-1] + "0", limit),
        )
        return [lfn for (lfn,) in rows if recursive or "/" not in lfn[len(prefix):]]

    def list_directory(self, path: str, recursive: bool = False) -> list[RemoteFile]:
        names = self.lfns_below(path, recursive)
        found = self.metadata(names)
        return [found[lfn] for lfn in names]

    def find_files(self, path: str, query: Mapping[str, Value]) -> list[str]:
        path = normalized(validate_lfn(path))
        return self.user_metadata(self.db, path).find(self.lfns_below(path), query)

    def set_metadata(self, path: str, metadata: Mapping[str, Value]) -> None:
        path = normalized(validate_lfn(path))
        with self.transaction() as db:
            known = self.user_metadata(db, path)
            doing = f"set metadata {', '.join(metadata)} on"
            values, new = known.set(path, self.path_level(path, known, doing), metadata)
            db.executemany("INSERT INTO meta_fields VALUES (?, ?, ?)",
                           [(key, f.level, f.type) for key, f in new.items()])
            db.executemany("INSERT OR REPLACE INTO meta_values VALUES (?, ?, ?)",
                           [(path, key, value) for key, value in values.items()])

    def get_metadata(self, path: str) -> dict[str, Value]:
        path = normalized(validate_lfn(path))
        known = self.user_metadata(self.db, path)
        self.path_level(path, known, "read the metadata of")
        return known.get(path)

    def user_metadata(self, db: sqlite3.Connection, path: str) -> UserMetadata:
        """The declared fields, and the own metadata of ``path``, of the directories above it
        and of the paths below it."""
        fields = {name: Field(lvl, kind) for name, lvl, kind in
                  db.execute("SELECT name, level, type FROM meta_fields")}
        above = [*ancestors(path), path]
        below = path.rstrip("/") + "/"
        rows = db.execute(
            f"SELECT path, name, value FROM meta_values WHERE path IN "  # noqa: S608
            f"({','.join('?' * len(above))}) OR (path >= ? AND path < ?)",
            [*above, below, below[:-1] + "0"])
        values: dict[str, dict[str, Value]] = {}
        for place, name, value in rows:
            values.setdefault(place, {})[name] = value
        return UserMetadata(fields, values)

    def path_level(self, path: str, known: UserMetadata, doing: str) -> str:
        """Whether ``path`` is a file or a directory of the catalog (see ``usermeta.level_of``)."""
        return level_of(path, path in self.metadata([path]), bool(self.lfns_below(path, limit=1)),
                     doing, known.values)

    def metadata(self, lfns: Sequence[str]) -> dict[str, RemoteFile]:
        found: dict[str, RemoteFile] = {}
        for chunk in chunked(list(lfns), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT f.lfn, f.size, f.checksum, group_concat(r.se) FROM files f "
                f"LEFT JOIN replicas r ON r.lfn = f.lfn WHERE f.lfn IN ({marks}) "  # noqa: S608
                "GROUP BY f.lfn", chunk,
            )
            for lfn, size, checksum, ses in rows:
                replicas = tuple(sorted(ses.split(","))) if ses else ()
                found[lfn] = RemoteFile(lfn, int(size), checksum, replicas)
        return found

    def get_file(self, lfn: str, destination: Path,
                 known: RemoteFile | None = None) -> str | None:
        meta = known if known is not None and known.lfn == lfn and known.replicas else \
            self.metadata([lfn]).get(lfn)
        if meta is None or not meta.replicas:
            raise DataError(f"no such file in the local catalog in {self.root}: {lfn}")
        errors = []
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        for se in meta.replicas:
            try:  # written in place: collect.fetch_one passes a .part name and renames it
                checksum = copy_into(self.replica_path(lfn, se), destination)
            except OSError as exc:
                errors.append(f"{se}: {exc.strerror}")
                continue
            if same_checksum(checksum, meta.checksum):
                return checksum
            destination.unlink()
            errors.append(f"{se}: adler32 {checksum}, catalog says {meta.checksum}")
        raise DataError(f"no intact replica of {lfn}", "; ".join(errors))

    def put_file(self, path: Path, lfn: str, se: str) -> RemoteFile:
        self.check_se(se)
        path = Path(path)
        if not path.is_file():
            raise DataError(f"local file not found: {path}")
        if lfn in self.metadata([lfn]):
            raise BackendError(f"file already registered: {lfn}", "remove it first")
        final = self.replica_path(lfn, se)
        staging = final.with_name(f"{final.name}.{os.getpid()}.{threading.get_ident()}.upload")
        checksum = copy_atomic(path, staging)
        size = staging.stat().st_size
        try:
            with self.transaction() as db:
                if db.execute("SELECT 1 FROM files WHERE lfn = ?", (lfn,)).fetchone():
                    raise BackendError(f"file already registered: {lfn}", "remove it first")
                db.execute("INSERT INTO files VALUES (?, ?, ?, ?)", (lfn, size, checksum, now()))
                db.execute("INSERT INTO replicas VALUES (?, ?, ?)", (lfn, se, str(final)))
                os.replace(staging, final)
        finally:
            staging.unlink(missing_ok=True)
        return RemoteFile(lfn, size, checksum, (se,))

    def replicate(self, lfn: str, se: str) -> None:
        self.check_se(se)
        meta = self.metadata([lfn]).get(lfn)
        if meta is None:
            raise DataError(f"no such file in the local catalog in {self.root}: {lfn}")
        if se in meta.replicas:
            return
        source = self.replica_path(lfn, meta.replicas[0])
        checksum = copy_atomic(source, self.replica_path(lfn, se))
        if checksum != meta.checksum:
            self.replica_path(lfn, se).unlink()
            raise DataError(f"replica of {lfn} on {meta.replicas[0]} is corrupt",
                            f"adler32 {checksum}, catalog says {meta.checksum}")
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO replicas VALUES (?, ?, ?)",
                       (lfn, se, str(self.replica_path(lfn, se))))

    def remove(self, lfns: Sequence[str]) -> None:
        found = self.metadata(lfns)
        for lfn, meta in found.items():
            with self.transaction() as db:
                db.execute("DELETE FROM replicas WHERE lfn = ?", (lfn,))
                db.execute("DELETE FROM files WHERE lfn = ?", (lfn,))
                db.execute("DELETE FROM meta_values WHERE path = ?", (lfn,))
            for se in meta.replicas:
                self.replica_path(lfn, se).unlink(missing_ok=True)

