"""Sites and fault injection on the local backend: each failure class with DIRAC's strings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from contract import wait_final
from test_local_backend import PAYLOAD_ENV, stop_leftovers

from protopipe_grid_interface.backends.faults import HOLD, Fault
from protopipe_grid_interface.backends.local import DEFAULT_SITES, SITE, LocalBackend
from protopipe_grid_interface.exceptions import InputError
from protopipe_grid_interface.models import FailureClass, JobSpec, JobStatus
from protopipe_grid_interface.workflow.failures import classify

OTHER = DEFAULT_SITES[1]
INJECTABLE = [f for f in FailureClass
              if f not in (FailureClass.EMPTY_OUTPUT, FailureClass.UNKNOWN)]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    local = LocalBackend(tmp_path / "grid", payload_env=PAYLOAD_ENV, max_parallel=4)
    yield local
    local.clear_faults()
    stop_leftovers(local)


@pytest.fixture
def spec(backend: LocalBackend, job_spec: Callable[..., JobSpec]) -> Callable[..., JobSpec]:
    """A job named ``name`` whose one step writes its output (it ends Done unless hit)."""

    def make(name: str, banned: tuple[str, ...] = ()) -> JobSpec:
        return replace(job_spec(name, home=backend.home()), banned_sites=banned)

    return make


def history(backend: LocalBackend, job_id: int) -> list[tuple[str, str]]:
    """(status, minor status) of each state change of a job, in order."""
    rows = backend.db.execute("SELECT status, minor_status FROM job_history WHERE id = ? "
                              "ORDER BY rowid", (job_id,))
    return [(status, minor) for status, minor in rows]


@pytest.mark.parametrize("failure", INJECTABLE)
def test_each_class_fails_the_jobs_it_names_with_strings_that_classify_to_it(
        backend: LocalBackend, spec: Callable[..., JobSpec], failure: FailureClass) -> None:
    hit, spared = spec("DL2_hit_run1"), spec("DL2_spared_run1")
    backend.inject(Fault(failure, job_name="*_hit_*"))

    ids = backend.submit([hit, spared])
    states = wait_final(backend, ids)

    state, log = states[ids[0]], backend.job_log(ids[0])
    assert state.status == JobStatus.FAILED, log
    assert classify(state.status, state.minor_status, state.application_status) == failure
    assert state.site in DEFAULT_SITES
    assert "ERROR" in log and "injected fault" in log
    assert states[ids[1]].status == JobStatus.DONE, backend.job_log(ids[1])
    if failure != FailureClass.UPLOAD:
        assert backend.metadata([hit.output_lfn]) == {}
    if failure == FailureClass.INPUT_DATA:
        assert state.minor_status == "Input Data Not Available"
        assert "MissingLFNs" in log and "===" not in log  # no step ran
    if failure == FailureClass.STALLED:
        assert (JobStatus.STALLED, "Job stalled: pilot not running") in history(backend, ids[0])
        assert state.minor_status == "Job stalled: pilot not running"
    if failure == FailureClass.APPLICATION:
        assert state.minor_status == "Application Finished With Errors"
        assert state.application_status == "python Exited With Status 1"
    if failure == FailureClass.RESCHEDULINGS:
        assert state.minor_status == "Maximum of reschedulings reached"
        assert JobStatus.RESCHEDULED in [status for status, _ in history(backend, ids[0])]


def test_upload_fault_leaves_the_output_registered_in_the_catalog(
        backend: LocalBackend, spec: Callable[..., JobSpec]) -> None:
    job = spec("DL2_upload_run1")
    backend.inject(Fault(FailureClass.UPLOAD, job_name=job.name))

    [job_id] = backend.submit([job])
    state = wait_final(backend, [job_id])[job_id]

    assert (state.status, state.minor_status) == (JobStatus.FAILED, "Uploading Output Data")
    assert classify(state.status, state.minor_status, state.application_status) == \
        FailureClass.UPLOAD
    partial = backend.metadata([job.output_lfn])[job.output_lfn]
    assert partial.replicas == (job.output_se,) and partial.size == 1
    assert backend.replica_path(job.output_lfn, job.output_se).read_text() == "x"


def test_a_site_fault_hits_only_jobs_at_that_site_and_a_job_banned_there_runs_elsewhere(
        backend: LocalBackend, spec: Callable[..., JobSpec]) -> None:
    backend.inject(Fault(FailureClass.WATCHDOG, site=OTHER))
    jobs = [spec(f"DL2_site_run{n}") for n in range(4)]
    banned = spec("DL2_banned_run9", banned=(OTHER,))

    ids = backend.submit([*jobs, banned])
    states = wait_final(backend, ids)

    assert {s.site for s in states.values()} == set(DEFAULT_SITES)  # spread over both
    for job_id, state in states.items():
        expected = JobStatus.FAILED if state.site == OTHER else JobStatus.DONE
        assert state.status == expected, (state, backend.job_log(job_id))
    assert states[ids[-1]].site == SITE
    assert states[ids[-1]].status == JobStatus.DONE


def test_times_two_hits_two_attempts_then_lets_the_third_through(
        backend: LocalBackend, spec: Callable[..., JobSpec]) -> None:
    job = spec("DL2_twice_run1")
    backend.inject(Fault(FailureClass.INPUT_DATA, job_name=job.name, times=2))

    [job_id] = backend.submit([job])
    outcomes = [wait_final(backend, [job_id])[job_id].status]
    for _ in range(2):
        backend.reschedule([job_id])
        outcomes.append(wait_final(backend, [job_id])[job_id].status)

    assert outcomes == [JobStatus.FAILED, JobStatus.FAILED, JobStatus.DONE]
    assert backend.injected_faults() == []


def test_a_fault_used_by_jobs_starting_together_hits_exactly_times_attempts(
        backend: LocalBackend, spec: Callable[..., JobSpec]) -> None:
    backend.inject(Fault(FailureClass.APPLICATION, times=3))

    ids = backend.submit([spec(f"DL2_race_run{n}") for n in range(8)])
    states = wait_final(backend, ids)

    assert sorted(s.status for s in states.values()).count(JobStatus.FAILED) == 3
    assert backend.injected_faults() == []


def test_hold_keeps_a_job_waiting_until_the_faults_are_cleared(
        backend: LocalBackend, spec: Callable[..., JobSpec]) -> None:
    held, later = spec("DL2_held_run1"), spec("DL2_later_run2")
    backend.inject(Fault(HOLD, job_name=held.name))

    [held_id, later_id] = backend.submit([held, later])
    # the runner takes Waiting jobs oldest first: the later one ran, so the held one was passed
    assert wait_final(backend, [later_id])[later_id].status == JobStatus.DONE
    state = backend.status([held_id])[held_id]
    assert (state.status, state.site) == (JobStatus.WAITING, "")
    assert backend.injected_faults() == [Fault(HOLD, job_name=held.name)]

    backend.clear_faults()

    assert wait_final(backend, [held_id])[held_id].status == JobStatus.DONE


def test_a_job_banned_from_every_site_stays_waiting(
        backend: LocalBackend, spec: Callable[..., JobSpec]) -> None:
    [nowhere, later] = backend.submit([spec("DL2_nowhere_run1", banned=DEFAULT_SITES),
                                       spec("DL2_later_run2")])

    assert wait_final(backend, [later])[later].status == JobStatus.DONE
    assert backend.status([nowhere])[nowhere].status == JobStatus.WAITING


def test_a_reschedule_clears_the_site_until_the_job_is_matched_again(
        backend: LocalBackend, spec: Callable[..., JobSpec]) -> None:
    [job_id] = backend.submit([spec("DL2_resched_run1", banned=(OTHER,))])
    assert wait_final(backend, [job_id])[job_id].site == SITE
    backend.inject(Fault(HOLD))

    backend.reschedule([job_id])

    state = backend.status([job_id])[job_id]
    assert (state.status, state.site) == (JobStatus.WAITING, "")


def test_sites_are_given_to_the_backend(tmp_path: Path,
                                        job_spec: Callable[..., JobSpec]) -> None:
    local = LocalBackend(tmp_path / "grid", payload_env=PAYLOAD_ENV, sites=["X.one.xx"])
    try:
        [job_id] = local.submit([job_spec("DL2_one_run1", home=local.home())])
        state = wait_final(local, [job_id])[job_id]
    finally:
        stop_leftovers(local)
    assert (state.status, state.site) == (JobStatus.DONE, "X.one.xx")


@pytest.mark.parametrize(("fault", "message"), [
    (lambda: Fault(FailureClass.UNKNOWN), "expected one of"),
    (lambda: Fault(FailureClass.EMPTY_OUTPUT), "expected one of"),
    (lambda: Fault(HOLD, times=1), "times does not apply"),
    (lambda: Fault(FailureClass.STALLED, times=0), "expected 1 or more"),
])
def test_a_fault_that_cannot_be_injected_is_refused(fault: Callable[[], Fault],
                                                    message: str) -> None:
    with pytest.raises(InputError, match=message):
        fault()


def test_sites_must_be_given_and_distinct(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected distinct names"):
        LocalBackend(tmp_path / "grid", sites=[SITE, SITE])
    with pytest.raises(InputError, match="expected distinct names"):
        LocalBackend(tmp_path / "grid", sites=[])
