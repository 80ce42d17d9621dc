"""Downloads and merges: verified, resumable, never a half-written file."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tables

from protopipe_grid_interface.backends import local as local_backend_module
from protopipe_grid_interface.backends.dirac import DiracBackend, Environment
from protopipe_grid_interface.backends.fake import FakeBackend
from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.checksums import adler32
from protopipe_grid_interface.exceptions import DataError
from protopipe_grid_interface.models import JobSpec, JobStatus, Particle, RemoteFile
from protopipe_grid_interface.models import Stage as StageEnum
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import collect, track

BIN = Path(sys.executable).parent


def make_training_file(path: Path, rows: int, showers: int, reuse: int = 10,
                       dtype: type = np.float32) -> Path:
    """A protopipe-like TRAINING file: one table per camera, protopipe's root attributes."""
    with tables.open_file(path, "w") as h5:
        for camera in ("LSTCam", "NectarCam"):
            data = np.zeros(rows, dtype=[("obs_id", np.int16), ("event_id", np.int64),
                                         ("hillas_width", dtype)])
            data["event_id"] = np.arange(rows)
            h5.create_table("/", camera, obj=data)
        h5.root._v_attrs.status = "complete"
        h5.root._v_attrs.num_showers = showers
        h5.root._v_attrs.shower_reuse = reuse
    return path


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "grid", payload_env=Path(sys.prefix))


def test_merge_sums_rows_and_showers(tmp_path: Path) -> None:
    inputs = [make_training_file(tmp_path / f"in{i}.h5", rows=10 * (i + 1), showers=1000 * i)
              for i in range(4)]
    result = collect.merge(inputs, tmp_path / "out.h5")
    merged, showers = result.files, result.showers
    assert (merged, showers) == (4, 6000)
    with tables.open_file(tmp_path / "out.h5") as h5:
        assert h5.root.LSTCam.nrows == 100
        assert h5.root.NectarCam.nrows == 100
        assert h5.root._v_attrs.num_showers == 6000


def test_merge_refuses_mismatched_schema_naming_the_file(tmp_path: Path) -> None:
    good = make_training_file(tmp_path / "good.h5", 5, 100)
    bad = make_training_file(tmp_path / "bad.h5", 5, 100, dtype=np.float64)
    with pytest.raises(DataError, match="bad.h5"):
        collect.merge([good, bad], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    assert not (tmp_path / "out.h5.part").exists()


def test_merge_skips_incomplete_and_corrupt_inputs(tmp_path: Path) -> None:
    good = make_training_file(tmp_path / "good.h5", 5, 100)
    crashed = make_training_file(tmp_path / "crashed.h5", 5, 100)
    with tables.open_file(crashed, "a") as h5:
        h5.root._v_attrs.status = "incomplete"
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not hdf5 at all")
    result = collect.merge([good, crashed, corrupt], tmp_path / "out.h5")
    assert (result.files, result.showers) == (1, 100)
    assert [note.split(":")[0] for note in result.notes] == [
        f"skipping {crashed}", f"skipping {corrupt}"]


def test_merge_refuses_to_overwrite(tmp_path: Path) -> None:
    good = make_training_file(tmp_path / "good.h5", 5, 100)
    (tmp_path / "out.h5").write_text("precious")
    with pytest.raises(DataError, match="already exists"):
        collect.merge([good], tmp_path / "out.h5")
    assert (tmp_path / "out.h5").read_text() == "precious"


def test_killed_merge_leaves_no_file_that_looks_complete(tmp_path: Path) -> None:
    inputs = [make_training_file(tmp_path / f"in{i}.h5", rows=200_000, showers=1)
              for i in range(12)]
    script = ("import sys; from pathlib import Path; "
              "from protopipe_grid_interface.workflow.collect import merge; "
              "merge([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]))")
    out = tmp_path / "out.h5"
    child = subprocess.Popen([sys.executable, "-c", script, str(out), *map(str, inputs)])
    deadline = time.monotonic() + 30
    while not (tmp_path / "out.h5.part").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not out.exists()
    collect.merge(inputs, out, overwrite=True)  # the same merge again succeeds
    with tables.open_file(out) as h5:
        assert h5.root.LSTCam.nrows == 12 * 200_000


def test_download_verifies_and_skips_what_is_present(backend: LocalBackend,
                                                     tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(5):
        (source / f"f{i}.h5").write_bytes(os.urandom(10_000 + i))
        backend.put_file(source / f"f{i}.h5", f"/vo/user/x/out/f{i}.h5", "LOCAL-SE")
    remote = backend.list_directory("/vo/user/x/out")
    first = collect.download(backend, remote, tmp_path / "dl")
    assert len(first.fetched) == 5 and not first.failed
    for path in first.fetched:
        assert adler32(path) == adler32(source / path.name)
    (tmp_path / "dl" / "f0.h5").write_bytes(b"tampered")
    second = collect.download(backend, remote, tmp_path / "dl")
    assert [p.name for p in second.fetched] == ["f0.h5"]
    assert len(second.present) == 4
    assert adler32(tmp_path / "dl" / "f0.h5") == adler32(source / "f0.h5")


def test_kill_9_during_download_then_rerun(backend: LocalBackend, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    count = 40
    for i in range(count):
        (source / f"f{i:03d}.h5").write_bytes(os.urandom(2_000_000))
        backend.put_file(source / f"f{i:03d}.h5", f"/vo/user/x/big/f{i:03d}.h5", "LOCAL-SE")
    outdir = tmp_path / "dl"
    argv = [str(BIN / "protopipe-grid"), "files", "get", "/vo/user/x/big", "--outdir",
            str(outdir), "--workers", "2", "--local-root", str(backend.root)]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = list(outdir.glob("*.h5")) if outdir.exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = sorted(outdir.glob("*.h5"))
    assert 0 < len(finished) < count, "the kill should land mid-download"
    for path in finished:  # whatever carries a final name is complete
        assert adler32(path) == adler32(source / path.name)
    rerun = subprocess.run(argv, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in outdir.glob("*.h5")) == [f"f{i:03d}.h5" for i in range(count)]
    assert not list(outdir.glob("*.part"))
    for path in outdir.glob("*.h5"):
        assert adler32(path) == adler32(source / path.name)


def put_files(backend: LocalBackend, source: Path, folder: str, count: int,
              size: int = 300_000) -> list[RemoteFile]:
    source.mkdir(exist_ok=True)
    for i in range(count):
        (source / f"f{i:02d}.h5").write_bytes(os.urandom(size + i))
        backend.put_file(source / f"f{i:02d}.h5", f"{folder}/f{i:02d}.h5", "LOCAL-SE")
    return backend.list_directory(folder)


def test_download_writes_only_name_part_then_renames(backend: LocalBackend, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One temporary name per file (``name.part``, not ``name.part.part``), and no catalog
    query per file: the listing's entries are handed to the backend."""
    remote = put_files(backend, tmp_path / "src", "/vo/user/x/part", 3)
    written: list[str] = []
    real_copy = local_backend_module.copy_into

    def recording(source: Path, destination: Path) -> str:
        written.append(destination.name)
        return real_copy(source, destination)

    def no_query(lfns: object) -> dict[str, RemoteFile]:
        raise AssertionError("catalog queried during the download")

    monkeypatch.setattr(local_backend_module, "copy_into", recording)
    monkeypatch.setattr(backend, "metadata", no_query)
    report = collect.download(backend, remote, tmp_path / "dl", workers=2)

    assert sorted(written) == ["f00.h5.part", "f01.h5.part", "f02.h5.part"]
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["f00.h5", "f01.h5", "f02.h5"]
    assert len(report.fetched) == 3
    for path in report.fetched:
        assert adler32(path) == adler32(tmp_path / "src" / path.name)


class NotThreadSafeBackend(LocalBackend):
    """The local backend declaring what DIRAC declares; each get_file notes its process."""

    thread_safe = False

    def get_file(self, lfn: str, destination: Path,
                 known: RemoteFile | None = None) -> str | None:
        (self.root / "pids").mkdir(exist_ok=True)
        (self.root / "pids" / str(os.getpid())).touch()
        return super().get_file(lfn, destination, known)


def test_a_backend_that_is_not_thread_safe_downloads_in_processes(tmp_path: Path) -> None:
    backend = NotThreadSafeBackend(tmp_path / "grid", payload_env=Path(sys.prefix))
    # put and listed here: this process' connection is open, the workers open their own
    remote = put_files(backend, tmp_path / "src", "/vo/user/x/proc", 6)
    store = Store(tmp_path / "state.sqlite")

    report = collect.download(backend, remote, tmp_path / "dl", store=store, workers=2)

    pids = {int(p.name) for p in (tmp_path / "grid" / "pids").iterdir()}
    assert pids and os.getpid() not in pids and len(pids) <= 2
    assert len(report.fetched) == 6 and not report.failed
    for path in report.fetched:
        assert adler32(path) == adler32(tmp_path / "src" / path.name)
    assert {row.state for row in store.downloads().values()} == {"fetched"}


def test_download_in_processes_verifies_like_in_threads(backend: LocalBackend,
                                                        tmp_path: Path) -> None:
    """The local backend forced into worker processes: present files skipped, a tampered one
    fetched again, a corrupt replica reported, nothing half-written left."""
    remote = put_files(backend, tmp_path / "src", "/vo/user/x/forced", 5)
    outdir = tmp_path / "dl"
    first = collect.download(backend, remote, outdir, workers=3, processes=True)
    assert len(first.fetched) == 5 and not first.failed

    (outdir / "f01.h5").write_bytes(b"tampered")
    (outdir / "f02.h5").unlink()
    replica = backend.replica_path(remote[3].lfn, "LOCAL-SE")
    data = bytearray(replica.read_bytes())
    data[100] ^= 0xFF
    replica.write_bytes(bytes(data))
    (outdir / "f03.h5").unlink()

    second = collect.download(backend, remote, outdir, workers=3, processes=True, retries=1,
                              backoff=0)

    assert sorted(p.name for p in second.fetched) == ["f01.h5", "f02.h5"]
    assert sorted(p.name for p in second.present) == ["f00.h5", "f04.h5"]
    assert list(second.failed) == [remote[3].lfn] and "adler32" in second.failed[remote[3].lfn]
    assert sorted(p.name for p in outdir.iterdir()) == ["f00.h5", "f01.h5", "f02.h5", "f04.h5"]
    for path in outdir.iterdir():
        assert adler32(path) == adler32(tmp_path / "src" / path.name)


def test_backends_pickle_without_their_connections(backend: LocalBackend,
                                                   tmp_path: Path) -> None:
    remote = put_files(backend, tmp_path / "src", "/vo/user/x/pickle", 1)
    copy = pickle.loads(pickle.dumps(backend))  # after use: a thread's connection is open
    assert copy.metadata([remote[0].lfn]) == {remote[0].lfn: remote[0]}

    dirac = DiracBackend(Environment("venv", "/opt/env"), ses=["SE-A"], retries=1)
    assert not dirac.thread_safe and backend.thread_safe
    dirac._api = lambda: None  # as after ready(): a live DIRAC client, which cannot pickle
    again = pickle.loads(pickle.dumps(dirac))
    assert again._api is None  # it initialises DIRAC again, lazily, in its own process
    assert (again.environment, again.ses, again.retries) == (dirac.environment, ["SE-A"], 1)


def test_dirac_backend_downloads_in_processes_and_starts_dirac_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DIRAC path without DIRAC: the backend crosses into worker processes unconnected and
    initialises DIRAC there, lazily (here it finds no DIRAC client and says so, per file).
    A ``DIRAC`` package that fails to import shadows any installed client, so this runs
    everywhere; spawned workers inherit ``sys.path`` from this process."""
    shadow = tmp_path / "shadow" / "DIRAC"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("no DIRAC client here")\n')
    monkeypatch.syspath_prepend(str(shadow.parent))
    for name in [m for m in sys.modules if m == "DIRAC" or m.startswith("DIRAC.")]:
        monkeypatch.delitem(sys.modules, name)

    def not_here(self: DiracBackend) -> None:
        raise DataError("DIRAC initialised in the parent process")

    monkeypatch.setattr(DiracBackend, "ready", not_here)  # the spawned workers do not see this
    backend = DiracBackend(Environment("venv", "/opt/env"))
    files = [RemoteFile(f"/vo/user/x/d/f{i}.h5", 10, "00000001", ("SE-A",)) for i in range(3)]

    report = collect.download(backend, files, tmp_path / "dl", workers=2, retries=0)

    assert sorted(report.failed) == [f.lfn for f in files]
    assert all("DIRAC client is not installed" in problem for problem in report.failed.values())
    assert list((tmp_path / "dl").iterdir()) == []


class DyingBackend(LocalBackend):
    """Not thread safe, and its worker process dies (as if killed) on one file."""

    thread_safe = False

    def get_file(self, lfn: str, destination: Path,
                 known: RemoteFile | None = None) -> str | None:
        if lfn.endswith("f03.h5"):
            os._exit(9)
        return super().get_file(lfn, destination, known)


def test_a_dead_worker_process_fails_files_not_the_download(tmp_path: Path) -> None:
    backend = DyingBackend(tmp_path / "grid", payload_env=Path(sys.prefix))
    remote = put_files(backend, tmp_path / "src", "/vo/user/x/dying", 6)
    outdir = tmp_path / "dl"

    report = collect.download(backend, remote, outdir, workers=2, retries=0)

    assert remote[3].lfn in report.failed
    assert "download worker died" in report.failed[remote[3].lfn]
    assert len(report.failed) + len(report.fetched) == 6
    for path in outdir.glob("*.h5"):  # whatever carries a final name is complete
        assert adler32(path) == adler32(tmp_path / "src" / path.name)
    healthy = LocalBackend(tmp_path / "grid", payload_env=Path(sys.prefix))
    again = collect.download(healthy, remote, outdir, workers=2, processes=True)
    assert not again.failed and len(again.fetched) + len(again.present) == 6
    assert sorted(p.name for p in outdir.iterdir()) == [f"f{i:02d}.h5" for i in range(6)]


def test_one_downloader_serves_several_folders_with_the_same_workers(
        backend: LocalBackend, tmp_path: Path) -> None:
    """A stage is downloaded particle by particle; worker processes start once for all."""
    source = tmp_path / "source"
    source.mkdir()
    remote = []
    for i in range(6):
        (source / f"f{i}.h5").write_bytes(bytes([i]) * 1000)
        remote.append(backend.put_file(source / f"f{i}.h5", f"/vo/user/x/multi/f{i}.h5",
                                       "LOCAL-SE"))
    with collect.Downloader(backend, workers=2, processes=True) as downloader:
        first = downloader.download(remote[:3], tmp_path / "gamma")
        pool = downloader.pool()
        second = downloader.download(remote[3:], tmp_path / "proton")
        assert downloader.pool() is pool
        workers = set(pool._processes)  # type: ignore[attr-defined]
    assert (len(first.fetched), len(second.fetched), first.failed, second.failed) == (3, 3, {}, {})
    assert len(workers) <= 2
    assert sorted(p.name for p in (tmp_path / "proton").iterdir()) == ["f3.h5", "f4.h5", "f5.h5"]


# --- collecting a stage from the state database ------------------------------------------------
class Stage:
    """Four TRAINING energy jobs of an analysis on the fake backend, held; ``finish(i)`` makes
    job i Done with a real protopipe-like output in the catalog."""

    def __init__(self, tmp_path: Path) -> None:
        from protopipe_grid_interface.workflow.submit import submit
        from protopipe_grid_interface.workflow.tree import create_analysis

        self.tmp = tmp_path
        self.backend = FakeBackend(hold=True)
        self.tree = create_analysis(tmp_path / "ws", "ana", None,
                                    grid_home=self.backend.home())
        self.store = Store(self.tree.state_db)
        lfn_dir = self.tree.lfn_data_dir(STAGE, GAMMA)
        self.specs = [JobSpec(name=f"job{i}", analysis="ana", stage=STAGE, particle=GAMMA,
                              input_lfns=(), steps=(), output_file=f"o{i}.h5",
                              output_lfn=f"{lfn_dir}/TRAINING_energy_gamma_tail_run{i}.h5",
                              output_se="LOCAL-SE") for i in range(4)]
        self.ids = dict(submit(self.store, self.backend, self.specs).submitted)

    def finish(self, *numbers: int) -> None:
        for i in numbers:
            spec = self.specs[i]
            local = make_training_file(self.tmp / f"made{i}.h5", rows=10, showers=100 * (i + 1))
            self.backend.put_file(local, spec.output_lfn, "LOCAL-SE")
            self.backend.set_status(self.ids[spec.name], JobStatus.DONE, "Execution Complete")
        track.refresh(self.store, self.backend)

    def collect(self, overwrite: bool = False) -> collect.CollectReport:
        [report] = collect.collect(self.store, self.backend, self.tree, "tail", STAGE, [GAMMA],
                                   overwrite=overwrite)
        return report

    @property
    def merged(self) -> Path:
        return self.tree.data_dir(STAGE, GAMMA) / "TRAINING_energy_tail_gamma_merged.h5"


STAGE, GAMMA = StageEnum.TRAINING_ENERGY, Particle.GAMMA


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    made = Stage(tmp_path)
    yield made
    made.store.close()
    made.backend.close()


def test_collect_takes_the_done_jobs_outputs_and_merges_exactly_those(stage: Stage) -> None:
    stage.finish(0, 2)
    stray = make_training_file(stage.tree.data_dir(STAGE, GAMMA) /
                               "TRAINING_energy_gamma_tail_run9.h5", rows=5, showers=7)

    report = stage.collect()

    assert [Path(f.lfn).name for f in report.outputs] == [
        "TRAINING_energy_gamma_tail_run0.h5", "TRAINING_energy_gamma_tail_run2.h5"]
    assert (len(report.download.fetched), report.unfinished) == (2, 2)
    assert report.merged is not None and not report.merged.up_to_date
    assert (report.merged.files, report.merged.showers) == (2, 100 + 300)  # not the stray file
    assert stray.exists()


def test_collecting_again_reads_nothing_and_merges_only_when_the_inputs_change(
        stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    stage.finish(0, 1)
    stage.collect()
    first_merge = stage.merged.stat().st_mtime_ns
    hashed: list[Path] = []
    real_adler32 = collect.adler32
    monkeypatch.setattr(collect, "adler32", lambda path: hashed.append(path) or
                        real_adler32(path))

    again = stage.collect()

    assert (again.download.fetched, len(again.download.present), hashed) == ([], 2, [])
    assert again.merged is not None and again.merged.up_to_date
    assert (again.merged.files, again.merged.showers) == (2, 300)
    assert stage.merged.stat().st_mtime_ns == first_merge
    stage.finish(3)  # one more job done while the stage runs

    later = stage.collect()

    assert [p.name for p in later.download.fetched] == ["TRAINING_energy_gamma_tail_run3.h5"]
    assert later.merged is not None and not later.merged.up_to_date
    assert (later.merged.files, later.merged.showers, later.unfinished) == (3, 700, 1)


def test_a_verified_file_changed_since_is_checked_again(stage: Stage) -> None:
    stage.finish(0)
    [path] = stage.collect().download.fetched
    path.write_bytes(b"x" * path.stat().st_size)  # same size, other content

    report = stage.collect()

    assert report.download.fetched == [path]
    assert adler32(path) == report.outputs[0].checksum
    # the merge was made of the catalog's bytes, which are back: it is still up to date
    assert report.merged is not None and report.merged.up_to_date


def test_a_merged_file_this_analysis_did_not_make_is_refused_before_downloading(
        stage: Stage) -> None:
    stage.finish(0, 1)
    stage.merged.parent.mkdir(parents=True, exist_ok=True)
    stage.merged.write_text("made by hand")

    with pytest.raises(DataError, match=r"merged\.h5 exists and was not merged by this "
                                        r"analysis \(or changed since\) \(use --overwrite"):
        stage.collect()

    assert sorted(p.name for p in stage.merged.parent.iterdir()) == [stage.merged.name]
    report = stage.collect(overwrite=True)
    assert report.merged is not None and report.merged.files == 2


def test_merging_without_downloading_names_what_is_missing(stage: Stage) -> None:
    stage.finish(0, 1)
    with pytest.raises(DataError, match=r"run0\.h5: not downloaded \(2 of 2 missing\)"):
        collect.merge_particles(stage.store, stage.tree, "tail", STAGE, [GAMMA])
    stage.collect()
    [result] = collect.merge_particles(stage.store, stage.tree, "tail", STAGE, [GAMMA])
    assert result.up_to_date and result.files == 2


def test_a_merged_file_changed_since_its_merge_is_not_taken_for_up_to_date(
        stage: Stage) -> None:
    stage.finish(0)
    stage.collect()
    stage.merged.write_bytes(b"edited by hand")

    with pytest.raises(DataError, match="or changed since"):
        stage.collect()
    report = stage.collect(overwrite=True)
    assert report.merged is not None and not report.merged.up_to_date
