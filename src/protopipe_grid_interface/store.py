"""The analysis state database (SQLite): every planned and submitted job, every command run.

All SQL of the package's own state lives here. A job is keyed by its name, which the planner
makes unique and deterministic; its spec hash tells whether a re-plan changed it. Submitting is
two-phase (``Sending`` is committed *before* the backend call, the ids *after* it), so a
command killed in between is recovered by looking the names up on the backend, never by
submitting again. The schema version is kept in ``PRAGMA user_version``; older databases are
migrated when opened (:data:`MIGRATIONS`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from . import sqlite
from .exceptions import DataError
from .iterutils import chunked
from .models import JobSpec, JobState, JobStatus, Particle, Stage, content_hash

SCHEMA_VERSION = 6

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    particle TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    output_lfn TEXT NOT NULL UNIQUE,
    backend TEXT,
    backend_id INTEGER,
    status TEXT NOT NULL,
    minor_status TEXT NOT NULL DEFAULT '',
    application_status TEXT NOT NULL DEFAULT '',
    site TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    output_size INTEGER,
    output_checksum TEXT,
    updated TEXT NOT NULL,
    not_before TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_stage ON jobs(stage, particle);
CREATE INDEX IF NOT EXISTS jobs_by_backend_id ON jobs(backend, backend_id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, stage, particle);
-- each job's spec (kilobytes: its commands and input LFNs) apart, so that reading the jobs'
-- states (100,000 rows at every poll) never reads a spec
CREATE TABLE IF NOT EXISTS specs (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    name TEXT NOT NULL REFERENCES jobs(name),
    attempt INTEGER NOT NULL,
    backend TEXT NOT NULL,
    backend_id INTEGER NOT NULL,
    submitted TEXT NOT NULL,
    PRIMARY KEY (name, attempt)
);
CREATE TABLE IF NOT EXISTS history (
    name TEXT NOT NULL,
    backend_id INTEGER,
    status TEXT NOT NULL,
    minor_status TEXT NOT NULL,
    application_status TEXT NOT NULL,
    time TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    argv TEXT NOT NULL,
    version TEXT NOT NULL,
    config_hashes TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS downloads (
    lfn TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    state TEXT NOT NULL,
    updated TEXT NOT NULL,
    mtime_ns INTEGER
);
CREATE TABLE IF NOT EXISTS merges (
    path TEXT PRIMARY KEY,
    inputs TEXT NOT NULL,
    files INTEGER NOT NULL,
    showers INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    merged TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    step TEXT NOT NULL,
    particle TEXT NOT NULL,
    figures TEXT NOT NULL,
    warnings TEXT NOT NULL,
    recorded TEXT NOT NULL,
    PRIMARY KEY (step, particle)
);
CREATE TABLE IF NOT EXISTS fingerprints (
    stage TEXT NOT NULL,
    particle TEXT NOT NULL,
    inputs TEXT NOT NULL,
    recorded TEXT NOT NULL,
    PRIMARY KEY (stage, particle)
);
CREATE TABLE IF NOT EXISTS outcomes (
    name TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    backend_id INTEGER,
    site TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    action TEXT NOT NULL,
    time TEXT NOT NULL,
    PRIMARY KEY (name, attempt)
);
CREATE INDEX IF NOT EXISTS outcomes_by_site ON outcomes(site, time);
CREATE TABLE IF NOT EXISTS bans (
    site TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    banned TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    step TEXT NOT NULL,
    particle TEXT NOT NULL,
    digest TEXT NOT NULL,
    detail TEXT NOT NULL,
    finished TEXT NOT NULL,
    seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (step, particle)
);
"""


#: SQL taking a database from version N - 1 to N, for N > 1
MIGRATIONS: dict[int, str] = {
    # 2: our own "submission under way" state was called Submitting, like DIRAC's state of an
    # unconfirmed job; it is now Sending. Ours is the one recorded without a backend id.
    2: """
    UPDATE jobs SET status = 'Sending' WHERE status = 'Submitting' AND (
        SELECT h.backend_id FROM history h WHERE h.name = jobs.name
        ORDER BY h.rowid DESC LIMIT 1) IS NULL;
    UPDATE history SET status = 'Sending' WHERE status = 'Submitting' AND backend_id IS NULL;
    """,
    # 3: the download manifest keeps each verified file's mtime (a rerun skips those files
    # still as they were); the merges table (created by SCHEMA) records each merge's inputs
    3: "ALTER TABLE downloads ADD COLUMN mtime_ns INTEGER",
    # 4: the results table (what each step found: rows merged, model scores, IRF bins, canary
    # outcomes) and the fingerprints of each stage's inputs, both created by SCHEMA
    4: "",
    # 5: what ``run`` decided about each finished attempt (outcomes), the sites it banned,
    # the steps it finished (tables created by SCHEMA), and when a retried job may be sent
    5: "ALTER TABLE jobs ADD COLUMN not_before TEXT",
    # 6: the specs in a table of their own (created by SCHEMA): a job's row was kilobytes of
    # spec, read (through its overflow pages) by every look at the jobs' states
    6: """
    INSERT INTO specs (name, spec) SELECT name, spec FROM jobs;
    ALTER TABLE jobs DROP COLUMN spec
    """,
}


#: enum members by value: faster than calling the enum for each of 100,000 rows
STAGES = {stage.value: stage for stage in Stage}
PARTICLES = {particle.value: particle for particle in Particle}
STATUSES = {status.value: status for status in JobStatus}
#: SQL: a job that is not a stage's canary (``plan.CANARY_SUFFIX``)
NOT_CANARY = "name NOT LIKE '%\\_canary' ESCAPE '\\'"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of the jobs table."""

    name: str
    stage: Stage
    particle: Particle
    spec: JobSpec
    backend: str | None
    backend_id: int | None
    status: JobStatus
    minor_status: str
    application_status: str
    site: str
    attempts: int
    output_size: int | None
    output_checksum: str | None
    #: when the state last changed (ISO 8601, UTC)
    updated: str
    #: a job to retry is not sent before this time (ISO 8601, UTC)
    not_before: str | None = None

    @property
    def output_lfn(self) -> str:
        """Where the job's output goes (as :attr:`JobRow.output_lfn`)."""
        return self.spec.output_lfn


class JobRow(NamedTuple):
    """A row of the jobs table without its spec (:meth:`Store.job_rows`): what following and
    deciding about 100,000 jobs needs, read without decoding 100,000 specs (a named tuple:
    made twice as fast as a frozen dataclass). Its fields are those of :class:`JobRecord` of
    the same names."""

    name: str
    stage: Stage
    particle: Particle
    output_lfn: str
    backend: str | None
    backend_id: int | None
    status: JobStatus
    minor_status: str
    application_status: str
    site: str
    attempts: int
    output_size: int | None
    output_checksum: str | None
    updated: str
    not_before: str | None


@dataclass(frozen=True, slots=True)
class Download:
    """A row of the download manifest: where an LFN went and how its download ended
    (``fetched``, ``present``, ``failed``); ``mtime_ns`` of the file once verified."""

    lfn: str
    path: Path
    size: int
    checksum: str
    state: str
    mtime_ns: int | None = None


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """A merge this analysis made: into ``path`` (``size`` bytes, modified at ``mtime_ns``),
    of the inputs whose digest is ``inputs``."""

    path: Path
    inputs: str
    files: int
    showers: int
    size: int
    mtime_ns: int

    def made(self, path: Path) -> bool:
        """True if ``path`` is still the file this merge made."""
        try:
            info = path.stat()
        except FileNotFoundError:
            return False
        return (info.st_size, info.st_mtime_ns) == (self.size, self.mtime_ns)


@dataclass(frozen=True, slots=True)
class Result:
    """What a step found, as figures people read and the warnings they must not miss: one row
    per step and particle ("" for a step of the whole analysis), the latest run's."""

    step: str
    particle: str
    figures: dict[str, Any]
    warnings: tuple[str, ...]
    recorded: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt of a job ended (``done`` or its failure class), where, and what ``run``
    did about it (``retry``, ``stop``, ``accepted``)."""

    name: str
    attempt: int
    backend_id: int | None
    site: str
    outcome: str
    detail: str
    action: str
    time: str = ""


class Store:
    """Open (and create or migrate) the state database at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = sqlite.connect(self.path)
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DataError(f"{self.path}: state database schema {version} is newer than this "
                            f"tool's ({SCHEMA_VERSION})", "upgrade protopipe-grid-interface")
        self.db.executescript(SCHEMA)
        if version < SCHEMA_VERSION:
            self.migrate(version)

    def migrate(self, version: int) -> None:
        """Take a database of schema ``version`` (0: just created) to :data:`SCHEMA_VERSION`,
        in one transaction."""
        steps = range(version + 1, SCHEMA_VERSION + 1) if version else range(0)
        with self.transaction() as db:
            for target in steps:
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction: all or nothing, even under ``kill -9``."""
        return sqlite.transaction(self.db)

    # --- provenance ---------------------------------------------------------------------------
    def start_command(self, argv: Sequence[str], version: str,
                      config_hashes: dict[str, str]) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO commands (argv, version, config_hashes, started) VALUES (?, ?, ?, ?)",
                (json.dumps(list(argv)), version, json.dumps(config_hashes, sort_keys=True), now()),
            )
        return int(cursor.lastrowid or 0)

    def finish_command(self, command_id: int, exit_code: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE commands SET finished = ?, exit_code = ? WHERE id = ?",
                       (now(), exit_code, command_id))

    def commands(self) -> list[dict[str, object]]:
        rows = self.db.execute(
            "SELECT id, argv, version, config_hashes, started, finished, exit_code FROM commands "
            "ORDER BY id")
        keys = ("id", "argv", "version", "config_hashes", "started", "finished", "exit_code")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # --- planning -----------------------------------------------------------------------------
    def add_planned(self, specs: Iterable[JobSpec]) -> tuple[int, int]:
        """Record specs not seen before as ``Planned``; refresh specs of still-planned jobs.

        Returns (new, changed). Jobs already submitted keep the spec they were submitted with.
        """
        specs = list(specs)
        stamp = now()
        inserts: list[tuple[str, str, str, str, str, str]] = []
        updates: list[tuple[str, str, str, str]] = []
        blobs: list[tuple[str, str]] = []
        with self.transaction() as db:
            known: dict[str, tuple[str, str]] = {}
            for chunk in chunked(sorted({spec.name for spec in specs}), 500):
                known.update((name, (digest, status)) for name, digest, status in db.execute(
                    "SELECT name, spec_hash, status FROM jobs WHERE name IN "
                    f"({','.join('?' * len(chunk))})", chunk))
            for spec in specs:
                blob = spec.to_json()
                digest = content_hash(blob)
                row = known.get(spec.name)
                if row is not None and (row[0] == digest or row[1] != JobStatus.PLANNED.value):
                    continue
                if row is None:
                    inserts.append((spec.name, spec.stage.value, spec.particle.value, digest,
                                    spec.output_lfn, stamp))
                    blobs.append((spec.name, blob))
                else:
                    updates.append((digest, spec.output_lfn, stamp, spec.name))
                    blobs.append((spec.name, blob))
                known[spec.name] = (digest, JobStatus.PLANNED.value)
            db.executemany("INSERT INTO jobs (name, stage, particle, spec_hash, output_lfn, "
                           "status, updated) VALUES (?, ?, ?, ?, ?, 'Planned', ?)", inserts)
            db.executemany("UPDATE jobs SET spec_hash = ?, output_lfn = ?, updated = ? "
                           "WHERE name = ?", updates)
            db.executemany("INSERT OR REPLACE INTO specs (name, spec) VALUES (?, ?)", blobs)
        return len(inserts), len(updates)

    # --- reading ------------------------------------------------------------------------------
    def _select(
        self,
        columns: str,
        stage: Stage | None,
        particle: Particle | None,
        statuses: Iterable[JobStatus] | None,
        names: Sequence[str] | None,
        source: str = "jobs",
    ) -> list[tuple[Any, ...]]:
        """``columns`` of the jobs (``source``: with their specs too) matching every filter
        given, in name order."""
        query = f"SELECT {columns} FROM {source} WHERE 1 = 1"
        args: list[object] = []
        if stage is not None:
            query += " AND stage = ?"
            args.append(stage.value)
        if particle is not None:
            query += " AND particle = ?"
            args.append(particle.value)
        if statuses is not None:
            wanted = [s.value for s in statuses]
            query += f" AND status IN ({','.join('?' * len(wanted))})"
            args += wanted
        if names is None:
            return self.db.execute(query + " ORDER BY name", args).fetchall()
        rows: list[tuple[Any, ...]] = []
        for chunk in chunked(list(names), 500):
            rows += self.db.execute(
                query + f" AND name IN ({','.join('?' * len(chunk))})", [*args, *chunk]
            ).fetchall()
        rows.sort(key=lambda row: str(row[0]))
        return rows

    def jobs(
        self,
        stage: Stage | None = None,
        particle: Particle | None = None,
        statuses: Iterable[JobStatus] | None = None,
        names: Sequence[str] | None = None,
    ) -> list[JobRecord]:
        """Jobs matching every filter given, in name order."""
        rows = self._select(
            "name, stage, particle, spec, backend, backend_id, status, minor_status, "
            "application_status, site, attempts, output_size, output_checksum, updated, "
            "not_before", stage, particle, statuses, names, "jobs JOIN specs USING (name)")
        return [
            JobRecord(name, STAGES[st], PARTICLES[pa], JobSpec.from_dict(json.loads(spec)), be,
                      bid, STATUSES[status], minor, app, site, attempts, size, checksum, updated,
                      not_before)
            for (name, st, pa, spec, be, bid, status, minor, app, site, attempts, size, checksum,
                 updated, not_before) in rows
        ]

    def job_rows(
        self,
        stage: Stage | None = None,
        particle: Particle | None = None,
        statuses: Iterable[JobStatus] | None = None,
        names: Sequence[str] | None = None,
    ) -> list[JobRow]:
        """:meth:`jobs` without their specs (none is decoded), filtered and ordered alike."""
        rows = self._select(
            "name, stage, particle, output_lfn, backend, backend_id, status, minor_status, "
            "application_status, site, attempts, output_size, output_checksum, updated, "
            "not_before", stage, particle, statuses, names)
        return [
            JobRow(name, STAGES[st], PARTICLES[pa], lfn, be, bid, STATUSES[status], minor, app,
                   site, attempts, size, checksum, updated, not_before)
            for (name, st, pa, lfn, be, bid, status, minor, app, site, attempts, size, checksum,
                 updated, not_before) in rows
        ]

    def counts(self) -> list[tuple[str, str, str, int, int]]:
        """(stage, particle, status, jobs, bytes of their outputs in the catalog), canary jobs
        left out (the status screen and the report)."""
        rows = self.db.execute(
            "SELECT stage, particle, status, COUNT(*), COALESCE(SUM(output_size), 0) FROM jobs "
            f"WHERE {NOT_CANARY} GROUP BY stage, particle, status "
            "ORDER BY stage, particle, status")
        return [(s, p, st, int(n), int(size)) for s, p, st, n, size in rows]

    def outcome_counts(self) -> list[tuple[str, str, str, str, int]]:
        """(stage, particle, site, outcome, attempts) of every recorded outcome."""
        rows = self.db.execute(
            "SELECT j.stage, j.particle, o.site, o.outcome, COUNT(*) FROM outcomes o "
            "JOIN jobs j ON j.name = o.name GROUP BY j.stage, j.particle, o.site, o.outcome "
            "ORDER BY j.stage, j.particle, o.site, o.outcome")
        return [(s, p, site, outcome, int(n)) for s, p, site, outcome, n in rows]

    def download_counts(self) -> list[tuple[str, str, int, int]]:
        """(stage, particle, files, bytes) of the outputs downloaded and verified here."""
        rows = self.db.execute(
            "SELECT j.stage, j.particle, COUNT(*), SUM(d.size) FROM downloads d CROSS JOIN jobs j "
            "ON j.output_lfn = d.lfn WHERE d.state IN ('fetched', 'present') "
            "GROUP BY j.stage, j.particle ORDER BY j.stage, j.particle")
        return [(s, p, int(n), int(size)) for s, p, n, size in rows]

    def transitions(self) -> list[tuple[str, str, str, str, str]]:
        """(name, stage, particle, status, time) of every recorded state change of a job
        (canaries left out), in the order they were recorded."""
        rows = self.db.execute(
            "SELECT h.name, j.stage, j.particle, h.status, h.time FROM history h JOIN jobs j "
            f"ON j.name = h.name WHERE {NOT_CANARY.replace('name', 'h.name')} "
            "ORDER BY h.rowid")
        return [(n, s, p, st, t) for n, s, p, st, t in rows]

    def done_times(self) -> list[str]:
        """When each job became Done (ISO 8601, UTC), oldest first (throughput)."""
        return [t for (t,) in self.db.execute(
            f"SELECT time FROM history WHERE status = 'Done' AND {NOT_CANARY} ORDER BY time")]

    def known_backend_ids(self, names: Sequence[str]) -> set[int]:
        ids: set[int] = set()
        for chunk in chunked(list(names), 500):
            rows = self.db.execute(
                f"SELECT backend_id FROM attempts WHERE name IN ({','.join('?' * len(chunk))})",
                chunk)
            ids.update(int(r[0]) for r in rows)
        return ids

    # --- state changes ------------------------------------------------------------------------
    def _set(self, db: sqlite3.Connection, name: str, backend_id: int | None, status: JobStatus,
             minor: str, application: str, extra: str = "", extra_args: Sequence[object] = ()
             ) -> None:
        stamp = now()
        db.execute(
            f"UPDATE jobs SET status = ?, minor_status = ?, application_status = ?, updated = ?"
            f"{extra} WHERE name = ?",
            (status.value, minor, application, stamp, *extra_args, name),
        )
        db.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)",
                   (name, backend_id, status.value, minor, application, stamp))

    def mark_sending(self, names: Sequence[str]) -> None:
        """Jobs about to be handed to the backend (committed before the call)."""
        with self.transaction() as db:
            for name in names:
                self._set(db, name, None, JobStatus.SENDING, "", "")

    def mark_submitted(self, backend: str, submitted: Sequence[tuple[str, int]]) -> None:
        """Record the backend id of each (name, id), as a new attempt."""
        stamp = now()
        with self.transaction() as db:
            for name, backend_id in submitted:
                attempt = db.execute("SELECT attempts FROM jobs WHERE name = ?",
                                     (name,)).fetchone()[0] + 1
                db.execute("INSERT INTO attempts VALUES (?, ?, ?, ?, ?)",
                           (name, attempt, backend, backend_id, stamp))
                self._set(db, name, backend_id, JobStatus.RECEIVED, "Job accepted", "",
                          ", backend = ?, backend_id = ?, attempts = ?",
                          (backend, backend_id, attempt))

    def mark_planned(self, names: Sequence[str], reason: str,
                     not_before: str | None = None) -> None:
        """Put jobs back in the queue of jobs to submit (resubmission, failed submission);
        with ``not_before``, not to be sent before that time."""
        with self.transaction() as db:
            for name in names:
                self._set(db, name, None, JobStatus.PLANNED, reason, "", ", not_before = ?",
                          (not_before,))

    def forget(self, names: Sequence[str]) -> None:
        """Remove jobs the plan no longer has (their history stays, for provenance)."""
        with self.transaction() as db:
            for chunk in chunked(list(names), 500):
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM attempts WHERE name IN ({marks})", chunk)
                db.execute(f"DELETE FROM jobs WHERE name IN ({marks})", chunk)
                db.execute(f"DELETE FROM specs WHERE name IN ({marks})", chunk)

    def mark_failed(self, failed: Sequence[tuple[str, str]]) -> None:
        """Jobs the backend calls Done whose output is refused here (name, why): Failed."""
        with self.transaction() as db:
            for name, why in failed:
                row = db.execute("SELECT backend_id FROM jobs WHERE name = ?", (name,)).fetchone()
                self._set(db, name, row[0] if row else None, JobStatus.FAILED, why, "")

    def mark_output_present(self, found: Sequence[tuple[str, int, str]]) -> None:
        """Jobs whose output already exists: Done without running; (name, size, checksum)."""
        with self.transaction() as db:
            for name, size, checksum in found:
                self._set(db, name, None, JobStatus.DONE, "Output already in the catalog", "",
                          ", output_size = ?, output_checksum = ?", (size, checksum))

    def update_states(self, by_name: dict[str, JobState]) -> int:
        """Apply backend states; record history for those that changed. Returns how many did.

        A state is ignored when the job is unknown or now has another backend id (an older
        attempt's). One read of the jobs' current states and one write of those that changed,
        in one transaction."""
        stamp = now()
        with self.transaction() as db:
            current: dict[str, tuple[Any, ...]] = {}
            for chunk in chunked(list(by_name), 500):
                current.update((row[0], row[1:]) for row in db.execute(
                    "SELECT name, backend_id, status, minor_status, application_status, site "
                    f"FROM jobs WHERE name IN ({','.join('?' * len(chunk))})", chunk))
            changed = [(name, state) for name, state in by_name.items()
                       if (row := current.get(name)) is not None and row[0] == state.backend_id
                       and row[1:] != (state.status.value, state.minor_status,
                                       state.application_status, state.site)]
            db.executemany(
                "UPDATE jobs SET status = ?, minor_status = ?, application_status = ?, "
                "updated = ?, site = ? WHERE name = ?",
                [(s.status.value, s.minor_status, s.application_status, stamp, s.site, name)
                 for name, s in changed])
            db.executemany(
                "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)",
                [(name, s.backend_id, s.status.value, s.minor_status, s.application_status,
                  stamp) for name, s in changed])
        return len(changed)

    def set_output(self, outputs: Sequence[tuple[str, int, str]]) -> None:
        """Record (name, size, checksum) of outputs found in the catalog (a row already saying
        so is not written again)."""
        with self.transaction() as db:
            db.executemany("UPDATE jobs SET output_size = ?, output_checksum = ? WHERE name = ? "
                           "AND (output_size IS NOT ? OR output_checksum IS NOT ?)",
                           [(size, checksum, name, size, checksum)
                            for name, size, checksum in outputs])

    def history(self, name: str) -> list[tuple[str, str, str, str]]:
        rows = self.db.execute("SELECT status, minor_status, application_status, time FROM "
                               "history WHERE name = ? ORDER BY rowid", (name,))
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # --- downloads manifest and merges ---------------------------------------------------------
    def record_downloads(self, rows: Sequence[Download]) -> None:
        """Manifest rows, in one transaction (a row per LFN: the latest outcome)."""
        stamp = now()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO downloads (lfn, path, size, checksum, state, updated, "
                "mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(row.lfn, str(row.path), row.size, row.checksum, row.state, stamp,
                  row.mtime_ns) for row in rows])

    def downloads(self, lfns: Sequence[str] | None = None) -> dict[str, Download]:
        """The manifest's rows, of ``lfns`` or all."""
        query = "SELECT lfn, path, size, checksum, state, mtime_ns FROM downloads"
        if lfns is None:
            rows = self.db.execute(query).fetchall()
        else:
            rows = []
            for chunk in chunked(list(lfns), 500):
                rows += self.db.execute(f"{query} WHERE lfn IN ({','.join('?' * len(chunk))})",
                                        chunk).fetchall()
        return {lfn: Download(lfn, Path(path), size, checksum, state, mtime)
                for lfn, path, size, checksum, state, mtime in rows}

    def record_merge(self, merge: MergeRecord) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO merges VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (str(merge.path), merge.inputs, merge.files, merge.showers, merge.size,
                        merge.mtime_ns, now()))

    def merge_record(self, path: Path) -> MergeRecord | None:
        """What the last merge into ``path`` was made of, if this analysis made it."""
        row = self.db.execute("SELECT path, inputs, files, showers, size, mtime_ns FROM merges "
                              "WHERE path = ?", (str(path),)).fetchone()
        return None if row is None else MergeRecord(Path(row[0]), *row[1:])

    # --- results and fingerprints -------------------------------------------------------------
    def record_result(self, step: str, particle: str, figures: dict[str, Any],
                      warnings: Sequence[str] = ()) -> Result:
        """Keep what ``step`` found for ``particle`` (replacing its earlier result)."""
        result = Result(step, particle, figures, tuple(warnings), now())
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                       (step, particle, json.dumps(figures, sort_keys=True),
                        json.dumps(list(warnings)), result.recorded))
        return result

    def results(self, step: str | None = None) -> list[Result]:
        """The recorded results (of ``step``, or all), in the order they were recorded."""
        query = "SELECT step, particle, figures, warnings, recorded FROM results"
        rows = self.db.execute(f"{query} WHERE step = ? ORDER BY rowid" if step else
                               f"{query} ORDER BY rowid", (step,) if step else ())
        return [Result(s, p, json.loads(f), tuple(json.loads(w)), r) for s, p, f, w, r in rows]

    def record_fingerprint(self, stage: Stage, particle: Particle, inputs: dict[str, str]) -> None:
        """The digests of what the jobs of ``stage`` and ``particle`` were planned from."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?)",
                       (stage.value, particle.value, json.dumps(inputs, sort_keys=True), now()))

    # --- what run decided: outcomes of attempts, banned sites, finished steps -----------------
    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """How attempts ended and what was done about it (one row per job and attempt)."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(o.name, o.attempt, o.backend_id, o.site, o.outcome, o.detail,
                             o.action, o.time or now()) for o in outcomes])

    def outcomes(self, names: Sequence[str] | None = None) -> list[Outcome]:
        """Recorded outcomes (of the jobs ``names``, or all), oldest first."""
        query = ("SELECT name, attempt, backend_id, site, outcome, detail, action, time "
                 "FROM outcomes")
        if names is None:
            rows = self.db.execute(query + " ORDER BY time, rowid").fetchall()
        else:
            rows = []
            for chunk in chunked(list(names), 500):
                rows += self.db.execute(
                    f"{query} WHERE name IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            rows.sort(key=lambda row: (row[7], row[0], row[1]))
        return [Outcome(*row) for row in rows]

    def outcome_actions(self) -> dict[tuple[str, int], str]:
        """(name, attempt) -> what was done about it, of every recorded outcome (light)."""
        return {(n, a): action for n, a, action in
                self.db.execute("SELECT name, attempt, action FROM outcomes")}

    def handled_attempts(self) -> set[tuple[str, int]]:
        """(name, attempt) of every attempt whose outcome is recorded."""
        return {(str(n), int(a)) for n, a in self.db.execute("SELECT name, attempt FROM outcomes")}

    def site_outcomes(self, window: int) -> dict[str, list[str]]:
        """The outcomes of the last ``window`` attempts at each site, newest first."""
        rows = self.db.execute(
            "SELECT site, outcome FROM (SELECT site, outcome, ROW_NUMBER() OVER (PARTITION BY "
            "site ORDER BY time DESC, rowid DESC) AS n FROM outcomes WHERE site != '') "
            "WHERE n <= ?", (window,))
        found: dict[str, list[str]] = {}
        for site, outcome in rows:
            found.setdefault(site, []).append(outcome)
        return found

    def ban(self, site: str, reason: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO bans VALUES (?, ?, ?)", (site, reason, now()))

    def unban(self, site: str) -> bool:
        """Lift a ban; False if the site was not banned."""
        with self.transaction() as db:
            return db.execute("DELETE FROM bans WHERE site = ?", (site,)).rowcount > 0

    def bans(self) -> dict[str, tuple[str, str]]:
        """Banned sites: site -> (reason, when)."""
        return {site: (reason, when) for site, reason, when in
                self.db.execute("SELECT site, reason, banned FROM bans ORDER BY site")}

    def finish_step(self, step: str, particle: str, digest: str, outputs: str = "",
                    seconds: float = 0.0) -> None:
        """A step of the workflow finished for ``particle``, from inputs of this ``digest``,
        making outputs of the digest ``outputs``, its last part taking ``seconds``."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?)",
                       (step, particle, digest, outputs, now(), seconds))

    def finished_steps(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(step, particle) -> (digest of its inputs, digest of its outputs) of every finished
        step."""
        return {(step, particle): (digest, outputs) for step, particle, digest, outputs in
                self.db.execute("SELECT step, particle, digest, detail FROM steps")}

    def fingerprint(self, stage: Stage, particle: Particle) -> dict[str, str] | None:
        row = self.db.execute("SELECT inputs FROM fingerprints WHERE stage = ? AND particle = ?",
                              (stage.value, particle.value)).fetchone()
        return None if row is None else dict(json.loads(row[0]))
