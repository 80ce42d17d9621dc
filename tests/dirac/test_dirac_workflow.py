"""Submission and tracking workflows against the live DIRAC box.

The jobs here ask for a tag no worker of the box offers, so they stay ``Waiting`` and the
JobAgent never runs them; every job is deleted when its test (or this module) ends.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from contract import count_calls

from protopipe_grid_interface.backends.dirac import DiracBackend, Environment
from protopipe_grid_interface.iterutils import chunked
from protopipe_grid_interface.models import JobSpec, JobStatus, Particle, Stage
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import track
from protopipe_grid_interface.workflow.submit import requeue_failed, submit

pytestmark = pytest.mark.dirac

#: a tag no worker of the box offers: jobs asking for it stay Waiting
HOLD_TAG = "pgi-test-hold"
#: jobs of the shared large submission: more than one status chunk and more than one workflow
#: chunk (the last one a lone job)
MANY = track.STATUS_CHUNK + 1

Specs = Callable[..., list[JobSpec]]


def make_backend(dirac_box: Any) -> DiracBackend:
    return DiracBackend(Environment("venv", sys.prefix), ses=["BOX-SE", "BOX-SE2"],
                        admin_proxy=dirac_box.admin_proxy)


def spec_factory(home: str, se: str) -> Specs:
    """``specs(n, input_lfns=())``: n held specs with fresh names (one DIRAC job group per
    factory)."""
    token = uuid.uuid4().hex[:8]

    def make(n: int, input_lfns: Sequence[str] = ()) -> list[JobSpec]:
        return [JobSpec(name=f"pgi_wf_{token}_{i:05d}", analysis=f"pgi-wf-{token}",
                        stage=Stage.DL2, particle=Particle.GAMMA, input_lfns=tuple(input_lfns),
                        steps=(("python", "-c", f"open('{i:05d}.txt', 'w').write('x')"),),
                        output_file=f"{i:05d}.txt",
                        output_lfn=f"{home}/pgi-wf-test/{token}/{i:05d}.txt", output_se=se,
                        cpu_time=600, tags=(HOLD_TAG,))
                for i in range(n)]

    return make


def delete_jobs(backend: DiracBackend, names: Sequence[str]) -> None:
    """Delete (DIRAC kills them first) every job with these names; check none can still run.

    DIRAC's ``deleteJob`` fails now and then for jobs the optimizers are still busy with, and
    answers "Some jobs failed deletion" for ``Killed`` jobs it does delete, so the outcome is
    read back from the job states, and jobs still active are killed.
    """
    ids = sorted(i for found in backend.find_jobs(names).values() for i in found)
    for chunk in chunked(ids, 1000):
        backend.api.deleteJob(chunk)
        backend.kill(chunk)
        active = {i: s.status for i, s in backend.status(chunk).items()
                  if not s.status.is_final}
        assert not active, f"jobs still active after teardown: {active}"


def wait_backend_status(backend: DiracBackend, ids: Sequence[int], wanted: JobStatus,
                        timeout: float = 120) -> None:
    """Poll the backend until every job is ``wanted`` (the optimizers take a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        states = backend.status(ids)
        if len(states) == len(ids) and all(s.status == wanted for s in states.values()):
            return
        if time.monotonic() > deadline:
            others = {i: s.status for i, s in states.items() if s.status != wanted}
            raise AssertionError(f"{len(others)} jobs not {wanted} after {timeout} s: "
                                 f"{dict(list(others.items())[:5])}")
        time.sleep(1)


@pytest.fixture
def backend(dirac_box: Any) -> DiracBackend:
    return make_backend(dirac_box)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "state.sqlite")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def many(dirac_box: Any, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Store, DiracBackend, list[JobSpec], list[tuple[str, int]]]]:
    """MANY held jobs submitted once through the workflow: (store, backend, specs, submitted).

    Shared by the tests below that only read or refresh them (one bulk submission, not one
    per test: the box needs 15-40 ms a job).
    """
    backend = make_backend(dirac_box)
    store = Store(tmp_path_factory.mktemp("many") / "state.sqlite")
    specs = spec_factory(dirac_box.home, dirac_box.se)(MANY)
    try:
        report = submit(store, backend, specs)
        yield store, backend, specs, report.submitted
    finally:
        store.close()
        delete_jobs(backend, [s.name for s in specs])


def test_bulk_submission_gives_every_job_one_id(
        many: tuple[Store, DiracBackend, list[JobSpec], list[tuple[str, int]]]) -> None:
    store, backend, specs, submitted = many

    assert sorted(name for name, _ in submitted) == [s.name for s in specs]
    assert len({i for _, i in submitted}) == MANY
    records = store.jobs(names=[s.name for s in specs])
    assert {r.name: r.backend_id for r in records} == dict(submitted)
    assert {(r.backend, r.status) for r in records} <= {("dirac", s) for s in (
        JobStatus.RECEIVED, JobStatus.CHECKING, JobStatus.WAITING)}


def test_second_submit_submits_nothing(
        many: tuple[Store, DiracBackend, list[JobSpec], list[tuple[str, int]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, backend, specs, submitted = many
    calls = count_calls(monkeypatch, backend.job_manager, "submitJob")
    before = backend.round_trips

    second = submit(store, backend, specs)

    assert (second.planned, second.submitted, second.already_submitted) == (0, [], MANY)
    assert calls == []
    assert backend.round_trips == before  # not even a catalog look-up
    found = backend.find_jobs([s.name for s in specs])
    assert found == {name: [job_id] for name, job_id in submitted}  # still one job per name


def test_refresh_is_one_status_round_trip_per_thousand_jobs(
        many: tuple[Store, DiracBackend, list[JobSpec], list[tuple[str, int]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, backend, specs, submitted = many
    ids = [job_id for _, job_id in submitted]
    wait_backend_status(backend, ids, JobStatus.WAITING)
    names = [s.name for s in specs]
    history_before = {name: len(store.history(name)) for name in names[:3]}
    calls = count_calls(monkeypatch, backend.api, "getJobStatus")
    before = backend.round_trips

    records = track.refresh(store, backend)

    assert [len(args[0]) for args in calls] == [1000, MANY - 1000]
    assert backend.round_trips - before == 2  # and nothing else (no job is Done)
    mine = [r for r in records if r.name in set(names)]
    assert len(mine) == MANY
    assert {(r.status, r.minor_status) for r in mine} == {
        (JobStatus.WAITING, "Pilot Agent Submission")}
    assert all(len(store.history(name)) == history_before[name] + 1 for name in names[:3])


def test_resubmission_after_a_kill_submits_exactly_that_job(
        dirac_box: Any, backend: DiracBackend, store: Store, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs with input data, as planned jobs always have (the resubmitted job goes alone)."""
    simtel = f"{dirac_box.home}/pgi-wf-test/{uuid.uuid4().hex[:12]}/gamma_run1.simtel.gz"
    local = tmp_path / "gamma_run1.simtel.gz"
    local.write_bytes(b"not really simtel")
    backend.put_file(local, simtel, dirac_box.se)
    specs = spec_factory(dirac_box.home, dirac_box.se)(3, input_lfns=[simtel])
    try:
        first = dict(submit(store, backend, specs).submitted)
        victim = specs[1].name
        backend.kill([first[victim]])
        track.refresh(store, backend)
        statuses = {r.name: r.status for r in store.jobs(names=[s.name for s in specs])}
        assert statuses.pop(victim) == JobStatus.KILLED
        assert JobStatus.KILLED not in statuses.values()

        requeued = requeue_failed(store)
        calls = count_calls(monkeypatch, backend.job_manager, "submitJob")
        again = submit(store, backend, specs)

        assert requeued == [victim]
        assert len(calls) == 1
        [(name, new_id)] = again.submitted
        assert name == victim and new_id not in first.values()
        assert backend.find_jobs([s.name for s in specs]) == {
            s.name: sorted([first[s.name], new_id]) if s.name == victim else [first[s.name]]
            for s in specs}
        [record] = store.jobs(names=[victim])
        assert (record.backend_id, record.attempts, record.status) == (
            new_id, 2, JobStatus.RECEIVED)
        assert [r.backend_id for r in store.jobs(names=[s.name for s in specs])
                if r.name != victim] == [first[s.name] for s in specs if s.name != victim]
    finally:
        delete_jobs(backend, [s.name for s in specs])
        backend.remove([simtel])

