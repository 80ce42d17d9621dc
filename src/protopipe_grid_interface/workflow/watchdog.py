"""Held jobs: jobs in one state for longer than grid.yaml's ``Run.held_after`` allows.

DIRAC leaves a job Waiting for ever when no site will take it (DIRAC #7802), and a job
Completed / "Pending Requests" until its outputs land: both are active, never finished.
``run`` flags them; ``run --restart-held --yes`` kills them and submits them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..backends.base import Backend
from ..models import JobStatus
from ..store import JobRecord, JobRow, Outcome, Store


@dataclass(frozen=True)
class Held:
    record: JobRow | JobRecord
    seconds: float
    limit: float

    def line(self) -> str:
        return (f"{self.record.name}: {self.record.status.value} "
                f"({self.record.minor_status or 'no minor status'}) for "
                f"{self.seconds / 60:.0f} min (limit {self.limit / 60:.0f} min)")


def held(records: Sequence[JobRow | JobRecord], limits: Mapping[JobStatus, float], now: datetime
         ) -> list[Held]:
    """The active jobs of ``records`` held in their state past its limit."""
    found = []
    for record in records:
        limit = limits.get(record.status)
        if limit is None or not record.status.is_active:
            continue
        seconds = (now - datetime.fromisoformat(record.updated)).total_seconds()
        if seconds > limit:
            found.append(Held(record, seconds, limit))
    return found


def restart(store: Store, backend: Backend, jobs: Sequence[Held]) -> list[Outcome]:
    """Kill the held jobs, remove what outputs they left, put them back in the queue (recorded
    as their outcome)."""
    ids = [h.record.backend_id for h in jobs if h.record.backend_id is not None]
    if ids:
        backend.kill(ids)
    left = backend.metadata([h.record.output_lfn for h in jobs])
    if left:
        backend.remove(sorted(left))
    store.mark_planned([h.record.name for h in jobs], "held too long: submitted again")
    outcomes = [Outcome(h.record.name, h.record.attempts, h.record.backend_id, h.record.site,
                        "held", h.line(), "retry") for h in jobs]
    store.record_outcomes(outcomes)
    return outcomes
