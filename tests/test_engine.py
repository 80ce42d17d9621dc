"""``run``'s engine on the fake backend: a stage taken to its merge, failures handled by class.

The analysis' energy TRAINING is three jobs of one file each (run101-run103);
``protopipe-TRAINING`` is an in-process stand-in whose behaviour is scripted per job and
attempt: write rows, exit non-zero, or end the job as DIRAC would for a failure of another
class (the fake's ``set_status`` with DIRAC's strings), optionally after leaving a partial
output in the catalog. The canary is off here (``test_canary.py`` covers it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tables
from analysis_configs import write_configs
from contract import interrupt_once
from test_canary import write_output

from protopipe_grid_interface.backends.fake import SITE, FakeBackend
from protopipe_grid_interface.config import BlackHolePolicy, set_yaml_values
from protopipe_grid_interface.exceptions import ConfigError, TransientBackendError
from protopipe_grid_interface.models import JobStatus, Particle, Stage
from protopipe_grid_interface.store import Outcome, Store
from protopipe_grid_interface.workflow import engine, sites
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.steps import load_workflow
from protopipe_grid_interface.workflow.tree import create_analysis

STAGE, GAMMA = Stage.TRAINING_ENERGY, Particle.GAMMA
PRODUCTION = "/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run{}___cta-prod3_desert.simtel.zst"
UNTIL = "collect-training-energy"


@dataclass
class Script:
    """Stands in for ``protopipe-TRAINING``: per job token (``run102``), what each attempt
    does: ``"ok"``, ``"empty"`` (no row), ``"exit"`` (exit 1), or ``(status, minor)`` to end
    the job so (``"partial"`` first: the output is left in the catalog)."""

    backend: FakeBackend | None = None
    plan: dict[str, list[Any]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    #: what each attempt found in the catalog at its output LFN when it started
    found_output: dict[tuple[str, int], bool] = field(default_factory=dict)

    def __call__(self, args: list[str], work: Path) -> int:
        assert self.backend is not None
        spec = self.backend.job(int(work.parent.name)).spec
        token = spec.name.split("_")[-1]
        attempt = self.attempts[token] = self.attempts.get(token, 0) + 1
        self.found_output[token, attempt] = bool(self.backend.metadata([spec.output_lfn]))
        steps = self.plan.get(token, [])
        action = steps[attempt - 1] if attempt <= len(steps) else "ok"
        outfile = work / args[args.index("--outfile") + 1]
        if action == "exit":
            return 1
        write_output(outfile, 0 if action == "empty" else 5)
        if isinstance(action, tuple):
            *extra, status, minor = action
            if "partial" in extra:
                self.backend.register(spec.output_lfn, spec.output_se, b"half a file")
            self.backend.set_status(int(work.parent.name), status, minor)
        return 0


@dataclass
class Workspace:
    analysis: Analysis
    backend: FakeBackend
    store: Store
    script: Script
    tmp: Path

    def engine(self, **options: Any) -> engine.Engine:
        self.analysis = Analysis.open(self.analysis.tree.metadata_file)  # grid.yaml re-read
        return engine.Engine(self.analysis, self.store, self.backend,
                             engine.open_workflow(self.analysis),
                             engine.RunOptions(self.tmp, until=UNTIL, **options))

    def run(self, **options: Any) -> engine.Iteration:
        return engine.run(self.engine(**options), watch=True, poll_seconds=0.02)

    def policy(self, failure: str, **values: object) -> None:
        set_yaml_values(self.analysis.tree.grid_config,
                        {("Run", "failures", failure): {"action": "retry", "attempts": 3,
                                                        "backoff": 0, **values}})

    def outcomes(self, token: str) -> list[str]:
        return [o.outcome for o in self.store.outcomes() if o.name.endswith(token)]

    def backend_jobs(self) -> list[str]:
        return sorted(self.backend.job(i).spec.name for i in self.backend.select_jobs())


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    yield from workspace(tmp_path)


def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """The analysis of the module docstring (for ``test_report.py`` too)."""
    script = Script()
    backend = FakeBackend(tmp_path / "fake", programs={"protopipe-TRAINING": script},
                          max_parallel=2)
    script.backend = backend
    tree = create_analysis(tmp_path / "ws", "ana", None, grid_home=backend.home())
    write_configs(tree.configs, ["LSTCam"])
    set_yaml_values(tree.configs / "grid.yaml", {("GRID", "n_file_per_job"): 1,
                                                 ("GRID", "canary"): "off"})
    listing = tmp_path / "gamma.list"
    lfns = [PRODUCTION.format(run) for run in (101, 102, 103)]
    listing.write_text("".join(f"{lfn}\n" for lfn in lfns))
    for lfn in lfns:
        (tmp_path / "sim").write_bytes(lfn.encode())
        backend.put_file(tmp_path / "sim", lfn, "LOCAL-SE")
    analysis = Analysis.open(tree.metadata_file)
    assert analysis.set_list_file(STAGE, GAMMA, listing)
    store = analysis.store()
    yield Workspace(analysis, backend, store, script, tmp_path)
    store.close()
    backend.close()


def merged_rows(ws: Workspace) -> int:
    path = next(ws.analysis.tree.data_dir(STAGE, GAMMA).glob("*_merged.h5"))
    with tables.open_file(path) as h5:
        return int(h5.root.LSTCam.nrows)


# --- the happy path and resuming ----------------------------------------------------------------
def test_run_takes_the_stage_to_its_merge_and_again_does_nothing(ws: Workspace) -> None:
    last = ws.run()

    assert last.finished and [t.task.step.name for t in last.tasks] == [
        "training-energy", UNTIL]
    assert merged_rows(ws) == 15 and len(ws.backend_jobs()) == 3
    assert {o.outcome for o in ws.store.outcomes()} == {"done"}

    again = ws.run()

    assert again.finished and not again.events and len(ws.backend_jobs()) == 3


def test_dry_run_says_what_it_would_do_and_changes_nothing(ws: Workspace) -> None:
    it = ws.engine(dry_run=True).iterate()

    assert [t.state for t in it.tasks] == ["ready", "waiting"]
    assert "would check" in it.tasks[0].detail and "submit 3 job(s)" in it.tasks[0].detail
    assert ws.backend_jobs() == [] and ws.store.jobs() == []


def test_a_run_killed_inside_the_submission_sends_no_job_twice(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    interrupt_once(monkeypatch, ws.backend, "submit")
    with pytest.raises(KeyboardInterrupt):
        ws.run()

    last = ws.run()

    assert last.finished and len(ws.backend_jobs()) == 3 and merged_rows(ws) == 15


def test_a_backend_away_for_a_while_is_waited_for_by_watch(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = ws.backend.status, []

    def away_twice(ids: list[int]) -> object:
        calls.append(1)
        if len(calls) in (1, 2):
            raise TransientBackendError("the backend did not answer")
        return real(ids)

    monkeypatch.setattr(ws.backend, "status", away_twice)
    seen: list[engine.Iteration] = []

    last = engine.run(ws.engine(), watch=True, poll_seconds=0.02, on_iteration=seen.append)

    assert last.finished and merged_rows(ws) == 15 and len(ws.backend_jobs()) == 3
    away = [it for it in seen if any("did not answer" in e.message for e in it.events)]
    assert len(away) == 2 and not any(it.finished for it in away)


# --- failures by class ---------------------------------------------------------------------------
def test_a_job_failing_transiently_twice_is_retried_away_from_its_site_and_finishes(
        ws: Workspace) -> None:
    ws.policy("stalled")
    stalled = (JobStatus.FAILED, "Job stalled: pilot not running")
    ws.script.plan["run102"] = [stalled, stalled]

    last = ws.run()

    assert last.finished and merged_rows(ws) == 15
    assert ws.outcomes("run102") == ["stalled", "stalled", "done"]
    retried = [ws.backend.job(i).spec for i in ws.backend.select_jobs()
               if ws.backend.job(i).spec.name.endswith("run102")]
    assert len(retried) == 3 and SITE in retried[-1].banned_sites
    assert SITE not in retried[0].banned_sites


def test_an_application_error_stops_its_step_after_its_attempts_with_the_log_tail(
        ws: Workspace) -> None:
    ws.policy("application", attempts=2)
    ws.script.plan["run103"] = ["exit", "exit"]

    last = ws.run()

    assert last.stuck and not last.finished
    blocked = last.blocked[0]
    assert blocked.task.step.name == "training-energy"
    assert "application" in blocked.detail and "2 attempt(s) failed" in blocked.detail
    assert "exit code 1" in blocked.detail  # the job log's tail
    assert ws.outcomes("run103") == ["application", "application"]
    assert not list(ws.analysis.tree.data_dir(STAGE, GAMMA).glob("*_merged.h5"))


def test_a_retried_jobs_partial_output_is_removed_before_the_retry(ws: Workspace) -> None:
    ws.policy("upload")
    ws.script.plan["run101"] = [("partial", JobStatus.FAILED, "Uploading Output Data")]

    last = ws.run()

    assert last.finished and ws.outcomes("run101") == ["upload", "done"]
    assert ws.script.found_output["run101", 2] is False
    assert merged_rows(ws) == 15


def test_an_output_without_events_is_a_failure_of_its_own_class(ws: Workspace) -> None:
    ws.script.plan["run102"] = ["empty"]

    last = ws.run()

    assert last.stuck and "empty output" in last.blocked[0].detail
    assert ws.outcomes("run102") == ["empty output"]
    job = ws.store.jobs(names=[n for n in (r.name for r in ws.store.jobs())
                               if n.endswith("run102")])[0]
    assert job.status == JobStatus.FAILED
    assert not list(ws.analysis.tree.data_dir(STAGE, GAMMA).glob("*_merged.h5"))


def test_a_job_completed_with_pending_requests_is_not_done(ws: Workspace) -> None:
    ws.script.plan["run101"] = [(JobStatus.COMPLETED, "Pending Requests")]

    it = ws.engine().iterate()
    for _ in range(200):
        it = ws.engine().iterate()
        if it.tasks[0].state != "ready" and "Completed" in it.tasks[0].detail:
            break

    assert it.tasks[0].state == "running" and "1 Completed" in it.tasks[0].detail
    assert ws.outcomes("run101") == []


# --- held jobs, black holes ----------------------------------------------------------------------
def test_a_job_held_in_waiting_past_its_limit_is_flagged_and_restarted_only_with_yes(
        ws: Workspace) -> None:
    ws.backend.hold = True
    set_yaml_values(ws.analysis.tree.grid_config, {("Run", "held_after", "Waiting"): 0.01})
    ws.engine().iterate()  # submits
    ws.engine().iterate()  # the jobs are Waiting, and stay so
    time.sleep(0.05)

    flagged = ws.engine(restart_held=True).iterate()

    assert len(flagged.held) == 3 and len(ws.backend_jobs()) == 3
    assert any("run --restart-held --yes" in e.message for e in flagged.events)

    ws.engine(restart_held=True, yes=True).iterate()

    states = [ws.backend.job(i).state.status for i in ws.backend.select_jobs()]
    assert len(states) == 6 and states.count(JobStatus.KILLED) == 3  # killed, sent again
    assert {r.attempts for r in ws.store.jobs()} == {2}
    assert ws.outcomes("run101") == ["held"]


def test_a_site_failing_most_jobs_is_banned_and_avoided_until_unbanned(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    outcomes = [Outcome(f"job{i}", 1, i, "LCG.Bad.xx", "stalled", "", "retry")
                for i in range(5)]
    outcomes += [Outcome(f"job{i}", 1, i, "LCG.Good.xx", "done", "", "accepted")
                 for i in range(5, 10)]
    outcomes += [Outcome(f"job{i}", 1, i, "LCG.Broken.xx", "application", "", "stop")
                 for i in range(10, 15)]
    store.record_outcomes(outcomes)

    banned = sites.ban_black_holes(store, BlackHolePolicy(failure_rate=0.8, min_jobs=5))

    assert [hole.site for hole in banned] == ["LCG.Bad.xx"]  # application errors are ours
    assert list(store.bans()) == ["LCG.Bad.xx"]
    sites.unban(store, "LCG.Bad.xx")
    assert store.bans() == {}
    store.close()


# --- the workflow file ---------------------------------------------------------------------------
@pytest.mark.parametrize(("steps", "expected"), [
    ("[{name: a, kind: grid, stage: dl2, needs: [b]}]", "needs b, which is not a step"),
    ("[{name: a, kind: model, model: regressor, needs: [b]}, "
     "{name: b, kind: upload, model: regressor, needs: [a]}]", "need each other"),
    ("[{name: a, kind: grid, stage: dl2}, {name: a, kind: grid, stage: dl2}]",
     "defined twice"),
    ("[{name: a, kind: grid}]", "needs a stage"),
    ("[{name: a, kind: train, stage: dl2}]", "steps.0.kind"),
])
def test_a_bad_workflow_file_is_refused_naming_the_file_and_the_step(
        tmp_path: Path, steps: str, expected: str) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(f"pipeline: protopipe\nsteps: {steps}\n")

    with pytest.raises(ConfigError) as error:
        load_workflow(path)

    assert str(path) in error.value.message and expected in error.value.message


def test_a_step_whose_inputs_changed_runs_again_with_the_steps_after_it(ws: Workspace) -> None:
    assert ws.run().finished
    merged = next(ws.analysis.tree.data_dir(STAGE, GAMMA).glob("*_merged.h5"))
    before = merged.stat().st_mtime_ns
    record = next(r for r in ws.store.jobs() if r.name.endswith("run103"))
    # the job is done again elsewhere (resubmitted by hand): another output, another checksum
    ws.backend.remove([record.spec.output_lfn])
    write_output(ws.tmp / "other.h5", 7)
    ws.backend.put_file(ws.tmp / "other.h5", record.spec.output_lfn, "LOCAL-SE")
    found = ws.backend.metadata([record.spec.output_lfn])[record.spec.output_lfn]
    ws.store.set_output([(record.name, found.size, found.checksum)])

    last = ws.run()

    assert last.finished and merged_rows(ws) == 17
    assert merged.stat().st_mtime_ns != before
