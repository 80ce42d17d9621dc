"""The canary of a stage: one job on one file, its output checked, before the rest is submitted.

An analysis on the fake backend whose energy TRAINING is two jobs (run101-run102, then run103);
``protopipe-TRAINING`` is an in-process stand-in writing a protopipe-like table file (PyTables,
the root attribute ``status``), and the canary of the first job merges its one part with the
real merge script, as the job would.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import tables
from analysis_configs import write_configs
from contract import interrupt_once

from protopipe_grid_interface.backends.fake import FakeBackend
from protopipe_grid_interface.cli import commands
from protopipe_grid_interface.cli.main import build_parser
from protopipe_grid_interface.config import set_yaml_values
from protopipe_grid_interface.exceptions import PayloadError
from protopipe_grid_interface.models import JobSpec, JobStatus, Particle, Stage
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import canary, collect, submit, track
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.plan import MAX_JOB_NAME, MERGE_SCRIPT, canary_job
from protopipe_grid_interface.workflow.tree import create_analysis

STAGE, GAMMA = Stage.TRAINING_ENERGY, Particle.GAMMA
PRODUCTION = "/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run{}___cta-prod3_desert.simtel.zst"


def write_output(path: Path, rows: int, status: str = "complete") -> None:
    """A protopipe-like TRAINING file: an ``LSTCam`` table of ``rows`` rows."""
    with tables.open_file(path, "w") as h5:
        data = np.zeros(rows, dtype=[("obs_id", np.int16), ("event_id", np.int64)])
        data["event_id"] = np.arange(rows)
        h5.create_table("/", "LSTCam", obj=data)
        h5.root._v_attrs.status = status
        h5.root._v_attrs.num_showers = 100
        h5.root._v_attrs.shower_reuse = 10


@dataclass
class Training:
    """Stands in for ``protopipe-TRAINING``: ``rows`` rows to the file its ``--outfile`` names,
    or exit ``code``; counts its calls."""

    rows: int = 5
    code: int = 0
    calls: int = 0

    def __call__(self, args: Sequence[str], work: Path) -> int:
        self.calls += 1
        if self.code:
            return self.code
        write_output(work / args[list(args).index("--outfile") + 1], self.rows)
        return 0


@dataclass
class Workspace:
    analysis: Analysis
    backend: FakeBackend
    store: Store
    training: Training
    specs: list[JobSpec]
    tmp: Path

    @property
    def canary(self) -> JobSpec:
        return canary_job(self.specs[0])

    def options(self, mode: canary.Mode = "backend", env: Path | None = None
                ) -> canary.CanaryOptions:
        return canary.CanaryOptions(mode, env, timeout=60, poll_seconds=0.05,
                                    scratch_root=self.tmp)

    def run(self, mode: canary.Mode = "backend", env: Path | None = None
            ) -> canary.CanaryResult | None:
        return canary.run_canary(self.store, self.backend, self.specs,
                                 self.analysis.cam_ids, self.options(mode, env))

    def names_on_backend(self) -> list[str]:
        """The name of every job the backend holds, by its own listing."""
        return sorted(self.backend.job(i).spec.name for i in self.backend.select_jobs())

    def results(self) -> list[dict[str, object]]:
        return [r.figures for r in self.store.results(canary.result_step(STAGE))]


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    training = Training()
    backend = FakeBackend(tmp_path / "fake", programs={"protopipe-TRAINING": training},
                          max_parallel=1)
    tree = create_analysis(tmp_path / "ws", "ana", None, grid_home=backend.home())
    write_configs(tree.configs, ["LSTCam"])
    set_yaml_values(tree.configs / "grid.yaml", {("GRID", "n_file_per_job"): 2})
    listing = tmp_path / "gamma.list"
    lfns = [PRODUCTION.format(run) for run in (101, 102, 103)]
    listing.write_text("".join(f"{lfn}\n" for lfn in lfns))
    for lfn in lfns:
        (tmp_path / "sim").write_bytes(lfn.encode())
        backend.put_file(tmp_path / "sim", lfn, "LOCAL-SE")
    analysis = Analysis.open(tree.metadata_file)
    assert analysis.set_list_file(STAGE, GAMMA, listing)
    specs = analysis.plan_stage(backend, STAGE, [])
    assert [len(s.input_lfns) for s in specs] == [2, 1]
    store = analysis.store()
    yield Workspace(analysis, backend, store, training, specs, tmp_path)
    store.close()
    backend.close()


# --- the canary job -----------------------------------------------------------------------------
def test_the_canary_is_the_first_job_on_its_first_file_with_its_own_name_and_output(
        ws: Workspace) -> None:
    first, job = ws.specs[0], ws.canary

    assert job.name == f"{first.name}_canary" and job.input_lfns == first.input_lfns[:1]
    assert job.steps == (first.steps[0], ("python", MERGE_SCRIPT, "-o", first.output_file,
                                          first.intermediate_files[0]))
    folder, _, name = first.output_lfn.rpartition("/")
    assert job.output_lfn == f"{folder}/canary/{name}"
    assert (job.input_data, job.input_sandbox, job.job_group) == (
        first.input_data, first.input_sandbox, first.job_group)
    single = canary_job(ws.specs[1])
    assert single.steps == ws.specs[1].steps and single.intermediate_files == ()

    longest = replace(first, name="x" * MAX_JOB_NAME)
    shortened = canary_job(longest).name
    assert len(shortened) == MAX_JOB_NAME and shortened.endswith("_canary")
    assert shortened == canary_job(longest).name  # deterministic
    assert shortened != canary_job(replace(first, name="x" * (MAX_JOB_NAME - 1) + "y")).name


def test_a_stage_of_fewer_jobs_than_a_canary_saves_runs_none(ws: Workspace) -> None:
    small = canary.plan(ws.store, ws.specs, "backend", stage_jobs=canary.MIN_STAGE_JOBS - 1)
    assert small.canary is None and "2 job(s) in all" in small.reason
    assert canary.plan(ws.store, ws.specs, "backend",
                       stage_jobs=canary.MIN_STAGE_JOBS).canary == ws.canary
    assert canary.plan(ws.store, ws.specs, "backend").canary == ws.canary  # size not known


# --- outcomes -----------------------------------------------------------------------------------
def test_an_empty_canary_output_stops_the_stage_before_the_rest_is_submitted(
        ws: Workspace) -> None:
    ws.training.rows = 0

    with pytest.raises(PayloadError) as raised:
        ws.run()

    message = str(raised.value)
    assert message.startswith(f"canary job {ws.canary.name} failed: output ")
    assert "table /LSTCam has no events" in message and "\n" not in message
    assert "--no-canary" in message
    assert ws.names_on_backend() == [ws.canary.name]  # no job of the stage itself
    assert ws.backend.metadata([ws.canary.output_lfn]) == {}
    [result] = ws.results()
    assert (result["passed"], result["rows"], result["output_removed"]) == (
        False, {"LSTCam": 0}, True)


def test_a_passing_canary_lets_the_stage_be_submitted_and_never_runs_again(
        ws: Workspace) -> None:
    passed = ws.run()
    assert passed is not None and passed.passed
    assert passed.rows == {"LSTCam": 5}
    report = submit.submit(ws.store, ws.backend, ws.specs)
    assert len(report.submitted) == 2

    assert ws.run() is None  # the next submission: no canary
    track.wait(ws.store, ws.backend, [s.name for s in ws.specs], poll_seconds=0.05, timeout=60)

    assert ws.training.calls == 1 + 3  # the canary's file, then each file of the stage
    assert ws.names_on_backend() == sorted([ws.canary.name, *(s.name for s in ws.specs)])
    [result] = ws.results()
    assert (result["passed"], result["job"], result["rows"]) == (True, ws.canary.name,
                                                                 {"LSTCam": 5})
    # its output is neither left in the catalog nor collected with the stage's
    assert ws.backend.list_directory(ws.canary.output_lfn.rpartition("/")[0]) == []
    outputs = collect.stage_outputs(ws.store, ws.backend, ws.analysis.tree, STAGE, GAMMA, "tail")
    assert [f.lfn for f in outputs] == sorted(s.output_lfn for s in ws.specs)


def test_a_failing_canary_job_names_the_job_and_its_status_and_runs_again_once_fixed(
        ws: Workspace) -> None:
    ws.training.code = 3

    with pytest.raises(PayloadError) as raised:
        ws.run()

    [job_id] = ws.backend.find_jobs([ws.canary.name])[ws.canary.name]
    assert str(raised.value) == (
        f"canary job {ws.canary.name} failed: job Failed (Application Finished With Errors; "
        "protopipe-TRAINING Exited With Status 3), last log line: ERROR Application Finished "
        f"With Errors: exit code 3; no other {STAGE.value} job was submitted "
        f"({canary.HINT})")
    assert ws.results()[0]["backend_id"] == job_id
    assert ws.names_on_backend() == [ws.canary.name]

    ws.training.code = 0
    passed = ws.run()  # the failed attempt is not adopted: a new canary job runs

    assert passed is not None and passed.backend_id != job_id
    assert len(ws.backend.find_jobs([ws.canary.name])[ws.canary.name]) == 2


SubmitCommand = Callable[..., int]


@pytest.fixture
def submit_command(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> SubmitCommand:
    """``protopipe-grid jobs submit`` of the energy TRAINING, on the workspace's fake backend,
    with extra options."""
    monkeypatch.setattr(commands, "attach", lambda args, analysis: (
        analysis.with_home(ws.backend.home), ws.backend))
    argv = ["jobs", "submit", "-m", str(ws.analysis.tree.metadata_file), "--stage", STAGE.value]

    def run(*extra: str) -> int:
        args: argparse.Namespace = build_parser().parse_args([*argv, *extra])
        return int(args.func(args))

    return run


def test_jobs_submit_says_the_canary_runs_first_and_how_it_ended(
        ws: Workspace, submit_command: SubmitCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert submit_command("--dry-run") == 0
    assert f"a canary runs first (backend): {ws.canary.name}" in capsys.readouterr().out
    assert ws.names_on_backend() == []

    assert submit_command() == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"a canary runs first (backend): {ws.canary.name} on ")
    assert lines[1].startswith(f"{STAGE.value} canary {ws.canary.name} (fake backend job 1): "
                               "passed; rows: LSTCam 5; ")
    assert lines[2].startswith(f"{STAGE.value}: 2 submitted")
    assert submit_command("--dry-run") == 0
    assert f"no canary: {ws.canary.name} passed" in capsys.readouterr().out


def test_no_canary_submits_the_stage_without_one(
        ws: Workspace, submit_command: SubmitCommand, capsys: pytest.CaptureFixture[str]
) -> None:
    assert submit_command("--dry-run", "--no-canary") == 0
    assert "no canary (GRID.canary: off, or --no-canary)" in capsys.readouterr().out

    assert submit_command("--no-canary") == 0

    assert ws.names_on_backend() == sorted(s.name for s in ws.specs)
    assert ws.results() == []
    assert submit_command("--dry-run") == 0  # the stage started: a canary is too late
    assert f"no canary: the {STAGE.value} stage was submitted before" in capsys.readouterr().out


# --- interruptions ------------------------------------------------------------------------------
def test_a_canary_interrupted_after_its_submission_is_adopted_not_duplicated(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    interrupt_once(monkeypatch, ws.store, "mark_submitted")  # the backend has it, we do not
    with pytest.raises(KeyboardInterrupt):
        ws.run()
    [record] = ws.store.jobs(names=[ws.canary.name])
    assert record.status == JobStatus.SENDING
    assert list(ws.tmp.glob("pgi-canary-*")) == []  # no scratch folder left behind

    passed = ws.run()

    assert passed is not None and passed.passed
    [job_id] = ws.backend.find_jobs([ws.canary.name])[ws.canary.name]
    assert passed.backend_id == job_id and ws.training.calls == 1


def test_a_canary_interrupted_before_its_output_is_removed_removes_it_next_time(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    real_remove = ws.backend.remove

    def remove(lfns: Sequence[str]) -> None:  # interrupted here, not in the job's own thread
        if threading.current_thread() is threading.main_thread():
            monkeypatch.setattr(ws.backend, "remove", real_remove)
            raise KeyboardInterrupt
        real_remove(lfns)

    monkeypatch.setattr(ws.backend, "remove", remove)
    with pytest.raises(KeyboardInterrupt):
        ws.run()
    assert ws.canary.output_lfn in ws.backend.metadata([ws.canary.output_lfn])
    assert [(r["passed"], r["output_removed"]) for r in ws.results()] == [(True, False)]

    assert ws.run() is None  # passed: not run again, but its output goes

    assert ws.backend.metadata([ws.canary.output_lfn]) == {}
    assert [(r["passed"], r["output_removed"]) for r in ws.results()] == [(True, True)]
    assert ws.names_on_backend() == [ws.canary.name]


# --- on this machine ----------------------------------------------------------------------------
FAKE_PROTOPIPE = """#!{python}
import sys
import numpy as np
import tables
args = sys.argv
with tables.open_file(args[args.index("--outfile") + 1], "w") as h5:
    h5.create_table("/", "LSTCam", obj=np.zeros({rows}, dtype=[("event_id", np.int64)]))
    h5.root._v_attrs.status = "complete"
"""


def payload_env(folder: Path, rows: int) -> Path:
    """A payload environment whose protopipe-TRAINING writes ``rows`` rows, and whose
    ``python`` is the one running the tests."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("protopipe-TRAINING", FAKE_PROTOPIPE.format(python=sys.executable,
                                                                   rows=rows)),
                       ("python", f'#!/bin/sh\nexec {sys.executable} "$@"\n')):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return folder


@pytest.mark.parametrize("rows", [4, 0])
def test_local_mode_runs_the_canary_here_without_a_backend_job(ws: Workspace, rows: int) -> None:
    env = payload_env(ws.tmp / "payload", rows)

    if rows:
        passed = ws.run("local", env)
        assert passed is not None and passed.rows == {"LSTCam": rows}
        assert (passed.mode, passed.backend_id) == ("local", None)
    else:
        with pytest.raises(PayloadError, match="table /LSTCam has no events") as raised:
            ws.run("local", env)
        [kept] = ws.tmp.glob("pgi-canary-*")  # its logs and output, for a look
        assert f"(its files: {kept})" in str(raised.value)
        assert sorted(p.name for p in kept.glob("*.log")) == [
            "step0_protopipe-TRAINING.log", "step1_python.log"]

    if rows:
        assert list(ws.tmp.glob("pgi-canary-*")) == []
    assert ws.names_on_backend() == []
    assert ws.training.calls == 0  # the backend's stand-in never ran
    assert [r["passed"] for r in ws.results()] == [bool(rows)]
