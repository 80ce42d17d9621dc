"""Why a job failed, read from DIRAC's own Status / MinorStatus / ApplicationStatus strings.

The strings are DIRAC's (``WorkloadManagementSystem/Client/JobMinorStatus.py``, the JobWrapper,
its Watchdog, the StalledJobAgent, the InputData and JobScheduling optimizers); the local and
fake backends report the same ones. The first rule whose text a status contains wins, so the
watchdog's "identified this job as stalled" is a watchdog failure, not a stalled pilot.

What ``run`` does about a failure is its class' policy (grid.yaml's ``Run.failures``):
:func:`decide`, then :func:`apply`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from ..backends.base import Backend
from ..config import RunSection
from ..exceptions import PipelineError
from ..models import UNCONFIRMED, FailureClass, JobStatus
from ..store import JobRecord, JobRow, Outcome, Store
from .sites import NO_SITE

#: a job as the engine reads it: light (no spec) or whole
Job = JobRow | JobRecord

#: (class, texts any of which in the minor or application status means that class), in order
RULES: tuple[tuple[FailureClass, tuple[str, ...]], ...] = (
    (FailureClass.RESCHEDULINGS, ("maximum of reschedulings reached",)),
    (FailureClass.WATCHDOG, ("watchdog", "cpu limit", "wall clock", "disk space",
                             "received kill signal")),
    (FailureClass.INPUT_DATA, ("input data not available", "input data resolution",
                               "inputdata optimizer", "no replica info available",
                               "impossible inputdata", "missinglfns",
                               # the JobScheduling optimizer's input data failures
                               "do not have all the input data", "no possible site candidates",
                               "no destination sites available", "stage not allowed",
                               "cannot find tape replicas")),
    (FailureClass.STALLED, ("stalled", "stalling for more than", "pilot not running")),
    (FailureClass.UPLOAD, ("uploading output data", "uploading outputs", "uploading job output",
                           "failed sending requests", "inputsandbox", "outputsandbox",
                           "output sandbox", "input sandbox")),
    (FailureClass.APPLICATION, ("application finished with errors", "application not found",
                                "exception during execution", "exited with status",
                                "output file missing")),
)


def classify(status: JobStatus, minor: str, application: str) -> FailureClass:
    """The class of a failed job's failure (``UNKNOWN`` when no rule matches)."""
    text = f"{minor}\n{application}".lower()
    for failure, needles in RULES:
        if any(needle in text for needle in needles):
            return failure
    if status == JobStatus.STALLED:
        return FailureClass.STALLED
    return FailureClass.UNKNOWN


@dataclass(frozen=True)
class Decision:
    """What ``run`` does about one failed attempt."""

    record: Job
    failure: FailureClass
    action: Literal["retry", "stop"]
    detail: str
    #: a retry is not sent before this time
    not_before: datetime | None = None

    def line(self) -> str:
        job = f"{self.record.name} (attempt {self.record.attempts}"
        where = f", at {self.record.site})" if self.record.site not in NO_SITE else ")"
        if self.action == "retry":
            return f"{job}{where} failed: {self.failure.value}; retried"
        return f"{job}{where} failed: {self.failure.value}; its step stops: {self.detail}"


def decide(record: Job, failure: FailureClass, policies: RunSection, detail: str,
           now: datetime) -> Decision:
    """Retry the job while its class' policy allows another attempt, else stop its step."""
    policy = policies.policy(failure)
    if policy.action == "retry" and record.attempts < policy.attempts:
        wait = policy.backoff * 2 ** max(0, record.attempts - 1)
        return Decision(record, failure, "retry", detail, now + timedelta(seconds=wait))
    if policy.action == "retry":
        detail = f"{policy.attempts} attempt(s) failed, the last: {detail}"
    return Decision(record, failure, "stop", detail)


def log_tail(backend: Backend, record: Job, lines: int = 5) -> str:
    """The last lines of a failed job's log, joined with " | " (empty if unavailable)."""
    if record.backend_id is None:
        return ""
    try:
        text = backend.job_log(record.backend_id)
    except PipelineError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def apply(store: Store, backend: Backend, decisions: Sequence[Decision]) -> list[Outcome]:
    """Carry out decisions: before a retry, the failed attempt's outputs are removed from the
    catalog and storage (a retried job must not meet the partial output its first attempt
    left), then it goes back to the queue; every outcome is recorded (and returned)."""
    retries = [d for d in decisions if d.action == "retry"]
    outputs = [d.record.output_lfn for d in retries]
    present = backend.metadata(outputs)
    if present:
        backend.remove(sorted(present))
    for decision in retries:
        assert decision.not_before is not None
        store.mark_planned([decision.record.name],
                           f"retry after {decision.failure.value} failure",
                           decision.not_before.isoformat(timespec="seconds"))
    outcomes = [Outcome(d.record.name, d.record.attempts, d.record.backend_id, d.record.site,
                        d.failure.value, d.detail, d.action) for d in decisions]
    store.record_outcomes(outcomes)
    return outcomes


def failed_attempts(store: Store, backend: Backend, records: Sequence[Job],
                    policies: RunSection, now: datetime,
                    handled: Collection[tuple[str, int]] | None = None
                    ) -> tuple[list[Outcome], list[Decision]]:
    """The finished attempts of ``records`` not handled yet: Done ones whose output is in
    the catalog are accepted (returned as outcomes to record); a Done job without its output
    is an upload failure (only ``Done`` means the outputs landed: ``Completed`` is still
    active); Failed ones are classified and decided on; jobs killed outside ``run`` stop
    their step. A job DIRAC failed because its submission was never confirmed is left to the
    submission's recovery."""
    handled = store.handled_attempts() if handled is None else handled
    accepted: list[Outcome] = []
    decisions: list[Decision] = []
    fresh = [r for r in records if r.status.is_final and r.attempts > 0
             and (r.name, r.attempts) not in handled]
    missing = [r.output_lfn for r in fresh
               if r.status == JobStatus.DONE and r.output_size is None]
    found = backend.metadata(missing) if missing else {}
    store.set_output([(r.name, found[r.output_lfn].size, found[r.output_lfn].checksum)
                      for r in fresh if r.output_lfn in found])
    for record in fresh:
        if record.status == JobStatus.DONE:
            if record.output_size is not None or record.output_lfn in found:
                accepted.append(Outcome(record.name, record.attempts, record.backend_id,
                                        record.site, "done", "", "accepted"))
            else:
                decisions.append(decide(record, FailureClass.UPLOAD, policies,
                                        "Done, but its output is not in the catalog", now))
        elif record.status == JobStatus.FAILED and record.minor_status != UNCONFIRMED:
            failure = classify(record.status, record.minor_status, record.application_status)
            detail = f"{record.minor_status}; {record.application_status}".strip("; ")
            decision = decide(record, failure, policies, detail, now)
            if decision.action == "stop":
                tail = log_tail(backend, record)
                decision = replace(decision, detail=f"{decision.detail}; log: {tail}"
                                   if tail else decision.detail)
            decisions.append(decision)
        elif record.status in (JobStatus.KILLED, JobStatus.DELETED):
            decisions.append(Decision(record, FailureClass.UNKNOWN, "stop",
                                      f"{record.status.value} outside run (jobs resubmit "
                                      "sends it again)"))
    return accepted, decisions
