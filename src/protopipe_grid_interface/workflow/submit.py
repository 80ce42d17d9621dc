"""Submit planned jobs: never a duplicate, never a job whose output already exists.

Order of work for each call:

1. record the specs in the store (new ones as ``Planned``);
2. recover what an interrupted run left half-way (:func:`recover_interrupted`): jobs left
   ``Sending`` are looked up by name on the backend, jobs the backend holds unconfirmed are
   confirmed;
3. skip jobs whose output LFN is already in the catalog (``Done``, not run again);
4. submit the rest in chunks: ``Sending`` is committed before the backend call and the ids
   right after it, so a kill at any point is recovered by step 2 on the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..backends.base import Backend
from ..iterutils import chunked
from ..models import RESUBMITTABLE_STATES, UNCONFIRMED, JobSpec, JobStatus
from ..store import JobRecord, Store
from . import track

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class SubmitReport:
    """What one submission did."""

    planned: int = 0
    recovered: int = 0
    #: jobs found unconfirmed on the backend (a client killed inside DIRAC's bulk transaction)
    #: and confirmed now
    confirmed: int = 0
    skipped_existing: int = 0
    already_submitted: int = 0
    submitted: list[tuple[str, int]] = field(default_factory=list)


def recover_interrupted(store: Store, backend: Backend) -> tuple[list[str], int]:
    """Finish what interrupted submissions left half-way; return the names of the jobs adopted
    and how many jobs were confirmed.

    1. A job left ``Sending`` is looked up by name: the newest backend job not known from an
       earlier attempt is adopted (others with its name are killed); a name the backend does
       not know goes back to ``Planned``.
    2. Jobs the backend holds unconfirmed (``Submitting``) are confirmed. DIRAC's parametric
       submission is a transaction: ``JobManager.submitJob`` creates the jobs ``Submitting`` /
       "Bulk transaction confirmation" and ``confirmBulkSubmission`` lets them run
       (``JobManagerHandler``); a client killed between the two leaves jobs that never run.
       They are confirmed, not removed and submitted again: the server has validated and
       stored them with their sandbox, confirming is one call per thousand jobs, and a job
       confirmed twice is still one job, so no kill can duplicate it.
    3. A job DIRAC failed because it was never confirmed (its StalledJobAgent fails jobs left
       ``Submitting`` for 300 s, keeping the minor status :data:`UNCONFIRMED`) never ran: it
       goes back to ``Planned``, to be submitted again.
    """
    adopted = adopt_sent(store, backend)
    held = store.jobs(statuses=[JobStatus.SUBMITTING])
    candidates = {r.name for r in held} | set(adopted)
    if not candidates:
        return adopted, 0
    track.update(store, backend, store.jobs(names=sorted(candidates)))
    unconfirmed = store.jobs(statuses=[JobStatus.SUBMITTING], names=sorted(candidates))
    if unconfirmed:
        log.info("%d job(s) were created but never confirmed (an interrupted submission): "
                 "confirming them", len(unconfirmed))
        backend.confirm([r.backend_id for r in unconfirmed if r.backend_id is not None])
        track.update(store, backend, unconfirmed)
    never_run = [r.name for r in store.jobs(statuses=[JobStatus.FAILED], names=sorted(candidates))
                 if r.minor_status == UNCONFIRMED]
    store.mark_planned(never_run, "never confirmed: submitting again")
    return adopted, len(unconfirmed)


def adopt_sent(store: Store, backend: Backend) -> list[str]:
    """Step 1 of :func:`recover_interrupted`: the jobs left ``Sending``, adopted or requeued;
    returns the names of the adopted ones."""
    pending = store.jobs(statuses=[JobStatus.SENDING])
    if not pending:
        return []
    names = [r.name for r in pending]
    known = store.known_backend_ids(names)
    found = backend.find_jobs(names)
    adopted: list[tuple[str, int]] = []
    for record in pending:
        fresh = [i for i in found.get(record.name, []) if i not in known]
        if fresh:
            adopted.append((record.name, max(fresh)))
            extra = [i for i in fresh if i != max(fresh)]
            if extra:
                log.warning("job %s exists %d times on the backend; killing the extra ones",
                            record.name, len(fresh))
                backend.kill(extra)
    store.mark_submitted(backend.name, adopted)
    adopted_names = {name for name, _ in adopted}
    store.mark_planned([n for n in names if n not in adopted_names], "submission interrupted")
    return sorted(adopted_names)


def check_proxy(backend: Backend, jobs: int) -> None:
    """On the grid, refuse a submission the proxy may not outlive: an hour, and a generous
    second per job (raises :class:`~..setup.proxy.ProxyLifetimeError`)."""
    if backend.name == "dirac":
        from ..setup.proxy import check_proxy_for

        check_proxy_for(1.0 + jobs / 3600)


def to_submit(store: Store, specs: Sequence[JobSpec]) -> list[JobRecord]:
    """The planned jobs among ``specs``."""
    return store.jobs(statuses=[JobStatus.PLANNED], names=[s.name for s in specs])


def submit(
    store: Store,
    backend: Backend,
    specs: Sequence[JobSpec],
    chunk_size: int = 1000,
    progress: Progress | None = None,
) -> SubmitReport:
    """Submit every job of ``specs`` that is not submitted yet; see the module docstring."""
    report = SubmitReport()
    report.planned, _ = store.add_planned(specs)
    wanted = {spec.name for spec in specs}
    adopted, report.confirmed = recover_interrupted(store, backend)
    report.recovered = len(wanted.intersection(adopted))
    todo = to_submit(store, specs)
    report.already_submitted = len(specs) - len(todo) - report.recovered

    present = backend.metadata([r.spec.output_lfn for r in todo])
    if present:
        skipped = [(r.name, present[r.spec.output_lfn].size, present[r.spec.output_lfn].checksum)
                   for r in todo if r.spec.output_lfn in present]
        store.mark_output_present(skipped)
        report.skipped_existing = len(skipped)
        todo = [r for r in todo if r.spec.output_lfn not in present]

    for chunk in chunked(todo, chunk_size):
        names = [r.name for r in chunk]
        store.mark_sending(names)
        ids = backend.submit([r.spec for r in chunk])
        pairs = list(zip(names, ids, strict=True))
        store.mark_submitted(backend.name, pairs)
        report.submitted += pairs
        if progress:
            progress(len(chunk))
    return report


@dataclass(frozen=True)
class PlannedJob:
    """A job of a plan, and what a submission would do with it."""

    spec: JobSpec
    #: "to submit", "output exists" or "already submitted (<status>)"
    state: str

    @property
    def to_submit(self) -> bool:
        return self.state == "to submit"


def preview(store: Store | None, backend: Backend, specs: Sequence[JobSpec]
            ) -> list[PlannedJob]:
    """What :func:`submit` would do with each spec, changing nothing (``store``: None for an
    analysis that has none yet)."""
    states = {r.name: r.status for r in store.jobs(names=[s.name for s in specs])} \
        if store is not None else {}
    present = backend.metadata([s.output_lfn for s in specs])
    planned = []
    for spec in specs:
        state = states.get(spec.name, JobStatus.PLANNED)
        if spec.output_lfn in present:
            planned.append(PlannedJob(spec, "output exists"))
        elif state != JobStatus.PLANNED:
            planned.append(PlannedJob(spec, f"already submitted ({state.value})"))
        else:
            planned.append(PlannedJob(spec, "to submit"))
    return planned


def not_resubmitted(store: Store, backend: Backend, specs: Sequence[JobSpec]
                    ) -> list[JobRecord]:
    """The jobs of ``specs`` that ended Failed, Killed or Deleted (their states asked of the
    backend first): :func:`submit` leaves them for :func:`resubmit`."""
    names = [spec.name for spec in specs]
    track.update(store, backend, [r for r in store.jobs(names=names) if r.status.is_active])
    return store.jobs(statuses=RESUBMITTABLE_STATES, names=names)


def resubmit(store: Store, backend: Backend, records: Sequence[JobRecord]) -> SubmitReport:
    """Submit again these Failed, Killed or Deleted jobs, each once."""
    names = requeue_failed(store, [r.name for r in records])
    return submit(store, backend, [r.spec for r in records if r.name in set(names)])


def requeue_failed(store: Store, names: Sequence[str] | None = None) -> list[str]:
    """Put Failed, Killed and Deleted jobs back to ``Planned``, ready to be submitted again."""
    records = store.jobs(statuses=RESUBMITTABLE_STATES, names=names)
    chosen = [r.name for r in records]
    store.mark_planned(chosen, "resubmission requested")
    return chosen
