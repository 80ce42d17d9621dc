"""Submission: never a duplicate job, never a job whose output exists, recoverable at any point.

Most tests use the in-process fake backend holding its jobs (``FakeBackend(hold=True)``: they
stay ``Waiting`` where a test does not move them). What is tested here is the bookkeeping
between the store and the backend, not running jobs; the end-to-end and ``kill -9`` tests use
the real, running local backend (jobs in processes, a process killed).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from contract import interrupt_once, write

from protopipe_grid_interface.backends.base import Backend
from protopipe_grid_interface.backends.fake import FakeBackend
from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.checksums import adler32
from protopipe_grid_interface.exceptions import BackendError
from protopipe_grid_interface.models import UNCONFIRMED, JobSpec, JobState, JobStatus
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import track
from protopipe_grid_interface.workflow.submit import not_resubmitted, requeue_failed, submit

PAYLOAD_ENV = Path(sys.prefix)
Specs = Callable[[int], list[JobSpec]]


def all_ids(backend: Backend) -> list[int]:
    return backend.select_jobs()


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(hold=True) as held:
        yield held


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "state.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def specs(job_spec: Callable[..., JobSpec]) -> Specs:
    """``specs(n)``: n specs with distinct names and output LFNs under the tester's home."""
    return lambda n: [job_spec(f"job_{i:04d}") for i in range(n)]


def one_job_per_name(backend: Backend, names: list[str]) -> dict[str, int]:
    found = backend.find_jobs(names)
    assert {name: len(found.get(name, [])) for name in names} == dict.fromkeys(names, 1)
    return {name: ids[0] for name, ids in found.items()}


def assert_store_matches_backend(store: Store, backend: Backend, names: list[str]) -> None:
    on_backend = one_job_per_name(backend, names)
    records = store.jobs(names=names)
    assert len(records) == len(names)
    assert {r.name: r.backend_id for r in records} == on_backend
    assert all(r.backend == backend.name for r in records)


# --- idempotence ------------------------------------------------------------------------------
def test_second_submit_of_the_same_specs_submits_nothing(
        store: Store, backend: FakeBackend, specs: Specs) -> None:
    planned = specs(25)

    first = submit(store, backend, planned, chunk_size=10)
    second = submit(store, backend, planned, chunk_size=10)

    assert (first.planned, len(first.submitted)) == (25, 25)
    assert (second.planned, second.submitted, second.already_submitted) == (0, [], 25)
    assert len(all_ids(backend)) == 25
    assert_store_matches_backend(store, backend, [s.name for s in planned])
    assert {r.status for r in store.jobs()} == {JobStatus.RECEIVED}


def test_jobs_whose_output_exists_are_done_and_not_submitted(
        store: Store, backend: FakeBackend, specs: Specs, tmp_path: Path) -> None:
    planned = specs(4)
    existing = planned[2]
    local = write(tmp_path / "present.txt", b"made by an earlier run")
    backend.put_file(local, existing.output_lfn, "LOCAL-SE")

    report = submit(store, backend, planned)

    assert report.skipped_existing == 1
    assert sorted(name for name, _ in report.submitted) == sorted(
        s.name for s in planned if s is not existing)
    assert existing.name not in backend.find_jobs([existing.name])
    [record] = store.jobs(names=[existing.name])
    assert (record.status, record.backend_id) == (JobStatus.DONE, None)
    assert (record.output_size, record.output_checksum) == (local.stat().st_size, adler32(local))
    assert len(all_ids(backend)) == 3


# --- recovery of interrupted submissions ------------------------------------------------------
def test_kill_between_backend_submit_and_mark_submitted_is_adopted(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned = specs(5)
    real_mark = Store.mark_submitted
    seen: list[int] = []

    def mark_submitted(self: Store, name: str, pairs: list[tuple[str, int]]) -> None:
        seen.append(1)
        if len(seen) == 2:  # the second chunk: the backend has the jobs, the store not yet
            raise KeyboardInterrupt
        real_mark(self, name, pairs)

    monkeypatch.setattr(Store, "mark_submitted", mark_submitted)
    with pytest.raises(KeyboardInterrupt):
        submit(store, backend, planned, chunk_size=2)
    monkeypatch.setattr(Store, "mark_submitted", real_mark)
    states = {r.name: r.status for r in store.jobs()}
    assert list(states.values()) == [JobStatus.RECEIVED] * 2 + [JobStatus.SENDING] * 2 + [
        JobStatus.PLANNED]
    orphan_ids = [backend.find_jobs([planned[i].name])[planned[i].name] for i in (2, 3)]

    report = submit(store, backend, planned, chunk_size=2)

    assert report.recovered == 2
    assert [name for name, _ in report.submitted] == [planned[4].name]
    assert len(all_ids(backend)) == 5
    assert_store_matches_backend(store, backend, [s.name for s in planned])
    adopted = store.jobs(names=[planned[2].name, planned[3].name])
    assert [[r.backend_id] for r in adopted] == orphan_ids
    assert all(r.attempts == 1 for r in store.jobs())


def test_kill_before_the_backend_call_resubmits_exactly_once(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned = specs(3)
    interrupt_once(monkeypatch, backend, "submit")
    with pytest.raises(KeyboardInterrupt):
        submit(store, backend, planned)
    assert {r.status for r in store.jobs()} == {JobStatus.SENDING}
    assert all_ids(backend) == []
    monkeypatch.undo()

    report = submit(store, backend, planned)

    assert report.recovered == 0
    assert len(report.submitted) == 3
    assert_store_matches_backend(store, backend, [s.name for s in planned])


def test_interrupted_resubmission_adopts_the_new_job_not_the_old_one(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    [spec] = specs(1)
    [(_, old_id)] = submit(store, backend, [spec]).submitted
    backend.set_failed([old_id], "test")
    track.refresh(store, backend)
    assert requeue_failed(store) == [spec.name]
    interrupt_once(monkeypatch, store, "mark_submitted")
    with pytest.raises(KeyboardInterrupt):
        submit(store, backend, [spec])
    monkeypatch.undo()
    [old, new] = backend.find_jobs([spec.name])[spec.name]
    assert old == old_id

    report = submit(store, backend, [spec])

    assert report.recovered == 1 and report.submitted == []
    [record] = store.jobs()
    assert (record.backend_id, record.attempts, record.status) == (new, 2, JobStatus.WAITING)
    assert backend.find_jobs([spec.name])[spec.name] == [old, new]


def test_recovery_keeps_one_of_several_backend_jobs_and_kills_the_others(
        store: Store, backend: FakeBackend, specs: Specs) -> None:
    [spec] = specs(1)
    store.add_planned([spec])
    store.mark_sending([spec.name])
    first = backend.submit([spec])[0]   # e.g. a backend call retried after a timeout
    second = backend.submit([spec])[0]

    report = submit(store, backend, [spec])

    assert report.recovered == 1 and report.submitted == []
    assert store.jobs()[0].backend_id == second
    states = backend.status([first, second])
    assert (states[first].status, states[second].status) == (JobStatus.KILLED, JobStatus.WAITING)


def unconfirmed_submission(store: Store, backend: FakeBackend, planned: list[JobSpec],
                           monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A submission killed between the backend's submit and confirm: the jobs exist on the
    backend, unconfirmed, and the store has them Sending. Returns their ids by name."""
    with monkeypatch.context() as patch:
        interrupt_once(patch, backend, "confirm")
        with pytest.raises(KeyboardInterrupt):
            submit(store, backend, planned)
    ids = one_job_per_name(backend, [s.name for s in planned])
    assert {s.status: s.minor_status for s in backend.status(list(ids.values())).values()} == {
        JobStatus.SUBMITTING: UNCONFIRMED}
    assert {r.status for r in store.jobs()} == {JobStatus.SENDING}
    return ids


def test_jobs_left_unconfirmed_by_a_killed_submission_are_confirmed_not_duplicated(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned = specs(3)
    ids = unconfirmed_submission(store, backend, planned, monkeypatch)

    report = submit(store, backend, planned)

    assert (report.recovered, report.confirmed, report.submitted) == (3, 3, [])
    assert one_job_per_name(backend, [s.name for s in planned]) == ids
    assert {s.status for s in backend.status(list(ids.values())).values()} == {
        JobStatus.WAITING}
    assert {(r.status, r.attempts) for r in store.jobs()} == {(JobStatus.WAITING, 1)}


def test_unconfirmed_jobs_an_earlier_version_adopted_are_confirmed(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The state the issue found: adopted by name, but left Submitting on the backend and in
    the store, where the status refresh never looked at them again."""
    planned = specs(2)
    ids = unconfirmed_submission(store, backend, planned, monkeypatch)
    store.mark_submitted(backend.name, list(ids.items()))
    track.refresh(store, backend)
    assert {(r.status, r.minor_status) for r in store.jobs()} == {
        (JobStatus.SUBMITTING, UNCONFIRMED)}

    report = submit(store, backend, planned)

    assert (report.recovered, report.confirmed, report.submitted) == (0, 2, [])
    assert report.already_submitted == 2
    assert one_job_per_name(backend, [s.name for s in planned]) == ids
    assert {r.status for r in track.refresh(store, backend)} == {JobStatus.WAITING}


def test_jobs_dirac_failed_for_want_of_confirmation_are_submitted_again(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """DIRAC's StalledJobAgent fails jobs left unconfirmed for 300 s, keeping their minor
    status: they never ran, so the recovery submits them again, once."""
    planned = specs(2)
    ids = unconfirmed_submission(store, backend, planned, monkeypatch)
    for job_id in ids.values():
        backend.set_status(job_id, JobStatus.FAILED, UNCONFIRMED)

    report = submit(store, backend, planned)

    assert (report.recovered, report.confirmed) == (2, 0)
    assert sorted(name for name, _ in report.submitted) == [s.name for s in planned]
    found = backend.find_jobs([s.name for s in planned])
    new = {name: job_ids[-1] for name, job_ids in found.items()}
    assert {name: job_ids[0] for name, job_ids in found.items()} == ids
    assert all(len(job_ids) == 2 for job_ids in found.values())
    assert {(r.backend_id, r.attempts, r.status) for r in store.jobs()} == {
        (new[name], 2, JobStatus.RECEIVED) for name in new}


def test_a_submission_that_cannot_confirm_leaves_no_job(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned = specs(3)

    def refuse(ids: list[int]) -> None:
        raise BackendError("confirmBulkSubmission: Requested jobs for bulk transaction are "
                           "not valid")

    with monkeypatch.context() as patch:
        patch.setattr(backend, "confirm", refuse)
        with pytest.raises(BackendError):
            submit(store, backend, planned)
    assert all_ids(backend) == []

    report = submit(store, backend, planned)

    assert (len(report.submitted), report.recovered) == (3, 0)
    assert_store_matches_backend(store, backend, [s.name for s in planned])


# --- waiting never hangs ----------------------------------------------------------------------
def test_a_wait_gives_up_on_held_jobs_after_the_limit_and_names_them(
        store: Store, backend: FakeBackend, specs: Specs) -> None:
    planned = specs(3)
    names = [s.name for s in planned]
    ids = dict(submit(store, backend, planned).submitted)
    backend.set_status(ids[names[0]], JobStatus.DONE, "Execution Complete")
    backend.set_status(ids[names[1]], JobStatus.RUNNING, "Application")
    started = time.monotonic()

    running = track.wait(store, backend, names, poll_seconds=0.1, held_after=1.0, timeout=3)

    assert running.timed_out and time.monotonic() - started < 10
    # the waiting job is held; the running one is not (it runs), so the wait went on
    assert {cause: [r.name for r in found] for cause, found in running.stuck.items()} == {
        track.Stuck.HELD: [names[2]]}
    backend.set_status(ids[names[1]], JobStatus.DONE, "Execution Complete")
    started = time.monotonic()

    result = track.wait(store, backend, names, poll_seconds=0.1, held_after=1.0, timeout=30)

    assert not result.timed_out and time.monotonic() - started < 10
    assert {cause: [r.name for r in found] for cause, found in result.stuck.items()} == {
        track.Stuck.HELD: [names[2]]}
    assert {r.name: r.status for r in result.records} == {
        names[0]: JobStatus.DONE, names[1]: JobStatus.DONE, names[2]: JobStatus.WAITING}


def test_a_wait_on_unconfirmed_jobs_ends_within_its_limit(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned = specs(2)
    ids = unconfirmed_submission(store, backend, planned, monkeypatch)
    store.mark_submitted(backend.name, list(ids.items()))  # as an earlier version left them
    monkeypatch.setattr(track, "UNCONFIRMED_LIMIT", 1.0)
    started = time.monotonic()

    result = track.wait(store, backend, [s.name for s in planned], poll_seconds=0.1)

    assert 1.0 < time.monotonic() - started < 10
    assert {cause: sorted(r.name for r in found) for cause, found in result.stuck.items()} == {
        track.Stuck.UNCONFIRMED: [s.name for s in planned]}
    assert {r.status for r in result.records} == {JobStatus.SUBMITTING}


def test_a_wait_on_jobs_never_sent_ends_at_once(
        store: Store, backend: FakeBackend, specs: Specs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned = specs(2)
    with monkeypatch.context() as patch:
        interrupt_once(patch, backend, "submit")
        with pytest.raises(KeyboardInterrupt):
            submit(store, backend, planned)

    result = track.wait(store, backend, [s.name for s in planned], poll_seconds=60)

    assert {cause: len(found) for cause, found in result.stuck.items()} == {
        track.Stuck.NOT_SUBMITTED: 2}


def test_stuck_jobs_by_cause(store: Store, backend: FakeBackend, specs: Specs) -> None:
    planned = specs(5)
    ids = dict(submit(store, backend, planned[1:]).submitted)
    store.add_planned(planned[:1])
    for spec, status in zip(planned[1:], (JobStatus.SUBMITTING, JobStatus.RUNNING,
                                          JobStatus.FAILED, JobStatus.STALLED), strict=True):
        backend.set_status(ids[spec.name], status, "x")
    records = track.refresh(store, backend)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    later = datetime.now(UTC) + timedelta(seconds=400)

    def causes(held_after: float | None, now: datetime) -> dict[str, list[str]]:
        found = track.stuck_jobs(records, held_after, now)
        return {cause.value: [r.name for r in jobs] for cause, jobs in found.items()}

    planned_name, submitting, _, _, stalled = (s.name for s in planned)
    assert causes(None, soon) == {"not submitted": [planned_name]}
    assert causes(None, later) == {"not submitted": [planned_name],
                                   "unconfirmed": [submitting]}
    assert causes(10, soon) == {"not submitted": [planned_name], "unconfirmed": [submitting],
                                "held": [stalled]}
    assert causes(3600, later) == {"not submitted": [planned_name],
                                   "unconfirmed": [submitting]}


CHILD = """
import json, sys
from pathlib import Path
from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.models import JobSpec
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow.submit import submit

root = Path(sys.argv[1])
specs = [JobSpec.from_dict(d) for d in json.loads((root / "specs.json").read_text())]
backend = LocalBackend(root / "grid", payload_env=Path(sys.prefix), max_parallel=1,
                       user="tester")
submit(Store(root / "state.sqlite"), backend, specs, chunk_size=10)
"""


def test_kill_9_during_submission_never_duplicates(tmp_path: Path, specs: Specs) -> None:
    """SIGKILL a real submitting process at random points, then finish in-process."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    planned = specs(300)
    names = [s.name for s in planned]
    (tmp_path / "specs.json").write_text(json.dumps([s.to_dict() for s in planned]))
    (tmp_path / "child.py").write_text(CHILD)
    backend = LocalBackend(tmp_path / "grid", payload_env=PAYLOAD_ENV, max_parallel=1,
                           user="tester")

    def on_backend() -> int:
        return sum(len(ids) for ids in backend.find_jobs(names).values())

    kills = []  # jobs on the backend when each SIGKILL landed
    try:
        for _ in range(3):
            before = on_backend()
            child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path)])
            deadline = time.monotonic() + 30
            while on_backend() == before and child.poll() is None:
                assert time.monotonic() < deadline, "the child never started submitting"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.3))
            child.send_signal(signal.SIGKILL)
            code = child.wait(timeout=30)
            if code == 0:  # finished before the signal
                break
            assert code == -signal.SIGKILL
            kills.append(on_backend())
        print(f"seed {seed}: jobs on the backend at each SIGKILL: {kills}")
        assert kills and kills[0] < 300, f"no SIGKILL landed mid-submission (seed {seed})"

        store = Store(tmp_path / "state.sqlite")
        report = submit(store, backend, planned, chunk_size=10)

        assert_store_matches_backend(store, backend, names)
        assert len(all_ids(backend)) == 300, f"seed {seed}, kills at {kills}"
        assert all(r.backend_id is not None and r.attempts == 1 for r in store.jobs())
        # a kill between the backend's submit and confirm left jobs unconfirmed: none is now
        states = backend.status(all_ids(backend))
        assert JobStatus.SUBMITTING not in {s.status for s in states.values()}
        # every job is counted once: submitted now, recovered now, or submitted before
        assert len(report.submitted) + report.recovered + report.already_submitted == 300
        store.close()
    finally:
        backend.kill(all_ids(backend))


# --- resubmission -----------------------------------------------------------------------------
def test_requeue_failed_takes_only_failed_and_killed_and_resubmits_each_once(
        store: Store, backend: FakeBackend, specs: Specs) -> None:
    planned = specs(6)
    ids = dict(submit(store, backend, planned).submitted)
    failed, killed, done, waiting = planned[0].name, planned[1].name, planned[2].name, \
        planned[3].name
    also_failed = planned[4].name
    backend.set_failed([ids[failed], ids[also_failed]], "test")
    backend.kill([ids[killed]])
    backend.set_status(ids[done], JobStatus.DONE, "Execution Complete")
    track.refresh(store, backend)

    chosen = requeue_failed(store)

    assert sorted(chosen) == sorted([failed, killed, also_failed])
    by_name = {r.name: r for r in store.jobs()}
    assert {n for n, r in by_name.items() if r.status == JobStatus.PLANNED} == set(chosen)
    assert by_name[done].status == JobStatus.DONE
    assert by_name[waiting].status == JobStatus.WAITING

    report = submit(store, backend, planned)

    assert sorted(name for name, _ in report.submitted) == sorted(chosen)
    found = backend.find_jobs([s.name for s in planned])
    assert {n: len(v) for n, v in found.items()} == {
        s.name: 2 if s.name in chosen else 1 for s in planned}
    for name in chosen:
        record = store.jobs(names=[name])[0]
        assert (record.backend_id, record.attempts) == (found[name][1], 2)
    assert submit(store, backend, planned).submitted == []


def test_requeue_failed_by_name_leaves_the_others(
        store: Store, backend: FakeBackend, specs: Specs) -> None:
    planned = specs(3)
    ids = [i for _, i in submit(store, backend, planned).submitted]
    backend.set_failed(ids, "test")
    track.refresh(store, backend)

    assert requeue_failed(store, names=[planned[1].name]) == [planned[1].name]
    assert [r.status for r in store.jobs()] == [
        JobStatus.FAILED, JobStatus.PLANNED, JobStatus.FAILED]


def test_not_resubmitted_names_the_failed_jobs_of_a_plan_from_fresh_states(
        store: Store, backend: FakeBackend, specs: Specs) -> None:
    planned = specs(4)
    ids = dict(submit(store, backend, planned).submitted)
    backend.set_failed([ids[planned[0].name]], "test")  # not yet seen by the store
    backend.kill([ids[planned[1].name]])

    again = submit(store, backend, planned)
    left = not_resubmitted(store, backend, planned[1:])

    assert again.submitted == []
    assert [(r.name, r.status) for r in left] == [(planned[1].name, JobStatus.KILLED)]
    assert store.jobs(names=[planned[0].name])[0].status == JobStatus.RECEIVED  # not asked
    assert {r.status for r in store.jobs(names=[s.name for s in planned[2:]])} == {
        JobStatus.WAITING}


# --- tracking ---------------------------------------------------------------------------------
def test_refresh_asks_for_at_most_1000_jobs_per_status_call(
        store: Store, backend: FakeBackend, specs: Specs, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned = specs(2500)
    ids = dict(submit(store, backend, planned, chunk_size=500).submitted)
    assert len(ids) == 2500
    failed = [ids[s.name] for s in planned[:7]]
    done = planned[7]
    backend.set_failed(failed, "test")
    backend.set_status(ids[done.name], JobStatus.DONE, "Execution Complete")
    output = write(tmp_path / "out.txt", b"result")
    backend.put_file(output, done.output_lfn, "LOCAL-SE")
    calls: list[list[int]] = []
    real_status = backend.status

    def counting_status(job_ids: list[int]) -> dict[int, JobState]:
        calls.append(list(job_ids))
        return real_status(job_ids)

    monkeypatch.setattr(backend, "status", counting_status)

    track.refresh(store, backend)

    assert sorted(len(c) for c in calls) == [500, 1000, 1000]
    assert sorted(i for c in calls for i in c) == sorted(ids.values())
    by_name = {r.name: r for r in store.jobs()}
    assert [by_name[s.name].status for s in planned[:8]] == [JobStatus.FAILED] * 7 + [
        JobStatus.DONE]
    assert (by_name[done.name].output_size, by_name[done.name].output_checksum) == (
        6, adler32(output))
    assert by_name[planned[8].name].status == JobStatus.WAITING

    calls.clear()
    track.refresh(store, backend)  # final jobs are not asked about again
    assert sorted(len(c) for c in calls) == [492, 1000, 1000]


def test_refresh_active_records_what_changed_without_decoding_a_spec(
        store: Store, backend: FakeBackend, specs: Specs, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned = specs(4)
    ids = dict(submit(store, backend, planned).submitted)
    done, failed, running, held = (s.name for s in planned)
    backend.set_status(ids[done], JobStatus.DONE, "Execution Complete")
    backend.put_file(write(tmp_path / "out.txt", b"result"), planned[0].output_lfn, "LOCAL-SE")
    backend.set_failed([ids[failed]], "test")
    backend.set_status(ids[running], JobStatus.RUNNING, "Application")

    def refuse(data: dict[str, object]) -> JobSpec:
        raise AssertionError("a spec was decoded")

    monkeypatch.setattr(JobSpec, "from_dict", refuse)

    assert track.refresh_active(store, backend) == 4  # Received -> Waiting too
    rows = {r.name: r for r in store.job_rows()}
    assert {name: rows[name].status for name in rows} == {
        done: JobStatus.DONE, failed: JobStatus.FAILED, running: JobStatus.RUNNING,
        held: JobStatus.WAITING}
    assert (rows[done].output_size, rows[done].output_checksum) == (6, adler32(
        tmp_path / "out.txt"))
    assert track.refresh_active(store, backend) == 0
    backend.set_status(ids[held], JobStatus.RUNNING, "Application")
    assert track.refresh_active(store, backend, planned[0].stage) == 1


def test_submit_wait_end_to_end_on_the_running_local_backend(
        tmp_path: Path, store: Store, job_spec: Callable[..., JobSpec]) -> None:
    backend = LocalBackend(tmp_path / "grid", payload_env=PAYLOAD_ENV, user="tester")
    planned = [job_spec("e2e_ok"),
               job_spec("e2e_fail", steps=(("python", "-c", "raise SystemExit(3)"),))]

    submit(store, backend, planned)
    records = track.wait(store, backend, [s.name for s in planned], poll_seconds=0.1,
                         timeout=60).records

    by_name = {r.name: r for r in records}
    assert by_name["e2e_ok"].status == JobStatus.DONE
    assert (by_name["e2e_ok"].output_size, by_name["e2e_ok"].output_checksum) == (
        1, backend.metadata([planned[0].output_lfn])[planned[0].output_lfn].checksum)
    assert by_name["e2e_fail"].status == JobStatus.FAILED
    assert "Exited With Status 3" in by_name["e2e_fail"].application_status
    history = [status for status, *_ in store.history("e2e_ok")]
    assert history[:3] == ["Planned", "Sending", "Received"] or history[:2] == [
        "Sending", "Received"]
    assert history[-1] == "Done"
