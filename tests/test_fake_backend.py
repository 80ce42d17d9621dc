"""The fake backend: the contract suite, plus what only the fake offers."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from contract import BackendContract, wait_final, wait_status

from protopipe_grid_interface.backends.fake import FakeBackend
from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.exceptions import BackendError
from protopipe_grid_interface.models import JobSelection, JobSpec, JobStatus
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import collect, submit, track


def fake_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pgi-fake")]


@pytest.fixture
def fake_backend(tmp_path: Path) -> Iterator[FakeBackend]:
    with FakeBackend(tmp_path / "fake") as backend:
        yield backend
    assert fake_threads() == []


class TestFakeBackend(BackendContract):
    @pytest.fixture
    def backend(self, fake_backend: FakeBackend) -> FakeBackend:
        return fake_backend


# --- fake-only behaviour ----------------------------------------------------------------------
class Recorder:
    """An in-process stand-in for a protopipe program: writes ``out.txt``, records each call."""

    def __init__(self, code: int = 0) -> None:
        self.code = code
        self.calls: list[tuple[list[str], Path, str]] = []

    def __call__(self, args: Sequence[str], work: Path) -> int:
        self.calls.append((list(args), work, threading.current_thread().name))
        (work / "out.txt").write_text(" ".join(args))
        return self.code


@pytest.fixture
def spec(fake_backend: FakeBackend, job_spec: Callable[..., JobSpec]) -> Callable[..., JobSpec]:
    """job_spec with one step ``program *args`` and its output under the fake's home."""
    counter = iter(range(10_000))

    def make(program: str, *args: str) -> JobSpec:
        return job_spec(f"fake_{next(counter)}", home=fake_backend.home(),
                        steps=((program, *args),))

    return make


def forbid_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any process started during the test fail (a fake job would end Failed)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fake started a process")
    monkeypatch.setattr("protopipe_grid_interface.backends.fake.subprocess.Popen", refuse)


def test_a_program_runs_in_process_on_a_worker_thread(
        tmp_path: Path, spec: Callable[..., JobSpec], monkeypatch: pytest.MonkeyPatch) -> None:
    program = Recorder()
    forbid_processes(monkeypatch)
    with FakeBackend(tmp_path / "fake", programs={"protopipe-DL2": program}) as backend:
        job = spec("protopipe-DL2", "--outfile", "out.txt")
        [job_id] = backend.submit([job])
        state = wait_final(backend, [job_id])[job_id]
        backend.get_file(job.output_lfn, tmp_path / "got.txt")

    assert state.status == JobStatus.DONE, backend.job_log(job_id)
    [(args, work, thread)] = program.calls
    assert args == ["--outfile", "out.txt"]
    assert work == tmp_path / "fake" / str(job_id) / "work"
    assert thread.startswith("pgi-fake-worker")
    assert (tmp_path / "got.txt").read_text() == "--outfile out.txt"


def test_an_in_process_program_fails_like_a_process(
        tmp_path: Path, spec: Callable[..., JobSpec]) -> None:
    def crash(args: Sequence[str], work: Path) -> int:
        raise RuntimeError("marker-91c2")

    with FakeBackend(tmp_path / "fake", programs={"exit3": Recorder(3), "crash": crash}) as fake:
        ids = fake.submit([spec("exit3"), spec("crash")])
        states = wait_final(fake, ids)
        crash_log = fake.job_log(ids[1])

    assert [(s.status, s.minor_status, s.application_status) for s in states.values()] == [
        (JobStatus.FAILED, "Application Finished With Errors", "exit3 Exited With Status 3"),
        (JobStatus.FAILED, "Application Finished With Errors", "crash Exited With Status 1")]
    assert "RuntimeError: marker-91c2" in crash_log


def test_hold_keeps_jobs_waiting_until_released(
        tmp_path: Path, spec: Callable[..., JobSpec]) -> None:
    with FakeBackend(tmp_path / "fake", programs={"prog": Recorder()}, hold=True) as backend:
        kept, killed, later = backend.submit([spec("prog"), spec("prog"), spec("prog")])
        time.sleep(0.2)
        assert backend.select_jobs(JobSelection(status="Waiting")) == [kept, killed, later]
        assert fake_threads() == []  # nothing was handed to a worker
        backend.kill([killed])

        backend.release([kept, killed])
        first = wait_final(backend, [kept, killed])
        assert backend.status([later])[later].status == JobStatus.WAITING
        backend.release()
        second = wait_final(backend, [later])

    assert {i: s.status for i, s in {**first, **second}.items()} == {
        kept: JobStatus.DONE, killed: JobStatus.KILLED, later: JobStatus.DONE}


def test_max_parallel_bounds_the_jobs_running_at_once(
        tmp_path: Path, spec: Callable[..., JobSpec]) -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def busy(args: Sequence[str], work: Path) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        (work / "out.txt").write_text("x")
        return 0

    with FakeBackend(tmp_path / "fake", programs={"busy": busy}, max_parallel=3) as backend:
        ids = backend.submit([spec("busy") for _ in range(12)])
        states = wait_final(backend, ids)

    assert {s.status for s in states.values()} == {JobStatus.DONE}
    assert most[0] == 3


def test_history_is_the_local_backends(tmp_path: Path, job_spec: Callable[..., JobSpec],
                                       fake_backend: FakeBackend) -> None:
    """Same jobs on both backends: the same statuses, minor and application statuses."""
    local = LocalBackend(tmp_path / "local", payload_env=Path(sys.prefix))
    steps = (("python", "-c", "open('out.txt', 'w').write('x')"),
             ("python", "-c", "raise SystemExit(4)"))
    local_ids, fake_ids = (
        backend.submit([job_spec(f"history_{n}", home=backend.home(), steps=steps[:n])
                        for n in (1, 2)]) for backend in (local, fake_backend))
    wait_final(local, local_ids)
    wait_final(fake_backend, fake_ids)

    expected = [local.db.execute("SELECT status, minor_status, application_status "
                                 "FROM job_history WHERE id = ? ORDER BY rowid", (i,)).fetchall()
                for i in local_ids]
    assert [[entry[:3] for entry in fake_backend.history(i)] for i in fake_ids] == expected
    assert expected[1][-1] == ("Failed", "Application Finished With Errors",
                               "python Exited With Status 4")


def test_close_terminates_running_steps_and_workers(
        tmp_path: Path, spec: Callable[..., JobSpec]) -> None:
    backend = FakeBackend(programs={})
    root = backend.root
    [job_id] = backend.submit([spec(
        "python", "-c", "import os, time; open('pid', 'w').write(str(os.getpid())); "
        "time.sleep(60)")])
    wait_status(backend, job_id, frozenset({JobStatus.RUNNING}))
    pid_file = root / str(job_id) / "work" / "pid"
    while not (pid_file.exists() and pid_file.read_text()):
        time.sleep(0.02)
    pid = int(pid_file.read_text())

    started = time.monotonic()
    backend.close()

    assert time.monotonic() - started < 10
    assert backend.status([job_id])[job_id].status == JobStatus.KILLED
    assert fake_threads() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # terminated and reaped
    assert not root.exists()  # the temporary folder it made itself is gone
    with pytest.raises(BackendError, match="closed"):
        backend.submit([spec("python", "-c", "pass")])
    assert backend.find_jobs([f"fake_{n}" for n in range(3)]) == {"fake_0": [job_id]}


def test_a_workflow_runs_end_to_end_without_a_process(
        tmp_path: Path, spec: Callable[..., JobSpec], monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_processes(monkeypatch)
    store = Store(tmp_path / "state.sqlite")
    with FakeBackend(tmp_path / "fake", programs={"protopipe-DL2": Recorder()}) as backend:
        specs = [spec("protopipe-DL2", "--run", str(n)) for n in range(5)]
        submit.submit(store, backend, specs)
        result = track.wait(store, backend, [s.name for s in specs], poll_seconds=0.01,
                            timeout=30)
        outputs = backend.metadata([s.output_lfn for s in specs])
        report = collect.download(backend, list(outputs.values()), tmp_path / "dl2")
    store.close()

    assert {r.status for r in result.records} == {JobStatus.DONE}
    assert report.failed == {}
    assert sorted(p.read_text() for p in report.fetched) == [f"--run {n}" for n in range(5)]
