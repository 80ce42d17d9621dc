"""The local backend: the contract suite, plus what only the local backend can show."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from contract import BackendContract, wait_final, wait_status, write

from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.checksums import adler32
from protopipe_grid_interface.exceptions import DataError
from protopipe_grid_interface.models import JobSpec, JobStatus
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow.collect import download

#: the venv running the tests: ``python`` steps work in it
PAYLOAD_ENV = Path(sys.prefix)
IN_FLIGHT = frozenset({JobStatus.MATCHED, JobStatus.RUNNING, JobStatus.COMPLETING})


def process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting for its parent counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or the read
        return True


def stop_leftovers(backend: LocalBackend) -> None:
    """Kill every job still active, and any job process a forced state left running."""
    ids = [int(i) for (i,) in backend.db.execute("SELECT id FROM jobs")]
    backend.kill(ids)
    for (pid,) in backend.db.execute("SELECT pid FROM jobs WHERE pid IS NOT NULL"):
        if not process_gone(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture
def local_backend(tmp_path: Path) -> Iterator[LocalBackend]:
    backend = LocalBackend(tmp_path / "grid", payload_env=PAYLOAD_ENV)
    yield backend
    stop_leftovers(backend)


class TestLocalBackend(BackendContract):
    @pytest.fixture
    def backend(self, local_backend: LocalBackend) -> LocalBackend:
        return local_backend


# --- local-only behaviour ---------------------------------------------------------------------
@pytest.fixture
def spec(local_backend: LocalBackend, job_spec: Callable[..., JobSpec]) -> Callable[..., JobSpec]:
    """job_spec with python steps and outputs under the local backend's home."""
    counter = iter(range(10_000))

    def make(*codes: str) -> JobSpec:
        return job_spec(f"local_{next(counter)}", home=local_backend.home(),
                        steps=tuple(("python", "-c", code) for code in codes))

    return make


def test_submit_does_not_leak_a_running_popen(local_backend: LocalBackend,
                                              spec: Callable[..., JobSpec]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        local_backend.submit([spec("pass")])
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def corrupt_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DATA = bytes(range(256)) * 400


def test_corrupt_single_replica_is_reported_failed_by_download(
        local_backend: LocalBackend, tmp_path: Path) -> None:
    lfn = f"{local_backend.home()}/data/DL2/gamma/DL2_gamma_tail_run1.h5"
    remote = local_backend.put_file(write(tmp_path / "up.h5", DATA), lfn, "LOCAL-SE")
    corrupt_one_byte(local_backend.replica_path(lfn, "LOCAL-SE"))
    store = Store(tmp_path / "state.sqlite")
    outdir = tmp_path / "downloads"

    report = download(local_backend, [remote], outdir, store=store, retries=1, backoff=0)

    assert list(report.failed) == [lfn]
    assert "adler32" in report.failed[lfn]
    assert report.fetched == [] and report.present == []
    assert list(outdir.iterdir()) == []  # neither the bad file nor a .part is left behind
    assert store.downloads()[lfn].state == "failed"


@pytest.mark.parametrize("bad_se", [
    "LOCAL-SE",
    "LOCAL-SE2",
])
def test_corrupt_replica_is_refetched_from_the_intact_one(
        local_backend: LocalBackend, tmp_path: Path, bad_se: str) -> None:
    lfn = f"{local_backend.home()}/data/DL2/gamma/DL2_gamma_tail_run2.h5"
    local_backend.put_file(write(tmp_path / "up.h5", DATA), lfn, "LOCAL-SE")
    local_backend.replicate(lfn, "LOCAL-SE2")
    corrupt_one_byte(local_backend.replica_path(lfn, bad_se))
    remote = local_backend.metadata([lfn])[lfn]
    outdir = tmp_path / "downloads"

    report = download(local_backend, [remote], outdir, retries=2, backoff=0)

    assert report.failed == {}
    assert report.fetched == [outdir / Path(lfn).name]
    assert report.fetched[0].read_bytes() == DATA


def test_replicate_refuses_a_corrupt_source(local_backend: LocalBackend,
                                            tmp_path: Path) -> None:
    lfn = f"{local_backend.home()}/data/x.h5"
    remote = local_backend.put_file(write(tmp_path / "up.h5", DATA), lfn, "LOCAL-SE")
    corrupt_one_byte(local_backend.replica_path(lfn, "LOCAL-SE"))

    with pytest.raises(DataError, match="corrupt"):
        local_backend.replicate(lfn, "LOCAL-SE2")

    assert local_backend.metadata([lfn])[lfn] == remote
    assert not local_backend.replica_path(lfn, "LOCAL-SE2").exists()


def test_max_parallel_is_respected(tmp_path: Path, job_spec: Callable[..., JobSpec]) -> None:
    backend = LocalBackend(tmp_path / "grid", payload_env=PAYLOAD_ENV, max_parallel=1)
    code = ("import time; start = time.time(); time.sleep(0.5); "
            "open('out.txt', 'w').write(f'{start!r} {time.time()!r}')")
    specs = [job_spec(f"par_{n}", home=backend.home(), steps=(("python", "-c", code),))
             for n in range(3)]
    try:
        ids = [backend.submit([s])[0] for s in specs]  # three submits: three queue runners
        busy_seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = backend.status(ids)
            busy_seen.append(sum(s.status in IN_FLIGHT for s in states.values()))
            if all(s.status.is_final for s in states.values()):
                break
            time.sleep(0.02)
        final = wait_final(backend, ids, timeout=5)
    finally:
        stop_leftovers(backend)

    assert all(s.status == JobStatus.DONE for s in final.values())
    assert max(busy_seen) == 1, busy_seen
    # the jobs' own clocks: their steps ran one after the other
    intervals = []
    for s in specs:
        backend.get_file(s.output_lfn, tmp_path / "o.txt")
        start, end = map(float, (tmp_path / "o.txt").read_text().split())
        intervals.append((start, end))
    intervals.sort()
    assert all(earlier[1] <= later[0]
               for earlier, later in zip(intervals, intervals[1:], strict=False)), intervals


def test_kill_terminates_the_job_processes(local_backend: LocalBackend,
                                           spec: Callable[..., JobSpec]) -> None:
    [job_id] = local_backend.submit([spec(
        "import os, time; open('step.pid', 'w').write(str(os.getpid())); time.sleep(60)")])
    wait_status(local_backend, job_id, frozenset({JobStatus.RUNNING}))
    pid_file = local_backend.job_dir(job_id) / "work" / "step.pid"
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    step_pid = int(pid_file.read_text())

    local_backend.kill([job_id])

    deadline = time.monotonic() + 10
    while not process_gone(step_pid):
        assert time.monotonic() < deadline, f"step process {step_pid} survived the kill"
        time.sleep(0.05)
    assert local_backend.status([job_id])[job_id].status == JobStatus.KILLED


def test_dead_job_wrapper_is_set_failed_as_stalled(local_backend: LocalBackend,
                                                   spec: Callable[..., JobSpec]) -> None:
    [job_id] = local_backend.submit([spec("import time; time.sleep(60)")])
    wait_status(local_backend, job_id, frozenset({JobStatus.RUNNING}))
    [(pid,)] = local_backend.db.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,))

    os.killpg(pid, signal.SIGKILL)  # the wrapper dies without reporting anything
    state = wait_final(local_backend, [job_id], timeout=30)[job_id]

    assert state.status == JobStatus.FAILED
    assert "stalled" in state.minor_status.lower()


def test_job_forced_to_failed_does_not_register_its_output(
        local_backend: LocalBackend, spec: Callable[..., JobSpec]) -> None:
    job = spec("import time; time.sleep(1); open('out.txt', 'w').write('x')")
    [job_id] = local_backend.submit([job])
    wait_status(local_backend, job_id, frozenset({JobStatus.RUNNING}))

    local_backend.set_failed([job_id], "forced by test")
    time.sleep(3)

    assert local_backend.metadata([job.output_lfn]) == {}


def test_output_checksum_matches_the_bytes_the_job_wrote(local_backend: LocalBackend,
                                                         spec: Callable[..., JobSpec],
                                                         tmp_path: Path) -> None:
    job = spec("open('out.txt', 'wb').write(bytes(range(256)) * 97)")
    [job_id] = local_backend.submit([job])
    assert wait_final(local_backend, [job_id])[job_id].status == JobStatus.DONE

    stored = local_backend.replica_path(job.output_lfn, "LOCAL-SE")
    expected = write(tmp_path / "expected", bytes(range(256)) * 97)
    assert stored.read_bytes() == expected.read_bytes()
    assert local_backend.metadata([job.output_lfn])[job.output_lfn].checksum == adler32(expected)
