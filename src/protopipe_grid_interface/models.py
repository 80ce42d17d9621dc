"""Typed records shared by the planner, the state database and the backends."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class Stage(StrEnum):
    """A grid stage of a protopipe analysis."""

    TRAINING_ENERGY = "training-energy"
    TRAINING_CLASSIFICATION = "training-classification"
    DL2 = "dl2"

    @property
    def short(self) -> str:
        """Short label used in job names."""
        return {"training-energy": "TRE", "training-classification": "TRC", "dl2": "DL2"}[self]


class Particle(StrEnum):
    """Simulated particle type of a dataset."""

    GAMMA = "gamma"
    PROTON = "proton"
    ELECTRON = "electron"


class JobStatus(StrEnum):
    """Job states: DIRAC's, plus ``Planned`` and ``Sending`` which only live in our database.

    ``Sending`` is ours: the backend call that creates the job is under way, or was interrupted
    (the job may or may not exist on the backend). ``Submitting`` is DIRAC's: the job exists,
    created by a parametric submission that its client has not confirmed yet (see
    :data:`UNCONFIRMED`); it is active, and a submission that finds it confirms it.
    """

    PLANNED = "Planned"
    SENDING = "Sending"
    SUBMITTING = "Submitting"
    RECEIVED = "Received"
    CHECKING = "Checking"
    STAGING = "Staging"
    SCOUTING = "Scouting"
    WAITING = "Waiting"
    MATCHED = "Matched"
    RESCHEDULED = "Rescheduled"
    RUNNING = "Running"
    STALLED = "Stalled"
    COMPLETING = "Completing"
    COMPLETED = "Completed"
    DONE = "Done"
    FAILED = "Failed"
    KILLED = "Killed"
    DELETED = "Deleted"

    @property
    def is_final(self) -> bool:
        """True when the job will not change state on its own."""
        return self in FINAL_STATES

    @property
    def is_active(self) -> bool:
        """True when the job exists on the backend and may still change state."""
        return self not in FINAL_STATES and self not in BOOKKEEPING_STATES


class FailureClass(StrEnum):
    """Why a job failed, from DIRAC's Status / MinorStatus / ApplicationStatus
    (``workflow/failures.py``); each has a policy in grid.yaml's ``Run`` section."""

    INPUT_DATA = "input data"
    STALLED = "stalled"
    WATCHDOG = "watchdog"
    UPLOAD = "upload"
    APPLICATION = "application"
    RESCHEDULINGS = "reschedulings"
    EMPTY_OUTPUT = "empty output"
    UNKNOWN = "unknown"


#: DIRAC's JobDB stores JobGroup in a VARCHAR(32)
MAX_JOB_GROUP = 32

FINAL_STATES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.KILLED, JobStatus.DELETED})
#: states of our own bookkeeping, never reported by a backend
BOOKKEEPING_STATES = frozenset({JobStatus.PLANNED, JobStatus.SENDING})
#: DIRAC's minor status of a job created by a parametric submission and not confirmed yet
#: (``JobManagerHandler.export_submitJob``); its StalledJobAgent later sets such jobs Failed
#: and keeps this minor status
UNCONFIRMED = "Bulk transaction confirmation"
RESUBMITTABLE_STATES = frozenset({JobStatus.FAILED, JobStatus.KILLED, JobStatus.DELETED})


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a backend needs to run one job; produced by the planner, never mutated.

    ``steps`` are argument lists run one after the other in the job's working directory, with
    the payload environment active; ``input_lfns`` (the simulation files) and ``input_data``
    (models and configs) are staged into that directory before the first step; ``output_file``
    is uploaded to ``output_lfn`` after the last step; ``intermediate_files`` are what the steps
    write on the way (removed once the output exists).
    """

    name: str
    analysis: str
    stage: Stage
    particle: Particle
    input_lfns: tuple[str, ...]
    steps: tuple[tuple[str, ...], ...]
    output_file: str
    output_lfn: str
    output_se: str
    input_sandbox: tuple[str, ...] = ()
    input_data: tuple[str, ...] = ()
    cpu_time: int = 3600
    banned_sites: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    job_type: str = "User"
    intermediate_files: tuple[str, ...] = ()

    @property
    def job_group(self) -> str:
        """DIRAC job group, one per analysis and stage, within DIRAC's 32 characters."""
        group = f"{self.analysis}.{self.stage.short}"
        if len(group) > MAX_JOB_GROUP:
            digest = hashlib.sha256(self.analysis.encode()).hexdigest()[:6]
            group = f"{self.analysis[:MAX_JOB_GROUP - 11]}~{digest}.{self.stage.short}"
        return group

    @property
    def spec_hash(self) -> str:
        """Content hash: changes whenever anything the job would do changes."""
        return content_hash(self.to_json())

    def to_json(self) -> str:
        """The canonical JSON form (keys sorted) whose :func:`content_hash` is the spec hash."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: the fields by name (as ``dataclasses.asdict`` gives them,
        without its deep copy, which made planning and recording 100,000 jobs slow; every
        field is immutable)."""
        return {name: getattr(self, name) for name in SPEC_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            analysis=data["analysis"],
            stage=Stage(data["stage"]),
            particle=Particle(data["particle"]),
            input_lfns=tuple(data["input_lfns"]),
            steps=tuple(tuple(step) for step in data["steps"]),
            output_file=data["output_file"],
            output_lfn=data["output_lfn"],
            output_se=data["output_se"],
            input_sandbox=tuple(data.get("input_sandbox", ())),
            input_data=tuple(data.get("input_data", ())),
            cpu_time=int(data.get("cpu_time", 3600)),
            banned_sites=tuple(data.get("banned_sites", ())),
            tags=tuple(data.get("tags", ())),
            job_type=data.get("job_type", "User"),
            intermediate_files=tuple(data.get("intermediate_files", ())),
        )


def content_hash(canonical_json: str) -> str:
    """:attr:`JobSpec.spec_hash` of the spec whose :meth:`JobSpec.to_json` this is."""
    return hashlib.sha256(canonical_json.encode()).hexdigest()[:16]


#: the fields of a :class:`JobSpec`, in order
SPEC_FIELDS = tuple(f.name for f in fields(JobSpec))


@dataclass(frozen=True, slots=True)
class JobSelection:
    """Jobs a backend selects by their attributes, like DIRAC's ``selectJobs``: every field
    given must match (``date``: submitted that day, ``YYYY-MM-DD``)."""

    status: str | None = None
    minor_status: str | None = None
    application_status: str | None = None
    site: str | None = None
    job_group: str | None = None
    date: str | None = None
    owner: str | None = None


#: the selection of every job
ANY_JOB = JobSelection()


@dataclass(frozen=True, slots=True)
class JobState:
    """What the backend says about one job."""

    backend_id: int
    status: JobStatus
    minor_status: str = ""
    application_status: str = ""
    site: str = ""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A catalogued file: its LFN, size in bytes, adler32 checksum (8 hex digits) and replicas."""

    lfn: str
    size: int
    checksum: str
    replicas: tuple[str, ...] = ()
