"""Faults injected into the local backend, to reproduce every failure class on chosen jobs.

A fault is kept in the local backend's catalog database (table ``faults``), so a test can
inject it from one process while the queue runner and the job wrappers of the same root, or a
``protopipe-grid run`` started as a subprocess, see it. It hits the jobs whose name matches
``job_name`` (an fnmatch pattern) and that were matched at ``site`` (either may be left out),
``times`` attempts in all (``None``: every attempt). A job wrapper takes at most one fault per
attempt, the oldest that matches, in one write transaction: two jobs starting together never
both take the last use of a fault.

What a job hit by each fault goes through, with DIRAC's strings (so that
``workflow.failures.classify`` gives the injected class back):

================  ================================================================================
``input data``    Failed / "Input Data Not Available", its log names the ``MissingLFNs``; no step
                  runs
``stalled``       Stalled / "Job stalled: pilot not running" for :data:`STALLED_SECONDS`, then
                  Failed with that minor status (as DIRAC's StalledJobAgent does)
``watchdog``      Failed / "Job has reached the CPU limit of the queue" while its first step runs
``upload``        the steps run, the output is uploaded **and registered**, then Failed /
                  "Uploading Output Data": the partial output DIRAC PR #7758 describes, which the
                  retry must remove first
``application``   Failed / "Application Finished With Errors", application status "<program>
                  Exited With Status 1", an error line in its std.out
``reschedulings`` Rescheduled, then Failed / "Maximum of reschedulings reached"
``hold``          never matched: the queue runner leaves the job Waiting until
                  :meth:`LocalBackend.clear_faults`; ``times`` does not apply
================  ================================================================================

Two classes need no injection: an *empty output* is a job whose step writes an output with no
events (the job ends Done; the run's validation finds it), and an *unknown* failure is
``set_failed(ids, reason)`` with a reason no rule of ``workflow.failures`` knows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from .. import sqlite
from ..exceptions import InputError
from ..models import FailureClass

#: the fault that keeps jobs Waiting
HOLD: Literal["hold"] = "hold"
#: how long a job hit by a ``stalled`` fault stays Stalled before it is set Failed
STALLED_SECONDS = 1.0

#: the classes a fault can produce, and the minor status (DIRAC's) each ends Failed with
MINOR_STATUS: dict[FailureClass, str] = {
    FailureClass.INPUT_DATA: "Input Data Not Available",
    FailureClass.STALLED: "Job stalled: pilot not running",
    FailureClass.WATCHDOG: "Job has reached the CPU limit of the queue",
    FailureClass.UPLOAD: "Uploading Output Data",
    FailureClass.APPLICATION: "Application Finished With Errors",
    FailureClass.RESCHEDULINGS: "Maximum of reschedulings reached",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT, failure TEXT NOT NULL, site TEXT, job_name TEXT,
    remaining INTEGER);
"""


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure to inflict on the jobs matching ``job_name`` (fnmatch) at ``site``, on
    ``times`` attempts (``None``: every attempt); ``"hold"`` keeps them Waiting instead."""

    failure: FailureClass | Literal["hold"]
    site: str | None = None
    job_name: str | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        known = [*(str(f) for f in MINOR_STATUS), HOLD]
        if self.failure not in known:
            raise InputError(f"fault {self.failure!r}: expected one of {', '.join(known)}",
                             "empty output and unknown failures need no injection")
        if self.failure == HOLD and self.times is not None:
            raise InputError("fault hold: times does not apply",
                             "a hold lasts until clear_faults()")
        if self.times is not None and self.times < 1:
            raise InputError(f"fault {self.failure}: times={self.times}, expected 1 or more",
                             "or None for every attempt")

    def hits(self, job_name: str, site: str) -> bool:
        """True when this fault applies to a job of that name matched at that site."""
        return ((self.site is None or self.site == site)
                and (self.job_name is None or fnmatchcase(job_name, self.job_name)))


def as_failure(text: str) -> FailureClass | Literal["hold"]:
    """A failure column read back from the database."""
    return HOLD if text == HOLD else FailureClass(text)


def record(db: sqlite3.Connection, fault: Fault) -> int:
    """Store ``fault``; return its id."""
    with sqlite.transaction(db):
        cursor = db.execute(
            "INSERT INTO faults (failure, site, job_name, remaining) VALUES (?, ?, ?, ?)",
            (str(fault.failure), fault.site, fault.job_name, fault.times))
    return int(cursor.lastrowid or 0)


def recorded(db: sqlite3.Connection) -> list[Fault]:
    """The faults in force, oldest first (``times``: the attempts each still hits)."""
    rows = db.execute("SELECT failure, site, job_name, remaining FROM faults ORDER BY id")
    return [Fault(as_failure(failure), site, job_name, remaining)
            for failure, site, job_name, remaining in rows]


def take(db: sqlite3.Connection, job_name: str, site: str) -> FailureClass | None:
    """The failure of the oldest fault hitting this attempt, used once (atomically), or None."""
    with sqlite.transaction(db):
        rows = db.execute("SELECT id, failure, site, job_name, remaining FROM faults "
                          "WHERE failure != ? ORDER BY id", (HOLD,)).fetchall()
        for fault_id, failure, fault_site, pattern, remaining in rows:
            if not Fault(as_failure(failure), fault_site, pattern).hits(job_name, site):
                continue
            if remaining == 1:
                db.execute("DELETE FROM faults WHERE id = ?", (fault_id,))
            elif remaining is not None:
                db.execute("UPDATE faults SET remaining = remaining - 1 WHERE id = ?",
                           (fault_id,))
            return FailureClass(failure)
    return None


def holds(db: sqlite3.Connection) -> list[Fault]:
    """The ``hold`` faults in force."""
    return [fault for fault in recorded(db) if fault.failure == HOLD]


def clear(db: sqlite3.Connection) -> None:
    """Remove every fault."""
    with sqlite.transaction(db):
        db.execute("DELETE FROM faults")
