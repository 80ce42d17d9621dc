"""Downloads and merges: verified, resumable, never a half-written file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tables

from protopipe_grid_interface.backends import local as local_backend_module
from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.checksums import adler32
from protopipe_grid_interface.exceptions import DataError
from protopipe_grid_interface.models import RemoteFile
from protopipe_grid_interface.workflow import collect

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
    merged, showers = collect.merge(inputs, tmp_path / "out.h5")
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
    merged, showers = collect.merge([good, crashed, corrupt], tmp_path / "out.h5")
    assert (merged, showers) == (1, 100)


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

