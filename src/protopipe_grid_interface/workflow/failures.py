"""Why a job failed, read from DIRAC's own Status / MinorStatus / ApplicationStatus strings.

The strings are DIRAC's (``WorkloadManagementSystem/Client/JobMinorStatus.py``, the JobWrapper,
its Watchdog, the StalledJobAgent, the InputData and JobScheduling optimizers); the local and
fake backends report the same ones. The first rule whose text a status contains wins, so the
watchdog's "identified this job as stalled" is a watchdog failure, not a stalled pilot.
"""

from __future__ import annotations

from ..models import FailureClass, JobStatus

#: (class, texts any of which in the minor or application status means that class), in order
RULES: tuple[tuple[FailureClass, tuple[str, ...]], ...] = (
    (FailureClass.RESCHEDULINGS, ("maximum of reschedulings reached",)),
    (FailureClass.WATCHDOG, ("watchdog", "cpu limit", "wall clock", "disk space",
                             "received kill signal")),
    (FailureClass.INPUT_DATA, ("input data not available", "input data resolution",
                               "inputdata optimizer", "no replica info available",
                               "impossible inputdata", "missinglfns")),
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
