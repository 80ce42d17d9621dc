"""Follow submitted jobs: one status call per chunk of jobs, outputs recorded when Done."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..backends.base import Backend
from ..iterutils import chunked
from ..models import JobStatus, Stage
from ..store import JobRecord, Store

STATUS_CHUNK = 1000


def refresh(store: Store, backend: Backend, stage: Stage | None = None) -> list[JobRecord]:
    """Ask the backend for the state of every active job; return all jobs of ``stage``."""
    update(store, backend, [r for r in store.jobs(stage=stage) if r.status.is_active])
    return store.jobs(stage=stage)


def update(store: Store, backend: Backend, records: Sequence[JobRecord]) -> None:
    """Ask the backend for the state of these jobs (final ones too: a deleted job was final
    before) and record it, with the outputs of the jobs now Done."""
    mine = [r for r in records if r.backend == backend.name and r.backend_id is not None]
    for chunk in chunked(mine, STATUS_CHUNK):
        states = backend.status([r.backend_id for r in chunk if r.backend_id is not None])
        by_name = {r.name: states[r.backend_id] for r in chunk
                   if r.backend_id is not None and r.backend_id in states}
        store.update_states(by_name)
        done = [r for r in chunk if r.name in by_name and by_name[r.name].status == JobStatus.DONE]
        if done:
            found = backend.metadata([r.spec.output_lfn for r in done])
            store.set_output([(r.name, found[r.spec.output_lfn].size,
                               found[r.spec.output_lfn].checksum)
                              for r in done if r.spec.output_lfn in found])


def wait(
    store: Store,
    backend: Backend,
    names: Sequence[str],
    poll_seconds: float = 2.0,
    timeout: float | None = None,
    on_update: Callable[[list[JobRecord]], None] | None = None,
) -> list[JobRecord]:
    """Poll until every named job is final (or ``timeout`` seconds pass); return their records."""
    start = time.monotonic()
    wanted = set(names)
    while True:
        records = [r for r in refresh(store, backend) if r.name in wanted]
        if on_update:
            on_update(records)
        if all(r.status.is_final for r in records):
            return records
        if timeout is not None and time.monotonic() - start > timeout:
            return records
        time.sleep(poll_seconds)
