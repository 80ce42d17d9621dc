"""Failure classes from DIRAC's own Status / MinorStatus / ApplicationStatus strings.

The table is ``../shared/ANCHORS.md``'s "What DIRAC tells about a failure" (the strings as
DIRAC 9 sets them, in ``JobMinorStatus.py``, the JobWrapper, its Watchdog, the
StalledJobAgent, the JobDB and the InputData / JobScheduling optimizers), plus what the DIRAC
box was seen to report (``tests/dirac/test_dirac_run.py`` checks those against a live DIRAC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protopipe_grid_interface.backends.fake import FakeBackend
from protopipe_grid_interface.config import RunSection
from protopipe_grid_interface.models import FailureClass, JobSpec, JobState, JobStatus
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import failures
from protopipe_grid_interface.workflow.failures import classify

SpecFactory = Callable[..., JobSpec]
F, R, S = JobStatus.FAILED, JobStatus.RESCHEDULED, JobStatus.STALLED

#: (status, minor status, application status) -> class, as DIRAC reports them
DIRAC_STRINGS: list[tuple[JobStatus, str, str, FailureClass]] = [
    # input data, optimizers (seen on the box: the first and the third)
    (F, "InputData optimizer", "Input data not available", FailureClass.INPUT_DATA),
    (F, "InputData optimizer", "No replica Info available", FailureClass.INPUT_DATA),
    (F, "JobScheduling optimizer", "Impossible InputData * Site requirements",
     FailureClass.INPUT_DATA),
    (F, "InputData optimizer", "No candidate sites available", FailureClass.INPUT_DATA),
    (F, "JobScheduling optimizer", "Site candidates do not have all the input data",
     FailureClass.INPUT_DATA),
    (F, "JobScheduling optimizer", "No possible site candidates", FailureClass.INPUT_DATA),
    (F, "JobScheduling optimizer", "No destination sites available", FailureClass.INPUT_DATA),
    (F, "JobScheduling optimizer", "Stage not allowed", FailureClass.INPUT_DATA),
    (F, "JobScheduling optimizer", "Cannot find tape replicas", FailureClass.INPUT_DATA),
    # input data, worker node (the wrapper puts "Failed <minor> " in the application status)
    (R, "Input Data Resolution", "Failed Input Data Resolution ", FailureClass.INPUT_DATA),
    (F, "Input Data Not Available", "Unknown", FailureClass.INPUT_DATA),
    # too many reschedules: the last reschedule's cause stays in the application status
    (F, "Maximum of reschedulings reached", "Failed Input Data Resolution ",
     FailureClass.RESCHEDULINGS),
    (F, "Maximum of reschedulings reached", "Unknown", FailureClass.RESCHEDULINGS),
    # stalled pilots (StalledJobAgent)
    (S, "Job stalled: pilot not running", "Unknown", FailureClass.STALLED),
    (F, "Job stalled: pilot not running", "Unknown", FailureClass.STALLED),
    (F, "Stalling for more than 3600 sec", "Unknown", FailureClass.STALLED),
    (S, "Running", "Unknown", FailureClass.STALLED),
    # the job wrapper's Watchdog: its stalled is not a stalled pilot; the payload it killed
    # exits non-zero, yet the job failed for the watchdog's reason
    (F, "Watchdog identified this job as stalled", "Unknown", FailureClass.WATCHDOG),
    (F, "Job has reached the CPU limit of the queue", "Unknown", FailureClass.WATCHDOG),
    (F, "Job has exceeded maximum wall clock time", "pgi Exited With Status 137",
     FailureClass.WATCHDOG),
    (F, "Job has insufficient disk space to continue", "Unknown", FailureClass.WATCHDOG),
    (F, "Received Kill signal", "Unknown", FailureClass.WATCHDOG),
    # sandboxes and uploads
    (R, "Downloading InputSandbox", "Failed Downloading InputSandbox ", FailureClass.UPLOAD),
    (F, "Failed Downloading InputSandbox", "Unknown", FailureClass.UPLOAD),
    (F, "Uploading Output Data", "Unknown", FailureClass.UPLOAD),
    (R, "Uploading Outputs", "Failed Uploading Outputs ", FailureClass.UPLOAD),
    (F, "Failed sending requests", "Unknown", FailureClass.UPLOAD),
    # the application (seen on the box: the first; "pgi" is our executable pgi_job.sh)
    (F, "Application Finished With Errors", "pgi Exited With Status 3",
     FailureClass.APPLICATION),
    (F, "Application not found", "Unknown", FailureClass.APPLICATION),
    (F, "Exception During Execution", "Unknown", FailureClass.APPLICATION),
    # a failed job with failover requests: the minor status says so, the exit status remains
    (F, "Pending Requests", "pgi Exited With Status 1", FailureClass.APPLICATION),
    # nothing known
    (F, "Application thread did not complete", "Unknown", FailureClass.UNKNOWN),
    (F, "", "", FailureClass.UNKNOWN),
]


@pytest.mark.parametrize(("status", "minor", "application", "expected"), DIRAC_STRINGS,
                         ids=[f"{m or '-'} / {a or '-'}" for _, m, a, _ in DIRAC_STRINGS])
def test_diracs_strings_classify_to_their_class(status: JobStatus, minor: str,
                                                application: str,
                                                expected: FailureClass) -> None:
    assert classify(status, minor, application) == expected


def test_classify_ignores_case() -> None:
    assert classify(F, "INPUTDATA OPTIMIZER", "") == FailureClass.INPUT_DATA


# --- what run does with a job in a state ---------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "state.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[FakeBackend]:
    fake = FakeBackend(tmp_path / "fake")
    yield fake
    fake.close()


def ended(store: Store, job_spec: SpecFactory, status: JobStatus, minor: str,
          application: str = "", site: str = "") -> None:
    """One job, submitted as backend job 7, now in this state."""
    spec = job_spec("job")
    store.add_planned([spec])
    store.mark_submitted("fake", [(spec.name, 7)])
    store.update_states({spec.name: JobState(7, status, minor, application, site)})


def test_completed_with_pending_requests_is_not_a_failure_since_it_is_not_final(
        store: Store, backend: FakeBackend, job_spec: SpecFactory) -> None:
    """DIRAC's Completed / "Pending Requests": the outputs are still in transit."""
    ended(store, job_spec, JobStatus.COMPLETED, "Pending Requests")

    accepted, decisions = failures.failed_attempts(store, backend, store.jobs(), RunSection(),
                                                   datetime.now(UTC))

    assert not JobStatus.COMPLETED.is_final
    assert (accepted, decisions) == ([], [])


def test_a_failed_job_is_decided_on_by_its_class(store: Store, backend: FakeBackend,
                                                 job_spec: SpecFactory) -> None:
    ended(store, job_spec, F, "Application Finished With Errors", "pgi Exited With Status 3",
          "DIRAC.Box.local")

    _, [decision] = failures.failed_attempts(store, backend, store.jobs(), RunSection(),
                                             datetime.now(UTC))

    assert (decision.failure, decision.action) == (FailureClass.APPLICATION, "stop")
    assert decision.detail == "Application Finished With Errors; pgi Exited With Status 3"
    assert "at DIRAC.Box.local" in decision.line()


def test_a_job_failed_before_any_site_is_not_said_to_have_failed_at_one(
        store: Store, backend: FakeBackend, job_spec: SpecFactory) -> None:
    """DIRAC's optimizers fail a job at site "ANY" (seen on the box)."""
    ended(store, job_spec, F, "InputData optimizer", "Input data not available", "ANY")

    _, [decision] = failures.failed_attempts(store, backend, store.jobs(), RunSection(),
                                             datetime.now(UTC))

    assert decision.line() == "job (attempt 1) failed: input data; retried"
