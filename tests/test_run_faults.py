"""Fault tests of ``run`` on the local backend: each failure class injected on chosen jobs or
sites (``backends/faults.py``, DIRAC's own strings), handled by its policy.

The jobs are real local-backend jobs (the queue runner, a job wrapper per job, two sites) whose
payload environment is a stand-in: ``protopipe-TRAINING`` is a small script writing a
protopipe-like table file. The analysis' energy TRAINING is four jobs of one file each; ``run``
goes until their merge; the canary is off and retries wait for nothing (backoff 0) unless a test
says otherwise.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from analysis_configs import write_configs

from protopipe_grid_interface.backends.faults import HOLD, Fault
from protopipe_grid_interface.backends.local import DEFAULT_SITES, LocalBackend
from protopipe_grid_interface.cli.main import main
from protopipe_grid_interface.config import set_yaml_values
from protopipe_grid_interface.models import FailureClass, JobStatus, Particle, Stage
from protopipe_grid_interface.store import JobRecord, Store
from protopipe_grid_interface.workflow import engine
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.tree import create_analysis

STAGE, GAMMA = Stage.TRAINING_ENERGY, Particle.GAMMA
PRODUCTION = "/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run{}___cta-prod3_desert.simtel.zst"
HERE, OTHER = DEFAULT_SITES
TRAINING = """
import sys
import numpy as np
import tables
out = sys.argv[sys.argv.index("--outfile") + 1]
with tables.open_file(out, "w") as h5:
    data = np.zeros(5, dtype=[("obs_id", np.int16), ("event_id", np.int64)])
    data["event_id"] = np.arange(5)
    h5.create_table("/", "LSTCam", obj=data)
    h5.root._v_attrs.status = "complete"
    h5.root._v_attrs.num_showers = 100
    h5.root._v_attrs.shower_reuse = 10
"""


def stand_in_env(folder: Path) -> Path:
    """A payload environment whose ``protopipe-TRAINING`` writes five rows, and whose
    ``python`` is this one."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    script = bin_dir / "protopipe-TRAINING"
    script.write_text(f"#!{sys.executable}\n{TRAINING}")
    script.chmod(0o755)
    return folder


@dataclass
class Workspace:
    analysis: Analysis
    backend: LocalBackend
    store: Store
    env: Path
    #: the iterations of :meth:`until`
    seen: list[engine.Iteration] = field(default_factory=list)

    def engine(self, **options: object) -> engine.Engine:
        analysis = Analysis.open(self.analysis.tree.metadata_file)  # grid.yaml read again
        return engine.Engine(analysis, self.store, self.backend, engine.open_workflow(analysis),
                             engine.RunOptions(self.env, until="collect-training-energy",
                                               **options))  # type: ignore[arg-type]

    def run(self) -> engine.Iteration:
        return engine.run(self.engine(), watch=True, poll_seconds=0.2)

    def until(self, found: Callable[[engine.Iteration], bool], seconds: float = 60
              ) -> engine.Iteration:
        """Iterate until ``found`` holds (the test fails after ``seconds``)."""
        runner = self.engine()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            it = runner.iterate()
            self.seen.append(it)
            if found(it):
                return it
            time.sleep(0.2)
        raise AssertionError("the expected iteration never came")

    def policy(self, failure: FailureClass, **values: object) -> None:
        set_yaml_values(self.analysis.tree.grid_config,
                        {("Run", "failures", failure.value): {"action": "retry", "attempts": 3,
                                                              "backoff": 0, **values}})

    def outcomes(self, token: str) -> list[str]:
        return [o.outcome for o in self.store.outcomes() if o.name.endswith(token)]

    def job(self, token: str) -> JobRecord:
        return next(r for r in self.store.jobs() if r.name.endswith(token))


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    env = stand_in_env(tmp_path / "env")
    backend = LocalBackend(tmp_path / "grid", payload_env=env)
    tree = create_analysis(tmp_path / "ws", "ana", None, grid_home=backend.home())
    write_configs(tree.configs, ["LSTCam"])
    set_yaml_values(tree.configs / "grid.yaml", {("GRID", "n_file_per_job"): 1,
                                                 ("GRID", "canary"): "off"})
    listing = tmp_path / "gamma.list"
    lfns = [PRODUCTION.format(run) for run in (101, 102, 103, 104)]
    listing.write_text("".join(f"{lfn}\n" for lfn in lfns))
    for lfn in lfns:
        (tmp_path / "sim").write_bytes(lfn.encode())
        backend.put_file(tmp_path / "sim", lfn, "LOCAL-SE")
    analysis = Analysis.open(tree.metadata_file)
    assert analysis.set_list_file(STAGE, GAMMA, listing)
    store = analysis.store()
    yield Workspace(analysis, backend, store, env)
    backend.clear_faults()
    backend.kill(backend.select_jobs())
    store.close()


def test_a_job_failing_transiently_twice_is_retried_and_finishes(ws: Workspace) -> None:
    ws.policy(FailureClass.STALLED)
    ws.backend.inject(Fault(FailureClass.STALLED, job_name="*run102", times=2))

    last = ws.run()

    assert last.finished, last.tasks
    assert ws.outcomes("run102") == ["stalled", "stalled", "done"]
    assert ws.job("run102").attempts == 3


def test_an_application_error_stops_its_step_after_its_attempts_showing_the_log_tail(
        ws: Workspace) -> None:
    ws.policy(FailureClass.APPLICATION, attempts=2)
    ws.backend.inject(Fault(FailureClass.APPLICATION, job_name="*run103"))

    last = ws.run()

    assert last.stuck and [t.task.step.name for t in last.blocked] == ["training-energy"]
    detail = last.blocked[0].detail
    assert "run103" in detail and "application" in detail and "2 attempt(s)" in detail
    assert "ERROR" in detail  # the error line of the job's log
    assert ws.outcomes("run103") == ["application", "application"]


def test_a_site_failing_every_job_is_banned_and_the_jobs_run_at_the_other_site(
        ws: Workspace) -> None:
    ws.policy(FailureClass.WATCHDOG, attempts=4)
    set_yaml_values(ws.analysis.tree.grid_config,
                    {("Run", "black_holes"): {"failure_rate": 0.5, "min_jobs": 2,
                                              "window": 50}})
    ws.backend.inject(Fault(FailureClass.WATCHDOG, site=OTHER))

    last = ws.run()

    assert last.finished, last.tasks
    assert list(ws.store.bans()) == [OTHER]
    done = [r for r in ws.store.jobs() if r.status == JobStatus.DONE]
    assert len(done) == 4 and {r.site for r in done} == {HERE}
    failed_there = [o for o in ws.store.outcomes() if o.outcome == "watchdog"]
    assert failed_there and {o.site for o in failed_there} == {OTHER}
    later = [ws.backend.job_spec(i)[0] for i in ws.backend.select_jobs()][4:]
    assert later and all(OTHER in spec.banned_sites for spec in later)


def test_a_job_held_in_waiting_past_its_limit_is_flagged(ws: Workspace) -> None:
    set_yaml_values(ws.analysis.tree.grid_config, {("Run", "held_after", "Waiting"): 1})
    ws.backend.inject(Fault(HOLD, job_name="*run101"))

    held = "protopipe_ana_TRAINING_energy_gamma_run101"
    # the others end Done (one may be flagged a moment while it waits for a free core)
    it = ws.until(lambda it: [h.record.name for h in it.held] == [held]
                  and it.tasks[0].detail == "3 Done, 1 Waiting")

    assert [h.record.name for h in it.held] == [held]
    assert "Waiting" in it.held[0].line()
    said = [e.message for seen in ws.seen for e in seen.events if held in e.message]
    assert len(said) == 1 and said[0].startswith("held: ")  # once, not at every poll
    assert any("run --restart-held --yes" in e.message for seen in ws.seen for e in seen.events)


def test_a_retried_jobs_partial_output_is_gone_before_the_retry(ws: Workspace) -> None:
    ws.policy(FailureClass.UPLOAD, backoff=3600)  # the retry waits: look in between
    ws.backend.inject(Fault(FailureClass.UPLOAD, job_name="*run101", times=1))

    ws.until(lambda it: ws.outcomes("run101") == ["upload"])

    job = ws.job("run101")
    assert job.status == JobStatus.PLANNED
    assert datetime.fromisoformat(job.not_before) > datetime.now(UTC)
    assert ws.backend.metadata([job.spec.output_lfn]) == {}


# --- the command ---------------------------------------------------------------------------------
def command(ws: Workspace, *extra: str) -> list[str]:
    return ["run", "-m", str(ws.analysis.tree.metadata_file), "--backend", "local",
            "--local-root", str(ws.backend.root), "--payload-env", str(ws.env), *extra]


def test_run_dry_run_shows_the_next_actions_and_submits_nothing(
        ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(command(ws, "--dry-run")) == 0

    shown = capsys.readouterr().out
    assert "training-energy gamma: ready: would check" in shown and "submit 4 job(s)" in shown
    assert "regressor: waiting: needs collect-training-energy gamma" in shown
    assert ws.backend.select_jobs() == [] and ws.store.jobs() == []


@pytest.mark.parametrize(("extra", "expected"), [
    (("--until", "training"), "--until training: not a step of"),
    (("--unban", "LCG.Nowhere.xx"), "--unban LCG.Nowhere.xx: not a banned site"),
])
def test_run_refuses_a_bad_argument_in_one_line(
        ws: Workspace, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...],
        expected: str) -> None:
    assert main(command(ws, *extra)) == 2

    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and expected in errors[0]
    assert ws.backend.select_jobs() == []


def test_run_watch_that_ends_blocked_exits_6_naming_the_step(
        ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    ws.backend.inject(Fault(FailureClass.APPLICATION, job_name="*run104"))

    assert main(command(ws, "--watch", "--poll", "0.2", "--until",
                        "collect-training-energy")) == 6

    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "training-energy gamma: 1 job(s) stopped the step" in errors[0]
