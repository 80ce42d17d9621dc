"""Follow submitted jobs: one status call per chunk of jobs, outputs recorded when Done.

A wait ends when every job is final or stuck: a job is stuck when it cannot reach a final state
without someone acting (:class:`Stuck`), so that no wait can hang for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from ..backends.base import Backend
from ..iterutils import chunked
from ..models import BOOKKEEPING_STATES, JobStatus, Stage
from ..store import JobRecord, JobRow, Store

STATUS_CHUNK = 1000
#: seconds a job may stay unconfirmed before a wait gives up on it: DIRAC's own limit (its
#: StalledJobAgent's ``SubmittingTime``), after which DIRAC fails such jobs itself
UNCONFIRMED_LIMIT = 300.0
#: the states of jobs on a backend that may still change
ACTIVE_STATES = frozenset(status for status in JobStatus if status.is_active)


class Stuck(StrEnum):
    """Why a job cannot reach a final state by itself."""

    #: ``Planned`` or ``Sending``: nothing runs until a submission sends it
    NOT_SUBMITTED = "not submitted"
    #: created by a submission that was interrupted before confirming it (DIRAC ``Submitting``)
    UNCONFIRMED = "unconfirmed"
    #: no change of state for longer than the wait's limit (while not running)
    HELD = "held"


@dataclass
class WaitResult:
    """How a wait ended: the jobs' records, the stuck ones by cause, whether time ran out."""

    records: list[JobRecord]
    stuck: dict[Stuck, list[JobRecord]] = field(default_factory=dict)
    timed_out: bool = False


def refresh(store: Store, backend: Backend, stage: Stage | None = None) -> list[JobRecord]:
    """Ask the backend for the state of every active job; return all jobs of ``stage``."""
    refresh_active(store, backend, stage)
    return store.jobs(stage=stage)


def refresh_active(store: Store, backend: Backend, stage: Stage | None = None) -> int:
    """Ask the backend for the state of every active job (of ``stage``) and record it,
    without decoding a spec; return how many changed (read them with ``Store.job_rows``)."""
    return update(store, backend, store.job_rows(stage=stage, statuses=ACTIVE_STATES))


def update(store: Store, backend: Backend, records: Sequence[JobRecord | JobRow]) -> int:
    """Ask the backend for the state of these jobs (final ones too: a deleted job was final
    before) and record it, with the outputs of the jobs now Done; return how many changed."""
    mine = [r for r in records if r.backend == backend.name and r.backend_id is not None]
    changed = 0
    for chunk in chunked(mine, STATUS_CHUNK):
        states = backend.status([r.backend_id for r in chunk if r.backend_id is not None])
        by_name = {r.name: states[r.backend_id] for r in chunk
                   if r.backend_id is not None and r.backend_id in states}
        changed += store.update_states(by_name)
        done = [r for r in chunk if r.name in by_name and by_name[r.name].status == JobStatus.DONE]
        if done:
            found = backend.metadata([r.output_lfn for r in done])
            store.set_output([(r.name, found[r.output_lfn].size, found[r.output_lfn].checksum)
                              for r in done if r.output_lfn in found])
    return changed


def unchanged_for(record: JobRecord, now: datetime) -> float:
    """Seconds since the job's state last changed."""
    return (now - datetime.fromisoformat(record.updated)).total_seconds()


def stuck_jobs(records: Sequence[JobRecord], held_after: float | None,
               now: datetime | None = None) -> dict[Stuck, list[JobRecord]]:
    """The jobs among ``records`` that cannot reach a final state by themselves, by cause.

    ``held_after``: seconds without a change of state after which a job that is neither
    running nor final is given up on (None: never); unconfirmed jobs are given up on after
    :data:`UNCONFIRMED_LIMIT` s, or ``held_after`` if shorter.
    """
    now = now or datetime.now(UTC)
    unconfirmed_after = UNCONFIRMED_LIMIT if held_after is None else min(UNCONFIRMED_LIMIT,
                                                                         held_after)
    stuck: dict[Stuck, list[JobRecord]] = {}
    for record in records:
        status = record.status
        if status in BOOKKEEPING_STATES:
            cause: Stuck | None = Stuck.NOT_SUBMITTED
        elif status == JobStatus.SUBMITTING:
            cause = Stuck.UNCONFIRMED if unchanged_for(record, now) > unconfirmed_after else None
        elif status.is_final or status == JobStatus.RUNNING or held_after is None:
            cause = None
        else:
            cause = Stuck.HELD if unchanged_for(record, now) > held_after else None
        if cause is not None:
            stuck.setdefault(cause, []).append(record)
    return stuck


def wait(
    store: Store,
    backend: Backend,
    names: Sequence[str],
    poll_seconds: float = 2.0,
    timeout: float | None = None,
    held_after: float | None = None,
    on_update: Callable[[list[JobRecord], dict[Stuck, list[JobRecord]]], None] | None = None,
) -> WaitResult:
    """Poll until every named job is final or stuck (see :func:`stuck_jobs`), or ``timeout``
    seconds pass."""
    start = time.monotonic()
    wanted = set(names)
    while True:
        records = [r for r in refresh(store, backend) if r.name in wanted]
        stuck = stuck_jobs(records, held_after)
        if on_update:
            on_update(records, stuck)
        given_up = {r.name for found in stuck.values() for r in found}
        if all(r.status.is_final or r.name in given_up for r in records):
            return WaitResult(records, stuck)
        if timeout is not None and time.monotonic() - start > timeout:
            return WaitResult(records, stuck, timed_out=True)
        time.sleep(poll_seconds)
