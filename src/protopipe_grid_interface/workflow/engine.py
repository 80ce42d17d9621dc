"""``protopipe-grid run``: the analysis moved as far as it can go, step by step of its workflow
file, failures handled by their cause.

One iteration (:meth:`Engine.iterate`), in this order:

1. ask the backend for the state of every active job (one call per thousand);
2. handle the attempts that ended since the last iteration: accept a Done job whose output is
   in the catalog; decide on a failed one by its class' policy (retry away from the site it
   failed at, its partial output removed first; or stop its step, with its log's tail)
   (:mod:`.failures`);
3. ban the black-hole sites (:mod:`.sites`) and flag the held jobs (:mod:`.watchdog`);
4. walk the workflow's tasks in order: a task runs once every task it needs is finished with
   the inputs it was finished from, so a task whose inputs changed (a model rebuilt, a job
   retried) runs again and so do the tasks after it. A grid task's state is read from its
   jobs at every iteration (a job failed or resubmitted since makes it unfinished again). A
   stage's outputs are downloaded while its other jobs run; its merge waits until all are
   Done.

The state database is the only truth: an iteration killed at any point is finished by the
next one (a submission recovers by name, a download is verified, a merge or a local step
starts again), so no job is sent twice and no output is lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ..atomic import write_atomic
from ..backends.base import Backend
from ..checksums import adler32
from ..exceptions import BlockedError, InputError, PipelineError, TransientBackendError
from ..models import FailureClass, JobSpec, JobStatus, Particle, Stage
from ..paths import merged_file_name
from ..store import JobRow, Outcome, Store
from . import (
    canary,
    collect,
    consistency,
    ctapipe_tasks,
    failures,
    local_steps,
    performance,
    sites,
    submit,
    track,
    upload,
    validate,
    watchdog,
)
from .analysis import Analysis
from .plan import is_canary
from .results import table_rows
from .split import read_list
from .steps import FILE_NAME, Task, Workflow, load_workflow, template

log = logging.getLogger(__name__)

State = Literal["finished", "running", "waiting", "blocked", "ready"]
#: how long a canary (or a local step's job) may take before it is given up on
CANARY_TIMEOUT = 3600.0


@dataclass(frozen=True)
class RunOptions:
    """What the user asked of ``run``."""

    #: the local steps' (and a local canary's) payload environment
    payload_env: Path
    #: stop after this step (and what it needs)
    until: str | None = None
    #: show what would be done next, and why, changing nothing
    dry_run: bool = False
    #: approve what destroys: planning stale jobs again, restarting held jobs
    yes: bool = False
    #: kill and resubmit the jobs held too long in a state (with ``yes``)
    restart_held: bool = False


@dataclass(frozen=True)
class Event:
    """Something ``run`` did or found, for the user."""

    task: str
    message: str
    level: Literal["info", "warning", "error"] = "info"


@dataclass(frozen=True)
class TaskState:
    """Where one task stands after an iteration."""

    task: Task
    state: State
    detail: str = ""


@dataclass
class Iteration:
    """What one iteration did and found."""

    events: list[Event] = field(default_factory=list)
    tasks: list[TaskState] = field(default_factory=list)
    held: list[watchdog.Held] = field(default_factory=list)
    #: local work was done (a merge, a model, an upload): the next iteration need not wait
    worked: bool = False

    @property
    def finished(self) -> bool:
        return bool(self.tasks) and all(t.state == "finished" for t in self.tasks)

    @property
    def blocked(self) -> list[TaskState]:
        return [t for t in self.tasks if t.state == "blocked"]

    @property
    def stuck(self) -> bool:
        """Nothing can move without the user: blocked tasks and nothing running or ready."""
        return bool(self.blocked) and not any(t.state in ("running", "ready")
                                              for t in self.tasks)


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(paths: Sequence[Path]) -> str:
    return digest([(p.name, adler32(p)) for p in sorted(paths)])


class Engine:
    """The analysis, its state database, its backend and its workflow, moved forward by
    :meth:`iterate` (see the module docstring)."""

    def __init__(self, analysis: Analysis, store: Store, backend: Backend, workflow: Workflow,
                 options: RunOptions, now: Callable[[], datetime] = lambda: datetime.now(UTC)
                 ) -> None:
        self.analysis = analysis
        self.store = store
        self.backend = backend
        self.workflow = workflow
        self.options = options
        self.now = now
        self.policies = analysis.grid.Run
        self.checked = False
        #: held jobs already flagged by this run
        self.flagged: set[str] = set()
        self.actions: dict[tuple[str, int], str] | None = None
        self.grouped: dict[tuple[Stage, Particle], list[JobRow]] | None = None
        wanted = workflow.upstream(options.until) if options.until else None
        self.tasks = [t for t in workflow.order if wanted is None or t.step.name in wanted]

    # --- one iteration ------------------------------------------------------------------------
    def iterate(self) -> Iteration:
        it = Iteration()
        self.actions = None
        self.grouped = None
        if not self.options.dry_run:
            self.refresh(it)
        finished = self.store.finished_steps()
        outputs: dict[tuple[str, str], str] = {}
        for task in self.tasks:
            needs = self.workflow.needs(task)
            ready = all(n.key in outputs for n in needs)
            inputs = digest(task.step.model_dump(), [outputs.get(n.key) for n in needs])
            recorded = finished.get(task.key)
            current = recorded is not None and recorded[0] == inputs
            if ready and recorded is not None and current and task.step.kind != "grid":
                outputs[task.key] = recorded[1]
                it.tasks.append(TaskState(task, "finished"))
                continue
            if not ready and task.step.kind != "collect":
                waiting = ", ".join(str(n) for n in needs if n.key not in outputs)
                it.tasks.append(TaskState(task, "waiting", f"needs {waiting}"))
                continue
            started = time.monotonic()
            state = self.advance(task, ready, stale=recorded is not None and not current, it=it)
            if state.state == "finished" and ready:
                out = state.detail
                if not self.options.dry_run and recorded != (inputs, out):
                    self.store.finish_step(*task.key, inputs, out, time.monotonic() - started)
                outputs[task.key] = out
                state = TaskState(task, "finished")
            elif (task.step.kind == "grid" and state.state == "running" and not current
                  and not self.options.dry_run):
                # submitted from these inputs: a change upstream from now on makes it stale
                self.store.finish_step(*task.key, inputs)
            it.tasks.append(state)
        return it

    def refresh(self, it: Iteration) -> None:
        """Steps 1-3 of the module docstring, on light rows (no spec decoded)."""
        track.refresh_active(self.store, self.backend)
        rows = [r for r in self.store.job_rows() if not is_canary(r.name)]
        accepted, decisions = failures.failed_attempts(
            self.store, self.backend, [r for r in rows if r.status.is_final], self.policies,
            self.now(), self.action_index().keys())
        self.store.record_outcomes(accepted)
        self.remember(accepted + failures.apply(self.store, self.backend, decisions))
        self.grouped = group(rows)
        self.reread([d.record.name for d in decisions])
        for decision in decisions:
            it.events.append(Event(f"{decision.record.stage.value} "
                                   f"{decision.record.particle.value}", decision.line(),
                                   "warning" if decision.action == "retry" else "error"))
        for hole in sites.ban_black_holes(self.store, self.policies.black_holes):
            it.events.append(Event("", f"site {hole.site} banned: {hole.reason} "
                                   f"(run --unban {hole.site} lifts it)", "warning"))
        active = [r for r in rows if r.status.is_active]
        it.held = watchdog.held(active, self.policies.held_after, self.now())
        if it.held:
            if self.options.restart_held and self.options.yes:
                self.remember(watchdog.restart(self.store, self.backend, it.held))
                self.reread([h.record.name for h in it.held])
                it.events.append(Event("", f"{len(it.held)} held job(s) killed and queued "
                                       "again", "warning"))
            elif {h.record.name for h in it.held} - self.flagged:  # said once, not each poll
                new = [h for h in it.held if h.record.name not in self.flagged]
                for entry in new[:10]:
                    it.events.append(Event("", f"held: {entry.line()}", "warning"))
                it.events.append(Event("", f"{len(it.held)} job(s) held: run --restart-held "
                                       "--yes kills and submits them again", "warning"))
                self.flagged |= {h.record.name for h in new}

    def action_index(self) -> dict[tuple[str, int], str]:
        """What was done about each handled attempt, read once an iteration."""
        if self.actions is None:
            self.actions = self.store.outcome_actions()
        return self.actions

    def remember(self, outcomes: Sequence[Outcome]) -> None:
        """Outcomes just recorded, added to this iteration's index."""
        index = self.action_index()
        for outcome in outcomes:
            index[outcome.name, outcome.attempt] = outcome.action

    def reread(self, names: Sequence[str]) -> None:
        """Read these jobs again into this iteration's rows (their state just changed)."""
        if not names or self.grouped is None:
            return
        fresh = {r.name: r for r in self.store.job_rows(names=names)}
        for key, rows in self.grouped.items():
            self.grouped[key] = [fresh.get(r.name, r) for r in rows]

    def advance(self, task: Task, ready: bool, stale: bool, it: Iteration) -> TaskState:
        """Move one task as far as it goes now; a finished task's detail is its outputs'
        digest."""
        kind = task.step.kind
        try:
            if kind == "grid":
                return self.grid(task, stale, it)
            if kind == "collect":
                return self.collect(task, ready, it)
            if self.options.dry_run:
                why = "again: its inputs changed" if stale else "its inputs are ready"
                return TaskState(task, "ready", f"would run ({why})")
            it.worked = True
            if self.analysis.pipeline == "ctapipe":
                return self.ctapipe_step(task, it)
            if kind == "enlarge":
                return self.enlarge(task, it)
            if kind == "model":
                return self.model(task, it)
            if kind == "upload":
                return self.upload(task, it)
            return self.performance(task, it)
        except TransientBackendError:
            raise  # not the task's doing: the iteration is tried again (see run)
        except PipelineError as exc:
            message = exc.message + (f" ({exc.hint})" if exc.hint else "")
            it.events.append(Event(str(task), message, "error"))
            return TaskState(task, "blocked", message)

    # --- grid steps ---------------------------------------------------------------------------
    def rows(self, task: Task, again: bool = False) -> list[JobRow]:
        """The task's jobs, light (no spec): from this iteration's one read of every job, or
        ``again`` from the state database (after a submission)."""
        stage, particle = self.subject(task)
        if self.grouped is None:
            self.grouped = group(self.store.job_rows())
        if again:
            self.grouped[stage, particle] = [
                r for r in self.store.job_rows(stage=stage, particle=particle)
                if not is_canary(r.name)]
        return self.grouped.get((stage, particle), [])

    @staticmethod
    def subject(task: Task) -> tuple[Stage, Particle]:
        assert task.step.stage is not None and task.particle is not None
        return task.step.stage, task.particle

    def grid(self, task: Task, stale: bool, it: Iteration) -> TaskState:
        """Submit the stage's jobs (checked, its canary first) or its retries; finished when
        every job is Done and accepted."""
        rows = self.rows(task)
        if not rows or stale:
            return self.first_submission(task, bool(rows), it)
        now = self.now()
        due = [r.name for r in rows if r.status == JobStatus.PLANNED
               and (r.not_before is None or datetime.fromisoformat(r.not_before) <= now)]
        unsent = [r.name for r in rows if r.status in (JobStatus.SENDING, JobStatus.SUBMITTING)]
        if (due or unsent) and not self.options.dry_run:
            specs = self.avoiding([r.spec for r in self.store.jobs(names=due + unsent)])
            report = submit.submit(self.store, self.backend, specs)
            if report.submitted:
                it.events.append(Event(str(task), f"{len(report.submitted)} job(s) submitted "
                                       "again"))
            rows = self.rows(task, again=True)
        elif due:
            return TaskState(task, "ready", f"would submit {len(due)} job(s) again")
        return self.grid_state(task, rows)

    def grid_state(self, task: Task, rows: Sequence[JobRow]) -> TaskState:
        actions = self.action_index()
        stopped = [r for r in rows if r.status.is_final
                   and actions.get((r.name, r.attempts)) == "stop"]
        if stopped:
            first = next(o for o in self.store.outcomes([stopped[0].name])
                         if o.attempt == stopped[0].attempts)
            return TaskState(task, "blocked", f"{len(stopped)} job(s) stopped the step: "
                             f"{first.name}: {first.outcome}: {first.detail}")
        done = [r for r in rows if r.status == JobStatus.DONE
                and (r.name, r.attempts) in actions]
        if len(done) == len(rows):
            return TaskState(task, "finished",
                             digest(sorted((r.name, r.output_checksum) for r in done)))
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status.value] = counts.get(row.status.value, 0) + 1
        return TaskState(task, "running", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))

    def first_submission(self, task: Task, submitted: bool, it: Iteration) -> TaskState:
        """Plan the stage for the task's particle, check it, run its canary, submit it; or
        plan again the jobs a change upstream made stale."""
        stage, particle = self.subject(task)
        specs = self.analysis.plan(stage, particle, self.output_se())
        if self.options.dry_run:
            return TaskState(task, "ready", f"would check, run the {stage.value} canary if "
                             f"due, and submit {len(specs)} job(s)")
        if not self.checked:
            validate.check_analysis(self.analysis, self.store)
            self.checked = True
        if submitted:
            found = consistency.stale(self.store, self.backend, self.analysis, specs)
            if found and not self.options.yes:
                return TaskState(task, "blocked", "; ".join(s.line() for s in found) +
                                 " (run --yes plans them again: their outputs are removed)")
            if found:
                again = consistency.replan(self.store, self.backend, self.analysis, specs,
                                           found)
                it.events.append(Event(str(task), f"{len(again)} stale job(s) planned again"))
        validate.check_inputs(self.backend, specs)
        submit.check_proxy(self.backend, len(specs))
        passed = canary.run_canary(self.store, self.backend, specs, self.analysis.cam_ids,
                                   canary.CanaryOptions(self.analysis.grid.GRID.canary,
                                                        self.options.payload_env,
                                                        timeout=CANARY_TIMEOUT,
                                                        stage_jobs=self.stage_jobs(task, specs),
                                                        pipeline=self.analysis.pipeline))
        if passed is not None:
            it.events.append(Event(str(task), passed.describe()))
        report = submit.submit(self.store, self.backend, self.avoiding(specs))
        consistency.record(self.store, self.backend, self.analysis, specs, replace=submitted)
        it.events.append(Event(str(task), f"{len(specs)} job(s) planned, "
                               f"{len(report.submitted)} submitted, {report.skipped_existing} "
                               "skipped (output exists)"))
        return self.grid_state(task, self.rows(task, again=True))

    def stage_jobs(self, task: Task, specs: Sequence[JobSpec]) -> int:
        """The jobs of the task's stage over the step's particles: ``specs`` for its own, the
        others counted from their list files (not planned)."""
        stage, particle = self.subject(task)
        count = len(specs)
        for other in task.step.particles:
            if other != particle:
                try:
                    files = len(read_list(self.analysis.list_file(stage, other)))
                except InputError:
                    continue
                count += math.ceil(files / self.analysis.grid.GRID.n_file_per_job)
        return count

    def avoiding(self, specs: Sequence[JobSpec]) -> list[JobSpec]:
        return sites.avoiding(self.store, specs, self.analysis.grid.GRID.banned_sites)

    def output_se(self) -> str:
        return self.analysis.grid.GRID.output_se or self.backend.storage_elements()[0]

    # --- collect ------------------------------------------------------------------------------
    def collect(self, task: Task, ready: bool, it: Iteration) -> TaskState:
        """Download the Done outputs now (each checked for events), merge once every job is
        Done (``ready``)."""
        stage, particle = self.subject(task)
        if not self.rows(task):
            return TaskState(task, "waiting", f"no {stage.value} job yet")
        if self.options.dry_run:
            return TaskState(task, "ready", "would download the outputs of the Done jobs" +
                             (" and merge them" if ready else ""))
        tree, mode = self.analysis.tree, self.analysis.grid.General.mode
        with collect.Downloader(self.backend) as downloader:
            report = collect.collect_stage(self.store, downloader, tree, stage, particle, mode,
                                           None)
            if report.download.fetched:
                it.events.append(Event(str(task), f"{len(report.download.fetched)} output(s) "
                                       "downloaded (adler32 verified)"))
                if self.reject_empty(task, report.download.fetched, it):
                    return TaskState(task, "running", "an output without events")
            if report.download.failed:
                lfn, problem = next(iter(report.download.failed.items()))
                it.events.append(Event(str(task), f"{len(report.download.failed)} download(s)"
                                       f" failed, retried next time: {lfn}: {problem}",
                                       "warning"))
                return TaskState(task, "running", "downloads to retry")
            if not ready:
                active = any(r.status.is_active for r in self.rows(task))
                return TaskState(task, "running" if active else "waiting",
                                 f"{len(report.outputs)} output(s) here")
            merger = (ctapipe_tasks.merger(self.options.payload_env, tree)
                      if self.analysis.pipeline == "ctapipe" else None)
            report = collect.collect_stage(self.store, downloader, tree, stage, particle, mode,
                                           self.merged(stage, particle), merger=merger)
        if report.merged is None:
            return TaskState(task, "running", "nothing merged")
        merged = report.merged
        if not merged.up_to_date:
            it.worked = True
            rows = ", ".join(f"{t.lstrip('/')} {n}" for t, n in merged.tables.items())
            it.events.append(Event(str(task), f"{merged.files} file(s) merged -> "
                                   f"{merged.path.name} ({merged.showers} showers; rows: "
                                   f"{rows or 'no table'})"))
            for warning in merged.warnings:
                it.events.append(Event(str(task), warning, "warning"))
        return TaskState(task, "finished", collect.inputs_digest(report.outputs))

    def reject_empty(self, task: Task, fetched: Sequence[Path], it: Iteration) -> bool:
        """An output without a single event from inputs that had some is a failure of class
        "empty output": decided on like any failure, its file removed here and there. True
        if an output was rejected."""
        names = {path.name: path for path in fetched}
        wanted = [r.name for r in self.rows(task) if Path(r.output_lfn).name in names]
        records = self.store.jobs(names=wanted)
        empty = [r for r in records if not any(table_rows(names[Path(r.spec.output_lfn).name])
                                               .values())]
        if not empty:
            return False
        inputs = self.backend.metadata([lfn for r in empty for lfn in r.spec.input_lfns])
        empty = [r for r in empty if any(inputs[lfn].size for lfn in r.spec.input_lfns
                                         if lfn in inputs)]
        decisions = [failures.decide(r, FailureClass.EMPTY_OUTPUT, self.policies,
                                     "no event in its output", self.now()) for r in empty]
        for record in empty:
            names[Path(record.spec.output_lfn).name].unlink(missing_ok=True)
        stops = [d.record for d in decisions if d.action == "stop"]
        self.store.mark_failed([(r.name, "Empty output") for r in stops])
        self.remember(failures.apply(self.store, self.backend, decisions))
        self.reread([r.name for r in empty])
        for decision in decisions:
            it.events.append(Event(str(task), decision.line(), "error"))
        return bool(decisions)

    # --- local steps --------------------------------------------------------------------------
    def merged(self, stage: Stage, particle: Particle, enlarged: bool = False) -> Path:
        """A stage's merged file (or its enlarged copy, made by an ``enlarge`` step)."""
        tree, mode = self.analysis.tree, self.analysis.grid.General.mode
        if self.analysis.pipeline == "ctapipe":
            return ctapipe_tasks.data_file(tree, stage, particle,
                                           "enlarged" if enlarged else "merged")
        path = tree.data_dir(stage, particle) / merged_file_name(stage, particle, mode)
        return path.with_name(path.name.replace("_merged", "_enlarged")) if enlarged else path

    def enlarge(self, task: Task, it: Iteration) -> TaskState:
        """The demo's aid: merged tables resampled into larger ones (see ``demo.py``)."""
        stage, particle = self.subject(task)
        settings = dict(task.step.options.get(particle.value, {}))
        merged = self.merged(stage, particle)
        output = self.merged(stage, particle, enlarged=True)
        extra: list[str] = []
        for key, flag in (("runs", "--n-runs"), ("first_obs_id", "--first-obs-id"),
                          ("showers", "--num-showers")):
            if key in settings:
                extra += [flag, str(settings[key])]
        if "energy_range" in settings:
            extra += ["--energy-range", *map(str, settings["energy_range"])]
        local_steps.enlarge(self.options.payload_env, [merged], output,
                            int(settings.get("rows", 3000)), int(settings.get("seed", 1)),
                            bool(settings.get("background", False)), extra)
        kind = "a hadron-like stand-in" if settings.get("background") else "resampled"
        if "energy_range" in settings:
            kind += ", true energies log-uniform over {}-{} TeV".format(
                *settings["energy_range"])
        it.events.append(Event(str(task), f"NOTE: {merged.name} enlarged to "
                               f"{settings.get('rows', 3000)} rows per table ({kind}) -> "
                               f"{output.name}: a demo aid, not physics"))
        return TaskState(task, "finished", file_digest([output]))

    def model(self, task: Task, it: Iteration) -> TaskState:
        model_type = task.step.model or ""
        enlarged = task.step.options.get("inputs") == "enlarged"
        if model_type == "regressor":
            signal = self.merged(Stage.TRAINING_ENERGY, Particle.GAMMA, enlarged)
            background = None
        else:
            signal = self.merged(Stage.TRAINING_CLASSIFICATION, Particle.GAMMA, enlarged)
            background = self.merged(Stage.TRAINING_CLASSIFICATION, Particle.PROTON, enlarged)
        model = local_steps.build_model(self.analysis, model_type, self.options.payload_env,
                                        self.store, signal, background)
        it.events.append(Event(str(task), f"protopipe-MODEL: "
                               f"{', '.join(p.name for p in model.files)}"))
        for score in model.scores:
            it.events.append(Event(str(task), score.summary()))
        for warning in model.warnings:
            it.events.append(Event(str(task), warning, "warning"))
        return TaskState(task, "finished", file_digest(list(model.files)))

    def upload(self, task: Task, it: Iteration) -> TaskState:
        """Upload the model to the storage elements that hold the data of the jobs that read
        it (``GRID.upload_sites`` overrides), replicated to each."""
        model_type = task.step.model or ""
        ses, why = self.model_ses(task)
        report = upload.upload_models(self.backend, self.analysis.tree, model_type,
                                      self.analysis.method(model_type) or "",
                                      self.analysis.cam_ids, ses)
        it.events.append(Event(str(task), f"{model_type} uploaded to {ses[0]}"
                               f"{', replicated to ' + ', '.join(ses[1:]) if ses[1:] else ''} "
                               f"({why}; {len(report.uploaded)} new file(s))"))
        lfns = [lfn for _, lfn in upload.model_files(
            self.analysis.tree, model_type, self.analysis.method(model_type) or "",
            self.analysis.cam_ids)]
        found = self.backend.metadata(lfns)
        return TaskState(task, "finished", digest(sorted((lfn, found[lfn].checksum)
                                                         for lfn in lfns if lfn in found)))

    def model_ses(self, task: Task) -> tuple[list[str], str]:
        configured = self.analysis.grid.GRID.upload_sites
        writable = self.backend.storage_elements()
        if configured:
            return upload.storage_elements(self.backend, configured), "GRID.upload_sites"
        lfns = []
        for step in self.workflow.dependents(task.step.name):
            if step.kind == "grid" and step.stage is not None:
                for particle in step.particles:
                    try:
                        lfns += read_list(self.analysis.list_file(step.stage, particle)
                                          )[:upload.SAMPLED]
                    except InputError:
                        continue
        ses = upload.data_storage_elements(self.backend, lfns, writable)
        if ses:
            return ses, "where the jobs' input data are"
        return [self.output_se()], "no replica of the jobs' data on a writable SE"

    def performance(self, task: Task, it: Iteration) -> TaskState:
        template = ("DL2_{}_{}_enlarged.h5" if task.step.options.get("inputs") == "enlarged"
                    else "DL2_{}_{}_merged.h5")
        report = local_steps.make_performance(self.analysis, self.options.payload_env,
                                              self.store, template=template,
                                              name=str(task.step.options.get("name",
                                                                             "performance")))
        it.events.append(Event(str(task), f"IRFs (protopipe-DL3-EventDisplay): {report.irf}"))
        for normalisation in report.normalisations:
            it.events.append(Event(str(task), performance.normalisation_line(normalisation)))
        for line in performance.overview_lines(report.summary):
            it.events.append(Event(str(task), line))
        return TaskState(task, "finished", file_digest([report.irf]))


    def ctapipe_step(self, task: Task, it: Iteration) -> TaskState:
        """A local or catalog step of a ctapipe analysis (:mod:`.ctapipe_tasks`)."""
        step, env, analysis = task.step, self.options.payload_env, self.analysis
        kind = ctapipe_tasks.inputs_of(step.options)
        if step.kind == "model":
            done = ctapipe_tasks.train(analysis, env, self.store, step.model or "", kind)
        elif step.kind == "performance":
            done = ctapipe_tasks.performance(analysis, env, self.store)
        else:
            stage, particle = self.subject(task)
            if step.kind == "catalog":
                done = ctapipe_tasks.register(analysis, self.backend, self.store, stage,
                                              particle)
            elif step.kind == "enlarge":
                done = ctapipe_tasks.enlarge(analysis, env, stage, particle,
                                             step.options.get(particle.value, {}))
            elif step.kind == "apply":
                done = ctapipe_tasks.apply(analysis, env, self.store, stage, particle,
                                           step.models, kind)
            else:
                raise InputError(f"step {step.name}: a ctapipe analysis has no {step.kind} "
                                 "step", "see data/workflow-ctapipe.yaml")
        for line in done.lines:
            it.events.append(Event(str(task), line))
        for warning in done.warnings:
            it.events.append(Event(str(task), warning, "warning"))
        return TaskState(task, "finished",
                         file_digest(done.files) if done.files else digest(done.lines))


def group(rows: Sequence[JobRow]) -> dict[tuple[Stage, Particle], list[JobRow]]:
    """Jobs by stage and particle, canaries left out."""
    grouped: dict[tuple[Stage, Particle], list[JobRow]] = {}
    for row in rows:
        if not is_canary(row.name):
            grouped.setdefault((row.stage, row.particle), []).append(row)
    return grouped


def run(engine: Engine, watch: bool, poll_seconds: float,
        on_iteration: Callable[[Iteration], None] | None = None,
        sleep: Callable[[float], None] = time.sleep) -> Iteration:
    """Iterate once, or with ``watch`` until the analysis is finished or nothing can move
    without the user; an iteration that did local work is followed at once."""
    while True:
        try:
            it = engine.iterate()
        except TransientBackendError as exc:  # the backend is away: with --watch, wait for it
            if not watch:
                raise
            it = Iteration(events=[Event("", f"{exc.message}; trying again in "
                                             f"{poll_seconds:.0f} s", "warning")])
        if on_iteration is not None:
            on_iteration(it)
        if not watch or it.finished or it.stuck or engine.options.dry_run:
            return it
        if not it.worked:
            sleep(poll_seconds)



def open_workflow(analysis: Analysis) -> Workflow:
    """The analysis' workflow file; one made before ``run`` existed gets protopipe's."""
    path = analysis.tree.root / FILE_NAME
    if not path.is_file():
        write_atomic(path, template())
    return load_workflow(path)


def run_analysis(analysis: Analysis, store: Store, backend: Backend, options: RunOptions,
                 watch: bool, poll_seconds: float | None = None,
                 on_iteration: Callable[[Iteration], None] | None = None,
                 unban: Sequence[str] = ()) -> Iteration:
    """``protopipe-grid run``: lift the bans asked, check ``--until`` against the workflow
    file, then :func:`run` (polling every ``Run.poll_seconds`` unless told otherwise)."""
    for site in unban:
        sites.unban(store, site)
    workflow = open_workflow(analysis)
    if options.until and options.until not in workflow.steps:
        raise InputError(f"--until {options.until}: not a step of "
                         f"{analysis.tree.root / FILE_NAME}",
                         f"steps: {', '.join(workflow.steps)}")
    runner = Engine(analysis, store, backend, workflow, options)
    return run(runner, watch, poll_seconds or analysis.grid.Run.poll_seconds, on_iteration)


def check_moving(last: Iteration) -> None:
    """Raise :class:`BlockedError`, one line per blocked step, when nothing can move without
    the user."""
    if last.stuck:
        raise BlockedError("\n".join(f"{t.task}: {t.detail}" for t in last.blocked))
