"""Act on submitted jobs: select them, kill, delete or force them to Failed, read their logs.

Every action is applied to a selection the caller has shown (and confirmed), then the state
of each job it touched is read back from the backend: what the command reports is what the
backend did, not what it was asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from ..backends.base import Backend
from ..exceptions import InputError
from ..models import (
    BOOKKEEPING_STATES,
    FINAL_STATES,
    JobSelection,
    JobState,
    JobStatus,
    Particle,
    Stage,
)
from ..store import JobRecord, Store
from . import track

#: what a job's log tail shows of its last lines
TAIL_LINES = 3
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: the models and configs a job is given beside its simulation files (left out of input LFNs)
MODELS_FOLDER = "/estimators/"


def select(store: Store, stage: Stage | None, particles: Sequence[Particle] | None,
           wanted: Callable[[JobRecord], bool] = lambda record: True) -> list[JobRecord]:
    """The analysis' jobs of ``stage`` (all stages: None) and ``particles`` (all: None or
    empty) that ``wanted`` keeps."""
    return [r for r in store.jobs(stage=stage) if (not particles or r.particle in particles)
            and wanted(r)]


def submitted(record: JobRecord) -> bool:
    """True for a job that exists on a backend (a kill or delete can reach it)."""
    return record.backend_id is not None and record.status not in BOOKKEEPING_STATES


def act(store: Store, backend: Backend, records: Sequence[JobRecord],
        action: Callable[[Backend, list[int]], None]) -> list[JobRecord]:
    """Apply ``action`` (e.g. ``Backend.kill``) to the jobs, then record their states."""
    action(backend, [r.backend_id for r in records if r.backend_id is not None])
    track.update(store, backend, records)
    return store.jobs(names=[r.name for r in records])


def job_by_name_or_id(store: Store, job: str) -> JobRecord:
    """The submitted job named ``job``, or with backend id ``job``."""
    for record in store.jobs():
        if (record.name == job or str(record.backend_id) == job) and submitted(record):
            return record
    raise InputError(f"no submitted job named {job!r} in this analysis")


def log_tails(backend: Backend, records: Sequence[JobRecord]) -> dict[str, str]:
    """The last lines of each final job's log, without terminal colour codes."""
    tails = {}
    for record in records:
        if record.status.is_final and record.backend_id is not None:
            text = ANSI_ESCAPE.sub("", backend.job_log(record.backend_id))
            tails[record.name] = "\n".join(text.strip().splitlines()[-TAIL_LINES:])
    return tails


def input_lfns(backend: Backend, job_id: int) -> list[str]:
    """The simulation files a job was given (its models and configs left out)."""
    return [lfn for lfn in backend.job_input_data(job_id) if MODELS_FOLDER not in lfn]


@dataclass(frozen=True)
class Selection:
    """A user's selection of jobs on the backend: conditions (at least one besides the day),
    in any of ``job_groups``."""

    conditions: JobSelection
    job_groups: tuple[str, ...] = ()

    def describe(self) -> str:
        """``Status=Waiting, Date=2026-12-03``: the conditions, for the user."""
        c = self.conditions
        return ", ".join(f"{key}={value}" for key, value in (
            ("Status", c.status), ("MinorStatus", c.minor_status),
            ("ApplicationStatus", c.application_status), ("Site", c.site), ("Owner", c.owner),
            ("JobGroup", ",".join(self.job_groups)), ("Date", c.date)) if value)


def selectable_states() -> list[str]:
    """The job states a selection may name (ours never exist on a backend)."""
    return [s.value for s in JobStatus if s not in BOOKKEEPING_STATES]


def checked_selection(status: str | None, minor_status: str | None,
                      application_status: str | None, site: str | None, owner: str | None,
                      job_groups: str | None, day: str | None) -> Selection:
    """A selection of jobs by their attributes, checked: never by date alone, known states
    only, a real day (default: today), numeric job groups normalised (``007`` -> ``7``)."""
    if not any((status, job_groups, site, minor_status, application_status)):
        raise InputError("refusing to select jobs by date alone",
                         "give at least one of --Status, --JobGroup, --Site, --MinorStatus, "
                         "--ApplicationStatus")
    if status and status not in selectable_states():
        raise InputError(f"--Status {status!r}: unknown job status",
                         f"expected one of: {', '.join(selectable_states())}")
    try:
        when = date.fromisoformat(day) if day else datetime.now(UTC).date()
    except ValueError:
        raise InputError(f"--Date {day!r}: expected a day as YYYY-MM-DD") from None
    groups = tuple(g.strip() for g in (job_groups or "").split(",") if g.strip())
    if job_groups and not groups:
        raise InputError(f"--JobGroup {job_groups!r}: no job group given")
    conditions = JobSelection(status, minor_status, application_status, site, None,
                              when.isoformat(), owner)
    return Selection(conditions, tuple(str(int(g)) if g.isdigit() else g for g in groups))


def select_on_backend(backend: Backend, selection: Selection) -> dict[int, JobState]:
    """The jobs of the backend matching ``selection`` (any of its job groups), with their
    states."""
    groups: Sequence[str | None] = selection.job_groups or (None,)
    ids = sorted({job_id for group in groups for job_id in backend.select_jobs(
        replace(selection.conditions, job_group=group))})
    return backend.status(ids) if ids else {}


def active(states: dict[int, JobState]) -> list[int]:
    """The ids of the jobs that are not final."""
    return [i for i, s in states.items() if s.status not in FINAL_STATES]
