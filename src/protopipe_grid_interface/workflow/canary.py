"""The canary of a stage: one job of it, on one input file, run and its output checked before
the rest of the stage is submitted, so that a configuration that fails every job costs one job
and not thousands.

Order of work (:func:`run_canary`):

1. is it due (:func:`plan`)? Not with ``GRID.canary: off`` (or ``--no-canary``), not once the
   canary of the stage has passed (a ``canary <stage>`` result in the state database), not
   once a job of the stage has left ``Planned`` (the stage was submitted without it);
2. the canary (:func:`~.plan.canary_job` of the stage's first job) runs: ``backend`` submits
   it as a job like the others (:func:`~.submit.submit`: two-phase, so a run killed meanwhile
   adopts the job it left on the backend instead of sending another) and waits for it;
   ``local`` fetches its inputs from the backend and runs its steps on this machine, in the
   payload environment;
3. its output is checked with h5py (:func:`check_output`): protopipe's root attribute
   ``status`` is "complete", the stage's tables are there (TRAINING: one per camera type, DL2:
   ``reco_events``), each with events;
4. the outcome is recorded (``Store.record_result``), then the canary's output is removed
   from the catalog; a failure raises :class:`~..exceptions.PayloadError` naming the job and
   what was wrong, and the stage is not submitted.

A canary job is kept in the jobs table under its own name (``<first job>_canary``, see
:func:`~.plan.is_canary`), so ``jobs status`` and ``jobs log`` show it; its output goes to a
``canary/`` folder of the stage's outputs and is never collected.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backends.base import Backend
from ..exceptions import DataError, InputError, PayloadError, PipelineError
from ..models import JobSpec, JobStatus, Particle, Stage
from ..store import Result, Store
from . import collect, jobs, local_steps, submit, track
from .plan import canary_job, is_canary

log = logging.getLogger(__name__)

Mode = Literal["backend", "local", "off"]

#: seconds the canary job may take, its time in the queue included, before it is given up on
TIMEOUT = 3 * 3600.0
POLL_SECONDS = 2.0
#: retries and backoff (s) of the canary's downloads
RETRIES, BACKOFF = 2, 2.0
#: a stage of fewer jobs than this runs no canary when it is submitted by ``run``
MIN_STAGE_JOBS = 3
HINT = "fix the configuration and submit again, or skip the canary with --no-canary"
#: job states after which a stage counts as submitted
LEFT_PLANNED = [s for s in JobStatus if s != JobStatus.PLANNED]


def result_step(stage: Stage) -> str:
    """The ``step`` of a stage's canary results in the state database."""
    return f"canary {stage.value}"


@dataclass(frozen=True)
class CanaryOptions:
    """How a canary runs: ``mode`` (``GRID.canary``), the payload environment of ``local``
    mode, how long to wait for a ``backend`` canary, and where scratch folders go (None: the
    system's temporary folder)."""

    mode: Mode = "backend"
    payload_env: Path | None = None
    timeout: float = TIMEOUT
    poll_seconds: float = POLL_SECONDS
    scratch_root: Path | None = None
    #: the jobs of the whole stage, over its particles, when known (see :func:`plan`)
    stage_jobs: int | None = None
    #: the payload pipeline, which decides what a good output holds (:func:`expected_tables`)
    pipeline: str = "protopipe"


@dataclass(frozen=True)
class CanaryPlan:
    """What a submission does first: run ``canary`` (``reason``: where), or nothing, and
    why."""

    canary: JobSpec | None
    reason: str


@dataclass
class CanaryResult:
    """How a canary ended; :meth:`figures` is what the results table keeps of it."""

    job: str
    stage: Stage
    particle: Particle
    mode: str
    backend: str
    backend_id: int | None = None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: what was wrong ("" if it passed)
    reason: str = ""
    output_lfn: str = ""
    output_removed: bool = False

    @property
    def passed(self) -> bool:
        return not self.reason

    def figures(self) -> dict[str, Any]:
        return {"passed": self.passed, "job": self.job, "mode": self.mode,
                "backend": self.backend, "backend_id": self.backend_id, "rows": self.rows,
                "seconds": round(self.seconds, 1), "reason": self.reason,
                "output_lfn": self.output_lfn, "output_removed": self.output_removed}

    def describe(self) -> str:
        """One line for people: the job, passed or why not, rows per table, seconds."""
        where = f"{self.backend} backend job {self.backend_id}" if self.backend_id is not None \
            else "on this machine" if self.mode == "local" else self.backend
        rows = ", ".join(f"{table} {n}" for table, n in self.rows.items()) or "none"
        outcome = "passed" if self.passed else f"FAILED: {self.reason}"
        return (f"{self.stage.value} canary {self.job} ({where}): {outcome}; rows: {rows}; "
                f"{self.seconds:.0f} s")


# --- when ---------------------------------------------------------------------------------------
def passed_result(store: Store, stage: Stage) -> Result | None:
    """The recorded result of the stage's canary that passed, if one did."""
    return next((r for r in store.results(result_step(stage)) if r.figures.get("passed")),
                None)


def plan(store: Store | None, specs: Sequence[JobSpec], mode: Mode,
         stage_jobs: int | None = None) -> CanaryPlan:
    """The canary to run before ``specs`` (the jobs of one stage) are submitted, or why none
    runs (``store``: None for an analysis without a state database yet). A stage known to
    have fewer than :data:`MIN_STAGE_JOBS` jobs in all (``stage_jobs``) runs none: a canary
    would cost it as long as it could save."""
    if mode == "off":
        return CanaryPlan(None, "no canary (GRID.canary: off, or --no-canary)")
    if not specs:
        return CanaryPlan(None, "no canary: no job planned")
    if stage_jobs is not None and stage_jobs < MIN_STAGE_JOBS:
        return CanaryPlan(None, f"no canary: the stage has {stage_jobs} job(s) in all")
    stages = {spec.stage for spec in specs}
    if len(stages) > 1:
        raise InputError(f"a canary covers one stage, not {len(stages)}",
                         "submit one stage at a time")
    stage = specs[0].stage
    if store is not None:
        passed = passed_result(store, stage)
        if passed is not None:
            return CanaryPlan(None, f"no canary: {passed.figures.get('job')} passed "
                                    f"({passed.recorded[:19]})")
        if any(not is_canary(r.name) for r in store.jobs(stage=stage, statuses=LEFT_PLANNED)):
            return CanaryPlan(None, f"no canary: the {stage.value} stage was submitted before")
    return CanaryPlan(canary_job(specs[0]), mode)


def plan_for(state_db: Path, specs: Sequence[JobSpec], mode: Mode) -> CanaryPlan:
    """:func:`plan` for a dry run: the state database is read if it exists, never created."""
    if mode == "off" or not state_db.is_file():
        return plan(None, specs, mode)
    store = Store(state_db)
    try:
        return plan(store, specs, mode)
    finally:
        store.close()


# --- the run ------------------------------------------------------------------------------------
def run_canary(store: Store, backend: Backend, specs: Sequence[JobSpec],
               cam_ids: Sequence[str], options: CanaryOptions,
               starting: Callable[[CanaryPlan], None] | None = None) -> CanaryResult | None:
    """Run the canary of the stage of ``specs`` if it is due (see the module docstring),
    calling ``starting`` first; None if it is not due. Raises PayloadError when it failed:
    submit none of ``specs`` then."""
    due = plan(store, specs, options.mode, options.stage_jobs)
    if due.canary is None:
        finish_removal(store, backend, specs)
        return None
    if starting is not None:
        starting(due)
    canary, started = due.canary, time.monotonic()
    result = CanaryResult(canary.name, canary.stage, canary.particle, options.mode,
                          backend.name)
    scratch = Path(tempfile.mkdtemp(prefix=f"pgi-canary-{canary.stage.value}-",
                                    dir=options.scratch_root))
    kept = False
    try:
        if options.mode == "local":
            result.reason = run_here(backend, canary, options.payload_env, scratch)
        else:
            result.output_lfn = canary.output_lfn
            result.backend_id, result.reason = run_on_backend(store, backend, canary, options)
            if not result.reason:
                result.reason = fetch_output(backend, canary, scratch / canary.output_file)
        if not result.reason:
            result.rows, result.reason = check_output(
                scratch / canary.output_file,
                CTAPIPE_TABLES if options.pipeline == "ctapipe"
                else expected_tables(canary.stage, cam_ids),
                complete=options.pipeline != "ctapipe")
        result.seconds = time.monotonic() - started
        conclude(store, backend, result)
        kept = not result.passed and any(scratch.iterdir())  # its logs, its output
    finally:
        if not kept:
            shutil.rmtree(scratch, ignore_errors=True)
    if not result.passed:
        where = f" (its files: {scratch})" if kept else ""
        raise PayloadError(f"canary job {canary.name} failed: {result.reason}; no other "
                           f"{canary.stage.value} job was submitted{where}", HINT)
    return result


def conclude(store: Store, backend: Backend, result: CanaryResult) -> None:
    """Record the outcome, then remove the canary's output from the catalog and record that
    (a run killed in between removes it next time: :func:`finish_removal`)."""
    stage, particle = result.stage, result.particle.value
    warnings = [result.reason] if result.reason else []
    store.record_result(result_step(stage), particle, result.figures(), warnings)
    if result.output_lfn:
        backend.remove([result.output_lfn])
        result.output_removed = True
        store.record_result(result_step(stage), particle, result.figures(), warnings)


def finish_removal(store: Store, backend: Backend, specs: Sequence[JobSpec]) -> None:
    """Remove the output of a canary recorded as passed but not yet removed."""
    if not specs:
        return
    for recorded in store.results(result_step(specs[0].stage)):
        figures = recorded.figures
        if figures.get("output_lfn") and not figures.get("output_removed"):
            backend.remove([figures["output_lfn"]])
            store.record_result(recorded.step, recorded.particle,
                                {**figures, "output_removed": True}, recorded.warnings)


def concluded(store: Store, canary: JobSpec, backend_id: int | None) -> bool:
    """True if the canary attempt of ``backend_id`` has a recorded outcome already."""
    return any(r.figures.get("job") == canary.name and r.figures.get("backend_id") == backend_id
               for r in store.results(result_step(canary.stage)))


def run_on_backend(store: Store, backend: Backend, canary: JobSpec,
                   options: CanaryOptions) -> tuple[int | None, str]:
    """Submit the canary (or adopt the one an interrupted run left) and wait for it; return
    its backend id and what went wrong ("" if it ended Done). An earlier attempt whose outcome
    is recorded is not adopted: the canary is submitted again."""
    earlier = store.jobs(names=[canary.name])
    if earlier and concluded(store, canary, earlier[0].backend_id):
        store.mark_planned([canary.name], "canary run again")
        backend.remove([canary.output_lfn])
    report = submit.submit(store, backend, [canary])
    if report.recovered:
        log.info("canary %s: adopted the job an interrupted run left", canary.name)
    waited = track.wait(store, backend, [canary.name], options.poll_seconds, options.timeout,
                        held_after=options.timeout)
    [record] = waited.records
    if record.status == JobStatus.DONE:
        return record.backend_id, ""
    if not record.status.is_final:
        if record.backend_id is not None:
            backend.kill([record.backend_id])
        return record.backend_id, (f"not final after {options.timeout:.0f} s "
                                   f"({record.status.value}: {record.minor_status}), killed")
    tail = jobs.log_tails(backend, [record]).get(record.name, "").splitlines()[-1:] or [""]
    return record.backend_id, (f"job {record.status.value} ({record.minor_status}; "
                               f"{record.application_status}), last log line: {tail[0][:200]}")


def fetch_output(backend: Backend, canary: JobSpec, target: Path) -> str:
    """Download the canary's output (verified); what went wrong, or ""."""
    found = backend.metadata([canary.output_lfn]).get(canary.output_lfn)
    if found is None:
        return f"its output {canary.output_lfn} is not in the catalog"
    try:
        collect.fetch_one(backend, found, target, RETRIES, BACKOFF)
    except DataError as exc:
        return f"its output could not be downloaded: {exc}"
    return ""


def run_here(backend: Backend, canary: JobSpec, env: Path | None, work: Path) -> str:
    """Run the canary on this machine: its input data and models fetched from the backend into
    ``work``, its sandbox copied there, its steps run in the payload environment ``env``;
    what went wrong, or ""."""
    if env is None:
        return "no payload environment to run it in (set Software.local_env in grid.yaml)"
    lfns = [*canary.input_lfns, *canary.input_data]
    found = backend.metadata(lfns)
    missing = [lfn for lfn in lfns if lfn not in found]
    if missing:
        return f"input {missing[0]} is not in the catalog"
    try:
        for lfn in lfns:
            collect.fetch_one(backend, found[lfn], work / Path(lfn).name, RETRIES, BACKOFF)
        for sandbox_file in canary.input_sandbox:
            shutil.copy2(sandbox_file, work / Path(sandbox_file).name)
        for index, step in enumerate(canary.steps):
            log_file = work / f"step{index}_{Path(step[0]).name}.log"
            local_steps.run_payload(env, step, log_file, cwd=work)
    except PipelineError as exc:
        return str(exc)
    except OSError as exc:
        return f"{exc.filename or ''}: {exc.strerror or exc}"
    return ""


# --- the output ---------------------------------------------------------------------------------
def expected_tables(stage: Stage, cam_ids: Sequence[str]) -> tuple[str, ...]:
    """The tables a protopipe output of ``stage`` holds at its root: TRAINING, one per camera
    type; DL2, ``reco_events``."""
    return ("reco_events",) if stage is Stage.DL2 else tuple(cam_ids)


#: what a ctapipe-process output must hold: triggered array events, and their simulated showers
CTAPIPE_TABLES = ("dl1/event/subarray/trigger", "simulation/event/subarray/shower")


def check_output(path: Path, tables: Sequence[str], complete: bool = True
                 ) -> tuple[dict[str, int], str]:
    """Rows of each of ``tables`` in the output ``path``, and what is wrong with it ("" if
    nothing): every table there, with rows, and (``complete``: protopipe's) its root
    attribute ``status`` "complete"."""
    import h5py  # only a canary needs it

    if not path.is_file():
        return {}, f"no output file {path.name}"
    problems: list[str] = []
    rows: dict[str, int] = {}
    try:
        with h5py.File(path, "r") as h5:
            status = h5.attrs.get("status")
            if isinstance(status, bytes):
                status = status.decode(errors="replace")
            if complete and status != "complete":
                problems.append(f"status {status!r}, not 'complete'")
            for table in tables:
                node = h5.get(table)
                if not isinstance(node, h5py.Dataset) or not node.shape:
                    problems.append(f"no table /{table}")
                    continue
                rows[table] = int(node.shape[0])
                if not rows[table]:
                    problems.append(f"table /{table} has no events")
    except OSError as exc:
        return rows, f"output {path.name} is not a readable HDF5 file ({exc})"
    return rows, f"output {path.name}: {'; '.join(problems)}" if problems else ""
