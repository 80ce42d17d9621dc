"""``protopipe-grid jobs submit`` and ``jobs wait`` on the local backend, run as a user runs them
(subprocesses, no terminal): a submission killed inside the backend's transaction is recovered
exactly once, and a wait never hangs: it ends on jobs that cannot progress, naming them and the
command that moves them on, and prints a status line now and then.

The jobs run a stand-in for ``protopipe-TRAINING`` (it writes the file its ``--outfile`` names),
so that they reach ``Done`` without the protopipe payload environment.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from analysis_configs import write_configs

from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.models import UNCONFIRMED, JobStatus, Particle, Stage
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.tree import create_analysis

BIN = Path(sys.executable).parent
#: stands in for protopipe-TRAINING: a second of work, then the file its --outfile names
FAKE_TRAINING = """#!{python}
import sys, time
time.sleep(1.0)
args = sys.argv
open(args[args.index("--outfile") + 1], "w").write("training table")
"""
#: ``protopipe-grid`` killed (SIGKILL) between the backend's submit and its confirmation
KILLED_INSIDE_THE_SUBMISSION = """
import os, signal, sys
from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.cli.main import main
LocalBackend.confirm = lambda self, ids: os.kill(os.getpid(), signal.SIGKILL)
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class Workspace:
    """An analysis whose energy TRAINING is two jobs of one gamma file each, the files in
    the local catalog."""

    dir: Path
    metadata: Path
    names: list[str]

    @property
    def grid(self) -> Path:
        return self.dir / "grid"

    def backend(self) -> LocalBackend:
        return LocalBackend(self.grid, payload_env=self.dir / "payload")

    def store(self) -> Store:
        return Analysis.open(self.metadata).store()

    def run(self, *args: object, code: int | None = 0, child: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """``protopipe-grid <args>`` on this workspace's local grid (or ``child``, a Python
        script given the same arguments)."""
        program = [sys.executable, "-c", child] if child else [str(BIN / "protopipe-grid")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGI_")}
        proc = subprocess.run(  # noqa: S603 - fixed argument list
            [*program, *map(str, args), "-m", self.metadata, "--backend", "local",
             "--local-root", self.grid, "--payload-env", self.dir / "payload"],
            cwd=self.dir, env=env, text=True, capture_output=True, stdin=subprocess.DEVNULL,
            timeout=120, check=False)
        if code is not None:
            assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stdout + proc.stderr
        return proc


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    tree = create_analysis(tmp_path / "ws", "ana", None)
    write_configs(tree.configs, ["LSTCam"])
    grid_yaml = tree.configs / "grid.yaml"
    grid_yaml.write_text(grid_yaml.read_text().replace("n_file_per_job: 10",
                                                       "n_file_per_job: 1").replace(
        'canary: "backend"', 'canary: "off"'))  # the stand-in writes no HDF5 file
    fake = tmp_path / "payload" / "bin" / "protopipe-TRAINING"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_TRAINING.format(python=sys.executable))
    fake.chmod(0o755)
    backend = LocalBackend(tmp_path / "grid")
    lfns = []
    for run in (101, 102):
        lfn = f"/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run{run}___cta-prod3_desert.simtel.zst"
        source = tmp_path / f"run{run}.simtel.zst"
        source.write_bytes(b"simulated events %d" % run)
        backend.put_file(source, lfn, "LOCAL-SE")
        lfns.append(lfn)
    listing = tree.root / "data" / "simtel" / "gamma.list"
    listing.write_text("".join(f"{lfn}\n" for lfn in lfns))
    analysis = Analysis.open(tree.metadata_file)
    assert analysis.set_list_file(Stage.TRAINING_ENERGY, Particle.GAMMA, listing)
    names = [s.name for s in analysis.with_home(backend.home).plan(
        Stage.TRAINING_ENERGY, Particle.GAMMA, "LOCAL-SE")]
    return Workspace(tmp_path, tree.metadata_file, names)


def jobs_by_name(ws: Workspace) -> dict[str, list[int]]:
    return ws.backend().find_jobs(ws.names)


def test_a_submission_killed_inside_the_transaction_is_confirmed_and_each_job_runs_once(
        ws: Workspace) -> None:
    submit = ["jobs", "submit", "--stage", "training-energy"]
    killed = ws.run(*submit, code=-9, child=KILLED_INSIDE_THE_SUBMISSION)
    assert killed.returncode == -9
    created = jobs_by_name(ws)
    assert sorted(created) == sorted(ws.names) and all(len(i) == 1 for i in created.values())
    ids = [i for found in created.values() for i in found]
    assert {s.minor_status for s in ws.backend().status(ids).values()} == {UNCONFIRMED}

    # the state database only knows the submission was under way: the wait says so at once
    started = time.monotonic()
    waited = ws.run("jobs", "wait", code=1)
    assert time.monotonic() - started < 30
    [line] = [line for line in waited.stderr.splitlines() if "not submitted" in line]
    assert line.startswith("2 training-energy job(s) not submitted yet (Sending): ")
    assert all(name in line for name in ws.names)
    assert line.endswith(f"submit them: protopipe-grid jobs submit -m {ws.metadata} "
                         "--stage training-energy")

    again = ws.run(*submit, "--wait", "--status-every", "0.2s")

    assert ("0 submitted, 0 skipped (output exists), 0 already submitted, 2 recovered from an "
            "interrupted run, 2 unconfirmed job(s) confirmed") in again.stdout
    assert jobs_by_name(ws) == created  # the same jobs, no other
    store = ws.store()
    assert {(r.status, r.attempts) for r in store.jobs()} == {(JobStatus.DONE, 1)}
    store.close()
    # no terminal: a status line now and then instead of a progress bar
    lines = [line for line in again.stdout.splitlines() if " 2 job(s): " in line]
    assert len(lines) >= 2, again.stdout
    assert lines[-1].endswith("2 job(s): 2 Done")


def test_a_wait_on_jobs_left_unconfirmed_ends_within_its_limit_and_says_what_to_do(
        ws: Workspace) -> None:
    ws.run("jobs", "submit", "--stage", "training-energy", code=-9,
           child=KILLED_INSIDE_THE_SUBMISSION)
    ids = {name: found[0] for name, found in jobs_by_name(ws).items()}
    store = ws.store()  # as an earlier version left them: adopted, never confirmed
    store.mark_submitted("local", sorted(ids.items()))
    store.close()
    started = time.monotonic()

    waited = ws.run("jobs", "wait", "--stuck-after", "2s", code=1)

    assert 2 < time.monotonic() - started < 30
    [line] = [line for line in waited.stderr.splitlines() if "never confirmed" in line]
    assert line.startswith("2 training-energy job(s) created by an interrupted submission and "
                           "never confirmed (for more than 2 s) (Submitting / Bulk transaction "
                           "confirmation): ")
    assert all(name in line for name in ws.names)
    assert line.endswith(f"confirm them: protopipe-grid jobs submit -m {ws.metadata} "
                         "--stage training-energy")

    fixed = ws.run("jobs", "submit", "--stage", "training-energy", "--wait")

    assert "2 already submitted, 0 recovered from an interrupted run, 2 unconfirmed job(s) " \
        "confirmed" in fixed.stdout
    assert jobs_by_name(ws) == {name: [i] for name, i in ids.items()}
    store = ws.store()
    assert {r.status for r in store.jobs()} == {JobStatus.DONE}
    store.close()


def test_a_wait_on_held_jobs_ends_after_stuck_after(ws: Workspace) -> None:
    """Jobs that stay queued (here: the local queue runner cannot start, its lock is held)."""
    lock = (ws.grid / "runner.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        waited = ws.run("jobs", "submit", "--stage", "training-energy", "--wait",
                        "--stuck-after", "2s", code=1)
        elapsed = time.monotonic() - started
    finally:
        ws.backend().kill([i for found in jobs_by_name(ws).values() for i in found])
        lock.close()
    assert 2 < elapsed < 60
    [line] = [line for line in waited.stderr.splitlines() if "without a change" in line]
    assert line.startswith("2 training-energy job(s) without a change of state for more than "
                           "2 s (Waiting / Pilot Agent Submission): ")
    assert f"look at them (protopipe-grid jobs status -m {ws.metadata})" in line


def test_piped_output_never_splits_a_path_or_an_lfn(ws: Workspace) -> None:
    """Without a terminal (a pipe, a log), tables are as wide as their content and lines are
    never wrapped: every LFN and path stays on one line, for grep and for people."""
    analysis = Analysis.open(ws.metadata).with_home(ws.backend().home)
    specs = analysis.plan(Stage.TRAINING_ENERGY, Particle.GAMMA, "LOCAL-SE")
    wanted = [lfn for spec in specs for lfn in (*spec.input_lfns, spec.output_lfn)]
    assert min(len(spec.output_lfn) for spec in specs) > 100  # wider than a default terminal

    plan = ws.run("jobs", "submit", "--stage", "training-energy", "--dry-run").stdout

    lines = plan.splitlines()
    assert all(any(lfn in line for line in lines) for lfn in wanted), plan
