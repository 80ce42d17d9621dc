"""The behaviour every backend must show; each backend's test module subclasses this suite.

``BackendContract`` has no ``Test`` prefix, so pytest does not collect it on its own. A backend's
test module does::

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self, tmp_path):
            yield MyBackend(...)

and may override ``python_step`` when ``python`` is not what runs code in its payload
environment. Everything a test creates lives under a fresh LFN folder (``lfn_dir``) and uses
fresh job names, so the suite can run against a persistent backend (a real DIRAC) as well;
files are removed again at teardown.

Job tests run real jobs: steps are ``python -c ...`` commands run in the backend's payload
environment. Waits are bounded (``wait_final``), so a broken backend fails, never hangs.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from protopipe_grid_interface.backends.base import Backend
from protopipe_grid_interface.checksums import adler32
from protopipe_grid_interface.exceptions import BackendError, PipelineError
from protopipe_grid_interface.models import JobSpec, JobState, JobStatus, Particle, Stage
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow.submit import submit

POLL_SECONDS = 0.1
#: statuses in which a job's steps may be executing
STARTED = frozenset({JobStatus.RUNNING, JobStatus.COMPLETING})


def in_ci() -> bool:
    """True under CI (``CI`` set to anything but empty, 0, false or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """What a test does when something it needs is not here: under CI it fails, loudly (CI
    installs everything, so it is a bug), elsewhere it is skipped with the reason."""
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def wait_final(backend: Backend, ids: Sequence[int], timeout: float = 60.0
               ) -> dict[int, JobState]:
    """Poll ``backend.status`` until every job is final; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        states = backend.status(ids)
        if set(states) == set(ids) and all(s.status.is_final for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not final after {timeout} s: {states}")
        time.sleep(POLL_SECONDS)


def wait_status(backend: Backend, job_id: int, wanted: frozenset[JobStatus] | set[JobStatus],
                timeout: float = 30.0) -> JobState:
    """Poll until the job is in one of ``wanted``; fail if it goes final elsewhere or times out."""
    deadline = time.monotonic() + timeout
    while True:
        state = backend.status([job_id]).get(job_id)
        if state is not None and state.status in wanted:
            return state
        if state is not None and state.status.is_final:
            raise AssertionError(f"job {job_id} ended {state} while waiting for {set(wanted)}; "
                                 f"log:\n{backend.job_log(job_id)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not in {set(wanted)} after {timeout} s: {state}")
        time.sleep(POLL_SECONDS)


def interrupt_once(monkeypatch: pytest.MonkeyPatch, owner: object, method: str) -> None:
    """Make ``owner.method`` raise KeyboardInterrupt, doing nothing, on its next call (as a
    kill there would); later calls reach the real method."""
    real = getattr(owner, method)
    calls: list[int] = []

    def wrapper(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, method, wrapper)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class BackendContract:
    """Contract tests; subclasses provide the ``backend`` fixture."""

    # --- fixtures subclasses provide or may override --------------------------------------------
    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a backend test class must provide the `backend` fixture")

    def python_step(self, code: str) -> tuple[str, ...]:
        """A step running Python ``code`` in the backend's payload environment."""
        return ("python", "-c", code)

    @pytest.fixture
    def se(self, backend: Backend) -> str:
        return backend.storage_elements()[0]

    @pytest.fixture
    def lfn_dir(self, backend: Backend) -> Iterator[str]:
        """A fresh catalog folder for this test; the files the suite puts there go at teardown."""
        base = f"{backend.home()}/pgi-contract/{uuid.uuid4().hex[:12]}"
        yield base
        top = backend.list_directory(base)
        nested = [f for sub in ("sub", "d", "d/sub", "d-x", "out")
                  for f in backend.list_directory(f"{base}/{sub}")]
        backend.remove([f.lfn for f in top + nested])

    @pytest.fixture
    def make_spec(self, backend: Backend, lfn_dir: str, se: str) -> Callable[..., JobSpec]:
        """``make_spec("code", "code2", input_lfns=..., input_data=...)``: one step per code.

        Each spec gets a fresh name and writes ``out.txt`` to ``<lfn_dir>/out/<name>.txt``.
        """
        token = uuid.uuid4().hex[:8]
        counter = itertools.count()

        def make(*codes: str, input_lfns: Sequence[str] = (), input_data: Sequence[str] = (),
                 name: str | None = None) -> JobSpec:
            name = name or f"pgi_contract_{token}_{next(counter)}"
            return JobSpec(
                name=name,
                analysis="contract",
                stage=Stage.DL2,
                particle=Particle.GAMMA,
                input_lfns=tuple(input_lfns),
                steps=tuple(self.python_step(code) for code in codes),
                output_file="out.txt",
                output_lfn=f"{lfn_dir}/out/{name}.txt",
                output_se=se,
                input_data=tuple(input_data),
                cpu_time=600,
            )

        return make

    # --- files ----------------------------------------------------------------------------------
    def test_put_file_then_metadata(self, backend: Backend, tmp_path: Path, lfn_dir: str,
                                    se: str) -> None:
        local = write(tmp_path / "a.bin", bytes(range(256)) * 41 + b"tail")
        lfn = f"{lfn_dir}/a.bin"

        returned = backend.put_file(local, lfn, se)
        found = backend.metadata([lfn])

        assert returned.lfn == lfn
        assert returned.size == local.stat().st_size == 256 * 41 + 4
        assert returned.checksum == adler32(local)
        assert returned.replicas == (se,)
        assert found == {lfn: returned}

    def test_put_of_registered_lfn_raises_and_keeps_the_first(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        lfn = f"{lfn_dir}/a.txt"
        first = backend.put_file(write(tmp_path / "one", b"first version"), lfn, se)

        with pytest.raises(BackendError):
            backend.put_file(write(tmp_path / "two", b"second, different"), lfn, se)

        assert backend.metadata([lfn])[lfn].checksum == first.checksum
        backend.get_file(lfn, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == b"first version"

    def test_put_to_unknown_storage_element_raises(self, backend: Backend, tmp_path: Path,
                                                   lfn_dir: str) -> None:
        lfn = f"{lfn_dir}/a.txt"
        with pytest.raises(BackendError):
            backend.put_file(write(tmp_path / "a", b"x"), lfn, "NO-SUCH-SE")
        assert backend.metadata([lfn]) == {}

    def test_metadata_leaves_out_missing_lfns(self, backend: Backend, tmp_path: Path,
                                              lfn_dir: str, se: str) -> None:
        present = f"{lfn_dir}/present.txt"
        backend.put_file(write(tmp_path / "p", b"here"), present, se)

        found = backend.metadata([f"{lfn_dir}/missing.txt", present, f"{lfn_dir}/nope/x"])

        assert list(found) == [present]

    def test_list_directory_gives_direct_children_only(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        src = write(tmp_path / "f", b"content")
        wanted = [f"{lfn_dir}/d/a.txt", f"{lfn_dir}/d/b.txt"]
        others = [f"{lfn_dir}/d/sub/c.txt",  # grandchild
                  f"{lfn_dir}/d-x/e.txt",    # sibling folder sharing the prefix
                  f"{lfn_dir}/dx.txt",       # sibling file sharing the prefix
                  f"{lfn_dir}/top.txt"]      # parent's file
        for lfn in wanted + others:
            backend.put_file(src, lfn, se)

        listed = backend.list_directory(f"{lfn_dir}/d")

        assert sorted(f.lfn for f in listed) == wanted
        assert all(f.size == 7 and f.checksum == adler32(src) for f in listed)
        assert sorted(f.lfn for f in backend.list_directory(f"{lfn_dir}/d/")) == wanted
        assert backend.list_directory(f"{lfn_dir}/no-such-folder") == []

    def test_get_file_round_trip(self, backend: Backend, tmp_path: Path, lfn_dir: str,
                                 se: str) -> None:
        data = bytes(reversed(range(256))) * 1000
        lfn = f"{lfn_dir}/round.bin"
        backend.put_file(write(tmp_path / "up.bin", data), lfn, se)

        backend.get_file(lfn, tmp_path / "down.bin")

        assert (tmp_path / "down.bin").read_bytes() == data

    def test_get_file_of_missing_lfn_raises(self, backend: Backend, tmp_path: Path,
                                            lfn_dir: str) -> None:
        with pytest.raises(PipelineError):
            backend.get_file(f"{lfn_dir}/missing.txt", tmp_path / "x")
        assert not (tmp_path / "x").exists()

    def test_replicate_adds_a_replica_and_is_idempotent(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        others = [s for s in backend.storage_elements() if s != se]
        if not others:
            unavailable("the backend has a single storage element")
        lfn = f"{lfn_dir}/r.txt"
        put = backend.put_file(write(tmp_path / "r", b"replicate me"), lfn, se)

        backend.replicate(lfn, others[0])
        after_one = backend.metadata([lfn])[lfn]
        backend.replicate(lfn, others[0])
        after_two = backend.metadata([lfn])[lfn]

        assert sorted(after_one.replicas) == sorted([se, others[0]])
        assert after_two == after_one
        assert (after_one.size, after_one.checksum) == (put.size, put.checksum)

    def test_remove_removes_file_and_catalog_entry(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        gone, kept = f"{lfn_dir}/gone.txt", f"{lfn_dir}/kept.txt"
        for lfn in (gone, kept):
            backend.put_file(write(tmp_path / "f", lfn.encode()), lfn, se)

        backend.remove([gone])

        assert list(backend.metadata([gone, kept])) == [kept]
        assert [f.lfn for f in backend.list_directory(lfn_dir)] == [kept]
        with pytest.raises(PipelineError):
            backend.get_file(gone, tmp_path / "back")
        backend.remove([gone])  # removing a missing file is not an error
        backend.put_file(write(tmp_path / "again", b"new"), gone, se)  # the name is free again
        assert backend.metadata([gone])[gone].size == 3

    # --- user metadata (DIRAC's keys are global: each key here keeps its level and type) -------
    def put_all(self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str,
                names: Sequence[str]) -> list[str]:
        """Put a small file at each ``lfn_dir/name``; return the LFNs."""
        lfns = [f"{lfn_dir}/{name}" for name in names]
        for lfn in lfns:
            backend.put_file(write(tmp_path / "f", lfn.encode()), lfn, se)
        return lfns

    def test_metadata_of_directories_and_files_found_by_both(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        a, b, c, e = self.put_all(backend, tmp_path, lfn_dir, se,
                                  ["d/a.txt", "d/b.txt", "d/sub/c.txt", "d-x/e.txt"])
        backend.set_metadata(f"{lfn_dir}/d", {"pgi_ct_site": "north", "pgi_ct_level": 2})
        backend.set_metadata(f"{lfn_dir}/d-x/", {"pgi_ct_site": "south", "pgi_ct_level": 2})
        for lfn, run, particle in ((a, 7, "gamma"), (b, 8, "gamma"), (c, 7, "proton"),
                                   (e, 7, "gamma")):
            backend.set_metadata(lfn, {"pgi_ct_run": run, "pgi_ct_particle": particle})

        assert backend.find_files(lfn_dir, {"pgi_ct_site": "north", "pgi_ct_run": 7}) == [a, c]
        assert backend.find_files(lfn_dir, {"pgi_ct_level": 2, "pgi_ct_particle": "gamma"}
                                  ) == sorted([a, b, e])
        assert backend.find_files(lfn_dir, {"pgi_ct_site": "west"}) == []
        assert backend.find_files(lfn_dir, {}) == sorted([a, b, c, e])

    def test_metadata_of_a_directory_is_inherited_below_it(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        [c] = self.put_all(backend, tmp_path, lfn_dir, se, ["d/sub/c.txt"])
        backend.set_metadata(f"{lfn_dir}/d", {"pgi_ct_site": "north", "pgi_ct_level": 2})
        backend.set_metadata(c, {"pgi_ct_run": 7, "pgi_ct_energy": 2.5})

        file_meta = ours(backend.get_metadata(c))
        assert file_meta == {"pgi_ct_site": "north", "pgi_ct_level": 2, "pgi_ct_run": 7,
                             "pgi_ct_energy": 2.5}
        assert [type(file_meta[k]) for k in ("pgi_ct_level", "pgi_ct_energy")] == [int, float]
        assert ours(backend.get_metadata(f"{lfn_dir}/d/sub")) == {"pgi_ct_site": "north",
                                                                  "pgi_ct_level": 2}
        assert ours(backend.get_metadata(lfn_dir)) == {}
        with pytest.raises(BackendError, match="pgi_ct_level"):  # set once per branch
            backend.set_metadata(f"{lfn_dir}/d/sub", {"pgi_ct_level": 3})

    def test_metadata_query_values_are_converted_to_the_field_type(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        [a] = self.put_all(backend, tmp_path, lfn_dir, se, ["d/a.txt"])
        backend.set_metadata(f"{lfn_dir}/d", {"pgi_ct_level": 2})
        backend.set_metadata(a, {"pgi_ct_run": 7, "pgi_ct_energy": 2.5})

        for query in ({"pgi_ct_level": "2"}, {"pgi_ct_run": "7"}, {"pgi_ct_energy": "2.5"},
                      {"pgi_ct_energy": 2.5, "pgi_ct_level": 2}):
            assert backend.find_files(lfn_dir, query) == [a], query
        assert backend.find_files(lfn_dir, {"pgi_ct_run": "8"}) == []
        with pytest.raises(BackendError, match="pgi_ct_run"):
            backend.find_files(lfn_dir, {"pgi_ct_run": "seven"})

    def test_metadata_key_of_the_other_level_or_type_raises(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        [e] = self.put_all(backend, tmp_path, lfn_dir, se, ["d-x/e.txt"])
        backend.set_metadata(f"{lfn_dir}/d-x", {"pgi_ct_level": 2, "pgi_ct_site": "south"})
        backend.set_metadata(e, {"pgi_ct_run": 7, "pgi_ct_energy": 2.5})

        with pytest.raises(BackendError, match=f"{e}.*pgi_ct_site"):
            backend.set_metadata(e, {"pgi_ct_site": "north"})
        with pytest.raises(BackendError, match=f"{lfn_dir}/d-x.*pgi_ct_run"):
            backend.set_metadata(f"{lfn_dir}/d-x", {"pgi_ct_run": 8})
        with pytest.raises(BackendError, match=f"{lfn_dir}/d-x.*pgi_ct_level"):
            backend.set_metadata(f"{lfn_dir}/d-x", {"pgi_ct_level": "two"})
        with pytest.raises(BackendError, match=f"{e}.*pgi_ct_energy"):
            backend.set_metadata(e, {"pgi_ct_energy": "high"})
        assert ours(backend.get_metadata(e)) == {"pgi_ct_level": 2, "pgi_ct_site": "south",
                                                 "pgi_ct_run": 7, "pgi_ct_energy": 2.5}

    def test_metadata_query_of_an_unknown_key_raises(self, backend: Backend, tmp_path: Path,
                                                     lfn_dir: str, se: str) -> None:
        self.put_all(backend, tmp_path, lfn_dir, se, ["d/a.txt"])
        with pytest.raises(BackendError, match="pgi_ct_never_declared"):
            backend.find_files(lfn_dir, {"pgi_ct_never_declared": "x"})

    def test_metadata_found_below_the_search_path_only(
            self, backend: Backend, tmp_path: Path, lfn_dir: str, se: str) -> None:
        _, a, c, _ = self.put_all(backend, tmp_path, lfn_dir, se,
                                  ["top.txt", "d/a.txt", "d/sub/c.txt", "d-x/e.txt"])
        backend.set_metadata(lfn_dir, {"pgi_ct_level": 2})

        assert backend.find_files(f"{lfn_dir}/d", {"pgi_ct_level": 2}) == [a, c]
        assert backend.find_files(f"{lfn_dir}/d/sub/", {"pgi_ct_level": "2"}) == [c]
        assert backend.find_files(f"{lfn_dir}/no-such", {"pgi_ct_level": 2}) == []

    def test_metadata_of_a_path_not_in_the_catalog_raises(self, backend: Backend,
                                                          lfn_dir: str) -> None:
        with pytest.raises(BackendError, match=f"{lfn_dir}/nope.*catalog"):
            backend.set_metadata(f"{lfn_dir}/nope", {"pgi_ct_level": 2})
        with pytest.raises(BackendError, match=f"{lfn_dir}/nope.*catalog"):
            backend.get_metadata(f"{lfn_dir}/nope")

    def test_metadata_of_a_file_goes_with_it(self, backend: Backend, tmp_path: Path,
                                             lfn_dir: str, se: str) -> None:
        [a] = self.put_all(backend, tmp_path, lfn_dir, se, ["d/a.txt"])
        backend.set_metadata(a, {"pgi_ct_run": 7})
        backend.remove([a])
        self.put_all(backend, tmp_path, lfn_dir, se, ["d/a.txt"])

        assert ours(backend.get_metadata(a)) == {}
        assert backend.find_files(lfn_dir, {"pgi_ct_run": 7}) == []

    # --- jobs -----------------------------------------------------------------------------------
    def test_submit_returns_one_distinct_id_per_spec_in_order(
            self, backend: Backend, make_spec: Callable[..., JobSpec]) -> None:
        specs = [make_spec("pass") for _ in range(4)]

        ids = backend.submit(specs)

        assert len(ids) == 4 and len(set(ids)) == 4
        found = backend.find_jobs([s.name for s in specs])
        assert [found[s.name] for s in specs] == [[i] for i in ids]
        assert backend.submit([]) == []

    def test_status_of_many_jobs_in_one_call(self, backend: Backend,
                                             make_spec: Callable[..., JobSpec]) -> None:
        ids = backend.submit([make_spec("pass") for _ in range(3)])
        unknown = max(ids) + 10_000_000

        states = backend.status([*ids, unknown])

        assert set(states) == set(ids)
        assert all(states[i].backend_id == i for i in ids)
        assert all(isinstance(states[i].status, JobStatus) for i in ids)
        assert all(states[i].status not in (JobStatus.PLANNED, JobStatus.SUBMITTING)
                   for i in ids)

    def test_job_stages_input_runs_steps_and_registers_output(
            self, backend: Backend, make_spec: Callable[..., JobSpec], tmp_path: Path,
            lfn_dir: str, se: str) -> None:
        input_lfn = f"{lfn_dir}/sub/input_run7.txt"
        backend.put_file(write(tmp_path / "in.txt", b"simulated events\n"), input_lfn, se)
        spec = make_spec(
            "open('stage1.txt', 'w').write(open('input_run7.txt').read().upper())",
            "open('out.txt', 'w').write(open('stage1.txt').read() + 'merged\\n')",
            input_lfns=[input_lfn],
        )
        expected = write(tmp_path / "expected.txt", b"SIMULATED EVENTS\nmerged\n")

        [job_id] = backend.submit([spec])
        state = wait_final(backend, [job_id])[job_id]

        assert state.status == JobStatus.DONE, backend.job_log(job_id)
        assert state.minor_status == "Execution Complete"
        output = backend.metadata([spec.output_lfn])[spec.output_lfn]
        assert output.size == expected.stat().st_size
        assert output.checksum == adler32(expected)
        assert output.replicas == (se,)
        backend.get_file(spec.output_lfn, tmp_path / "got.txt")
        assert (tmp_path / "got.txt").read_bytes() == expected.read_bytes()

    def test_failing_step_ends_failed_with_dirac_statuses_and_log(
            self, backend: Backend, make_spec: Callable[..., JobSpec]) -> None:
        spec = make_spec("print('marker-7f3a: about to fail'); raise SystemExit(3)",
                         "open('out.txt', 'w').write('must not run')")

        [job_id] = backend.submit([spec])
        state = wait_final(backend, [job_id])[job_id]

        assert state.status == JobStatus.FAILED
        assert state.minor_status == "Application Finished With Errors"
        assert "Exited With Status 3" in state.application_status
        assert "marker-7f3a: about to fail" in backend.job_log(job_id)
        assert backend.metadata([spec.output_lfn]) == {}

    def test_job_log_of_unknown_job_raises(self, backend: Backend,
                                           make_spec: Callable[..., JobSpec]) -> None:
        [job_id] = backend.submit([make_spec("pass")])
        with pytest.raises(BackendError):
            backend.job_log(job_id + 10_000_000)

    def test_find_jobs_by_name(self, backend: Backend,
                               make_spec: Callable[..., JobSpec]) -> None:
        first, second = make_spec("pass"), make_spec("pass")
        ids = backend.submit([first, second])
        again = backend.submit([first])  # same name twice: both are listed, oldest first

        found = backend.find_jobs([first.name, second.name, first.name + "_no_such_job"])

        assert found == {first.name: [ids[0], again[0]], second.name: [ids[1]]}

    def test_kill_running_job_ends_killed(self, backend: Backend,
                                          make_spec: Callable[..., JobSpec]) -> None:
        spec = make_spec("import time; time.sleep(60)", "open('out.txt', 'w').write('x')")
        [job_id] = backend.submit([spec])
        wait_status(backend, job_id, STARTED)

        started = time.monotonic()
        backend.kill([job_id])
        state = wait_final(backend, [job_id], timeout=30)[job_id]

        assert state.status == JobStatus.KILLED
        assert time.monotonic() - started < 30
        time.sleep(1.0)  # a killed job must not come back to life or upload anything
        assert backend.status([job_id])[job_id].status == JobStatus.KILLED
        assert backend.metadata([spec.output_lfn]) == {}

    def test_kill_leaves_final_jobs_alone(self, backend: Backend,
                                          make_spec: Callable[..., JobSpec]) -> None:
        [job_id] = backend.submit([make_spec("raise SystemExit(3)")])
        before = wait_final(backend, [job_id])[job_id]
        assert before.status == JobStatus.FAILED

        backend.kill([job_id])

        assert backend.status([job_id])[job_id] == before

    def test_delete_ends_running_and_final_jobs_deleted(
            self, backend: Backend, make_spec: Callable[..., JobSpec]) -> None:
        running = make_spec("import time; time.sleep(60)", "open('out.txt', 'w').write('x')")
        failed = make_spec("raise SystemExit(3)")
        [failed_id] = backend.submit([failed])
        assert wait_final(backend, [failed_id])[failed_id].status == JobStatus.FAILED
        [running_id] = backend.submit([running])
        wait_status(backend, running_id, STARTED)

        backend.delete([running_id, failed_id])

        states = wait_final(backend, [running_id, failed_id], timeout=30)
        assert {i: s.status for i, s in states.items()} == {
            running_id: JobStatus.DELETED, failed_id: JobStatus.DELETED}
        time.sleep(1.0)  # a deleted job must not come back to life or upload anything
        assert backend.status([running_id])[running_id].status == JobStatus.DELETED
        assert backend.metadata([running.output_lfn]) == {}

    def test_job_input_data_lists_input_lfns_then_input_data(
            self, backend: Backend, make_spec: Callable[..., JobSpec], tmp_path: Path,
            lfn_dir: str, se: str) -> None:
        lfns = [f"{lfn_dir}/sub/in_{n}.txt" for n in range(3)]
        for lfn in lfns:
            backend.put_file(write(tmp_path / "f", lfn.encode()), lfn, se)
        spec = make_spec("open('out.txt', 'w').write('x')", input_lfns=lfns[:2],
                         input_data=lfns[2:])

        [job_id] = backend.submit([spec])

        assert backend.job_input_data(job_id) == lfns

    def test_reschedule_of_failed_job_runs_it_again(
            self, backend: Backend, make_spec: Callable[..., JobSpec]) -> None:
        spec = make_spec("import time; print(f'started-at={time.time()!r}'); raise SystemExit(3)")
        [job_id] = backend.submit([spec])
        assert wait_final(backend, [job_id])[job_id].status == JobStatus.FAILED
        first = started_at(backend.job_log(job_id))

        backend.reschedule([job_id])
        right_after = backend.status([job_id])[job_id]
        state = wait_final(backend, [job_id])[job_id]

        assert not right_after.status.is_final
        assert state.status == JobStatus.FAILED
        assert started_at(backend.job_log(job_id)) > first
        assert backend.find_jobs([spec.name]) == {spec.name: [job_id]}  # same id, no new job

    def test_set_failed_on_waiting_or_running_jobs(
            self, backend: Backend, make_spec: Callable[..., JobSpec]) -> None:
        sleeper = "import time; time.sleep(1.5); open('out.txt', 'w').write('x')"
        early, late = backend.submit([make_spec(sleeper), make_spec(sleeper)])
        backend.set_failed([early], "forced by test")  # still waiting (or just matched)
        assert backend.status([early])[early].status == JobStatus.FAILED

        wait_status(backend, late, STARTED)
        backend.set_failed([late], "forced by test")
        assert backend.status([late])[late].status == JobStatus.FAILED

        time.sleep(2.5)  # the steps would have finished by now: nothing may flip them back
        states = backend.status([early, late])
        assert [states[early].status, states[late].status] == [JobStatus.FAILED] * 2

    @pytest.mark.parametrize("where", ["before the backend call", "inside the submission",
                                       "before the ids are recorded"])
    def test_a_submission_interrupted_anywhere_then_recovered_runs_each_job_once(
            self, backend: Backend, make_spec: Callable[..., JobSpec], tmp_path: Path,
            where: str) -> None:
        """A submission interrupted as a kill would: before the backend call, inside the
        backend's submission (DIRAC's bulk transaction: jobs created, not confirmed), or
        before the state database has the ids. The next submission recovers: each job exists
        once in the backend's own listing by name, and runs to Done."""
        specs = [make_spec("open('out.txt', 'w').write('x')") for _ in range(2)]
        names = [s.name for s in specs]
        owner, method = {"before the backend call": (backend, "submit"),
                         "inside the submission": (backend, "confirm"),
                         "before the ids are recorded": (Store, "mark_submitted")}[where]
        store = Store(tmp_path / "state.sqlite")
        with pytest.MonkeyPatch.context() as patch:
            interrupt_once(patch, owner, method)
            with pytest.raises(KeyboardInterrupt):
                submit(store, backend, specs)

        report = submit(store, backend, specs)

        records = store.jobs(names=names)
        ids = [r.backend_id for r in records if r.backend_id is not None]
        states = wait_final(backend, ids)
        assert backend.find_jobs(names) == {r.name: [r.backend_id] for r in records}
        assert {s.status for s in states.values()} == {JobStatus.DONE}
        assert [r.attempts for r in records] == [1, 1]
        assert (len(report.submitted), report.recovered, report.confirmed) == {
            "before the backend call": (2, 0, 0), "inside the submission": (0, 2, 2),
            "before the ids are recorded": (0, 2, 0)}[where]
        # confirming again, or confirming final and unknown jobs, changes nothing
        backend.confirm([*ids, max(ids) + 10_000_000])
        assert backend.status(ids) == states
        store.close()

    def test_set_failed_on_a_done_job_raises(self, backend: Backend,
                                             make_spec: Callable[..., JobSpec]) -> None:
        [job_id] = backend.submit([make_spec("open('out.txt', 'w').write('x')")])
        assert wait_final(backend, [job_id])[job_id].status == JobStatus.DONE

        with pytest.raises(BackendError):
            backend.set_failed([job_id], "too late")

        assert backend.status([job_id])[job_id].status == JobStatus.DONE


def ours(metadata: dict[str, Any]) -> dict[str, Any]:
    """The contract's keys of ``metadata`` (a persistent catalog may hold others' keys)."""
    return {k: v for k, v in metadata.items() if k.startswith("pgi_ct_")}


def started_at(log: str) -> float:
    """The ``started-at=`` stamp a test job printed."""
    found = re.findall(r"started-at=([0-9.]+)", log)
    assert len(found) == 1, f"expected one started-at line in the job log:\n{log}"
    return float(found[0])


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, method: str
                ) -> list[tuple[Any, ...]]:
    """Replace ``owner.method`` by a wrapper recording the positional arguments of each call."""
    real = getattr(owner, method)
    calls: list[tuple[Any, ...]] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, method, wrapper)
    return calls
