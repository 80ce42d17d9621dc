"""``run``'s failure handling against the live DIRAC box (issue 13): DIRAC itself fails the
jobs, and the Status / MinorStatus / ApplicationStatus it reports are classified by
``failures.classify`` and handled by the class' policy.

- input data: a job whose input LFN is in the catalog without a replica is failed by DIRAC's
  InputData optimizer (seconds, never matched); a job banned from the only site holding its
  input is failed by the JobScheduling optimizer;
- application: a job whose step exits non-zero is run by the box's JobAgent and failed by the
  job wrapper (10-60 s: the one job here that needs the pilot).

Every job is deleted and every file removed when its test ends.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from protopipe_grid_interface.backends.dirac import DiracBackend, Environment
from protopipe_grid_interface.config import RunSection
from protopipe_grid_interface.models import FailureClass, JobSpec, JobStatus, Particle, Stage
from protopipe_grid_interface.store import JobRecord, Store
from protopipe_grid_interface.workflow import failures, sites, track
from protopipe_grid_interface.workflow.submit import submit

pytestmark = pytest.mark.dirac

#: bound of a wait for DIRAC to fail a job: the optimizers take seconds, the shared JobAgent
#: may be running other tests' jobs first
JOB_TIMEOUT = 600.0
#: the box's only site, where BOX-SE is
BOX_SITE = "DIRAC.Box.local"
#: the default policies, and the input data class told to stop instead
DEFAULT = RunSection()
STOP_ON_INPUT_DATA = RunSection.model_validate({"failures": {"input data": {"action": "stop"}}})


@dataclass
class Box:
    """The box's backend, a state database, and what the test made (removed at the end)."""

    backend: DiracBackend
    store: Store
    home: str
    se: str
    token: str
    names: list[str]
    lfns: list[str]

    def specs(self, codes: Sequence[str], inputs: Sequence[str] = (),
              banned_sites: tuple[str, ...] = ()) -> list[JobSpec]:
        """One job per Python ``code`` (its only step), each reading ``inputs``."""
        made = [JobSpec(name=f"pgi_run_{self.token}_{len(self.names) + n}",
                        analysis=f"pgi-run-{self.token}", stage=Stage.DL2,
                        particle=Particle.GAMMA, input_lfns=tuple(inputs),
                        steps=(("python", "-c", code),), output_file="out.txt",
                        output_lfn=f"{self.home}/pgi-run-test/{self.token}/"
                                   f"out_{len(self.names) + n}.txt",
                        output_se=self.se, cpu_time=600, banned_sites=banned_sites)
                for n, code in enumerate(codes)]
        self.names += [s.name for s in made]
        return made

    def put(self, tmp: Path, name: str) -> str:
        """A small file in the catalog, with its replica at the box's SE."""
        lfn = f"{self.home}/pgi-run-test/{self.token}/{name}"
        local = tmp / name
        local.write_text(f"input {name}\n")
        self.backend.put_file(local, lfn, self.se)
        self.lfns.append(lfn)
        return lfn

    def without_replica(self, tmp: Path, name: str) -> str:
        """A file registered in the catalog whose only replica is gone (storage and catalog),
        as when a storage element lost it: DIRAC's ``DataManager`` keeps a file's last
        replica, so the storage element and the catalog are told one after the other."""
        from DIRAC.DataManagementSystem.Client.DataManager import DataManager
        from DIRAC.Resources.Storage.StorageElement import StorageElement

        lfn = self.put(tmp, name)
        for what, result in (("removeFile", StorageElement(self.se).removeFile(lfn)),
                             ("removeReplicaFromCatalog",
                              DataManager().removeReplicaFromCatalog(self.se, [lfn]))):
            assert result["OK"] and not result["Value"]["Failed"], f"{what}: {result}"
        assert self.backend.metadata([lfn])[lfn].replicas == ()
        return lfn

    def failed(self, specs: Sequence[JobSpec]) -> list[JobRecord]:
        """Submit ``specs`` and wait until DIRAC ends them; their records, checked Failed."""
        submit(self.store, self.backend, specs)
        result = track.wait(self.store, self.backend, [s.name for s in specs],
                            poll_seconds=2.0, timeout=JOB_TIMEOUT)
        assert not result.timed_out, f"not final after {JOB_TIMEOUT} s: {said(result.records)}"
        assert {r.status for r in result.records} == {JobStatus.FAILED}, said(result.records)
        return result.records


def said(records: Sequence[JobRecord]) -> str:
    """What DIRAC said of each job, for assertion messages."""
    return "; ".join(f"{r.name} #{r.backend_id}: {r.status.value} / {r.minor_status!r} / "
                     f"{r.application_status!r} at {r.site!r}" for r in records)


@pytest.fixture(scope="module")
def backend(dirac_box: Any) -> DiracBackend:
    return DiracBackend(Environment("venv", sys.prefix), ses=["BOX-SE", "BOX-SE2"],
                        admin_proxy=dirac_box.admin_proxy)


@pytest.fixture
def box(dirac_box: Any, backend: DiracBackend, tmp_path: Path) -> Iterator[Box]:
    store = Store(tmp_path / "state.sqlite")
    made = Box(backend, store, dirac_box.home, dirac_box.se, uuid.uuid4().hex[:8], [], [])
    try:
        yield made
    finally:
        store.close()
        ids = sorted(i for found in backend.find_jobs(made.names).values() for i in found)
        if ids:
            backend.delete(ids)
        backend.remove(made.lfns)


def handle(box: Box, record: JobRecord, policies: RunSection, now: datetime
           ) -> failures.Decision:
    """What ``run`` does with one failed attempt: decided by ``policies``, then carried out."""
    accepted, decisions = failures.failed_attempts(box.store, box.backend, [record], policies,
                                                   now)
    assert accepted == [] and len(decisions) == 1, (accepted, decisions)
    failures.apply(box.store, box.backend, decisions)
    return decisions[0]


def test_an_input_lfn_without_replica_is_failed_by_dirac_as_input_data_and_handled_by_policy(
        box: Box, tmp_path: Path) -> None:
    lost = box.without_replica(tmp_path, "lost.simtel.gz")
    retried, stopped = box.failed(box.specs(["pass", "pass"], inputs=[lost]))

    for record in (retried, stopped):
        assert failures.classify(record.status, record.minor_status,
                                 record.application_status) == FailureClass.INPUT_DATA, \
            f"DIRAC said {said([record])}"
    now = datetime.now(UTC)
    retry = handle(box, retried, DEFAULT, now)
    stop = handle(box, stopped, STOP_ON_INPUT_DATA, now)

    # the default policy: retried (attempt 1 of 3) after its backoff, the job Planned again
    assert (retry.failure, retry.action) == (FailureClass.INPUT_DATA, "retry")
    backoff = DEFAULT.policy(FailureClass.INPUT_DATA).backoff
    assert retry.not_before == now + timedelta(seconds=backoff)
    [again] = box.store.jobs(names=[retried.name])
    assert again.status == JobStatus.PLANNED
    assert again.not_before == retry.not_before.isoformat(timespec="seconds")
    # DIRAC failed it before any site ("ANY"): the retry avoids no site, none is named
    assert sites.avoiding(box.store, [again.spec], ())[0].banned_sites == ()
    assert retry.line() == f"{retried.name} (attempt 1) failed: input data; retried"
    # a policy of stop: the job stays Failed, the detail carries DIRAC's words and its record
    assert (stop.failure, stop.action, stop.not_before) == (FailureClass.INPUT_DATA, "stop",
                                                            None)
    assert stop.detail.startswith(f"{stopped.minor_status}; {stopped.application_status}")
    assert "log: " in stop.detail and "Failed: InputData optimizer" in stop.detail, stop.detail
    [kept] = box.store.jobs(names=[stopped.name])
    assert (kept.status, kept.not_before) == (JobStatus.FAILED, None)
    assert {(o.name, o.attempt, o.outcome, o.action) for o in box.store.outcomes()} == {
        (retried.name, 1, "input data", "retry"), (stopped.name, 1, "input data", "stop")}


def test_a_job_banned_from_the_only_site_of_its_input_is_failed_by_dirac_as_input_data(
        box: Box, tmp_path: Path) -> None:
    """What a retry meets when the only site holding its input is the site it failed at."""
    there = box.put(tmp_path, "there.simtel.gz")
    [record] = box.failed(box.specs(["pass"], inputs=[there], banned_sites=(BOX_SITE,)))

    assert failures.classify(record.status, record.minor_status,
                             record.application_status) == FailureClass.INPUT_DATA, \
        f"DIRAC said {said([record])}"


def test_an_application_error_is_classified_as_such_and_stops_its_step_with_the_log_tail(
        box: Box) -> None:
    marker = f"marker-{box.token}"
    code = f"import sys; print('{marker}: giving up', flush=True); sys.exit(3)"
    [record] = box.failed(box.specs([code]))

    assert failures.classify(record.status, record.minor_status,
                             record.application_status) == FailureClass.APPLICATION, \
        f"DIRAC said {said([record])}"
    decision = handle(box, record, DEFAULT, datetime.now(UTC))

    assert (decision.failure, decision.action, decision.not_before) == (
        FailureClass.APPLICATION, "stop", None)
    assert f"{marker}: giving up" in decision.detail, decision.detail
    assert decision.detail.endswith("run_job: python exited with status 3"), decision.detail
    assert record.site == BOX_SITE and f"at {BOX_SITE}" in decision.line()
    [kept] = box.store.jobs(names=[record.name])
    assert (kept.status, kept.attempts, kept.not_before) == (JobStatus.FAILED, 1, None)
    assert [(o.outcome, o.action) for o in box.store.outcomes([record.name])] == [
        ("application", "stop")]

