"""``data verify``: a downloaded set against the catalog, on the local backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_configs import write_configs

from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.models import Particle, RemoteFile, Stage
from protopipe_grid_interface.workflow import collect
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.tree import create_analysis
from protopipe_grid_interface.workflow.verify import Verdict, verify

BIN = Path(sys.executable).parent
STAGE, PARTICLE = Stage.TRAINING_ENERGY, Particle.GAMMA


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``protopipe-grid`` as a user runs it, on a pipe (no terminal: no progress bar)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGI_")}
    env["PGI_LOCAL_ROOT"] = str(cwd / "grid")
    env["COLUMNS"] = "200"  # table cells on one line each
    return subprocess.run(  # noqa: S603 - fixed argument list
        [str(BIN / "protopipe-grid"), *map(str, args)], cwd=cwd, env=env, text=True,
        capture_output=True, stdin=subprocess.DEVNULL, timeout=120, check=False)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "grid", payload_env=Path(sys.prefix))


def publish(backend: LocalBackend, folder: str, source: Path, count: int = 4
            ) -> list[RemoteFile]:
    source.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = f"TRAINING_energy_gamma_tail_run{100 + i}.h5"
        (source / name).write_bytes(os.urandom(50_000 + i))
        backend.put_file(source / name, f"{folder}/{name}", "LOCAL-SE")
    return backend.list_directory(folder)


# --- the workflow function --------------------------------------------------------------------
def test_a_complete_download_is_all_ok(backend: LocalBackend, tmp_path: Path) -> None:
    remote = publish(backend, "/vo/user/x/out", tmp_path / "src")
    collect.download(backend, remote, tmp_path / "dl")

    report = verify(remote, tmp_path / "dl", "/vo/user/x/out", workers=2)

    assert report.complete and report.bad == [] and report.extra == []
    assert report.counts[Verdict.OK] == report.catalogued == 4
    assert [c.lfn for c in report.checks] == [r.lfn for r in remote]
    assert all(c.checksum == r.checksum and c.size == r.size
               for c, r in zip(report.checks, remote, strict=True))


def test_missing_wrong_size_corrupt_and_extra_files(backend: LocalBackend,
                                                    tmp_path: Path) -> None:
    remote = publish(backend, "/vo/user/x/out", tmp_path / "src")
    outdir = tmp_path / "dl"
    collect.download(backend, remote, outdir)
    names = [Path(r.lfn).name for r in remote]
    (outdir / names[0]).unlink()                                  # missing
    with open(outdir / names[1], "ab") as stream:                 # one byte too many
        stream.write(b"x")
    flip_a_byte(outdir / names[2])                                # same size, other bytes
    (outdir / "notes.txt").write_text("mine")                     # the catalog does not know
    (outdir / "merged.h5").write_text("ignored")                  # named in ignore
    seen: list[int] = []

    report = verify(remote, outdir, "/vo/user/x/out", ignore={"merged.h5"},
                    progress=seen.append)

    verdicts = {c.path.name: c.verdict for c in report.checks}
    assert verdicts == {names[0]: Verdict.MISSING, names[1]: Verdict.WRONG_SIZE,
                        names[2]: Verdict.WRONG_CHECKSUM, names[3]: Verdict.OK,
                        "notes.txt": Verdict.EXTRA}
    assert not report.complete and len(report.bad) == 3 and report.catalogued == 4
    assert seen == [1] * len(remote)
    wrong_size = next(c for c in report.checks if c.verdict == Verdict.WRONG_SIZE)
    assert (wrong_size.size, wrong_size.expected_size) == (remote[1].size + 1, remote[1].size)
    corrupt = next(c for c in report.checks if c.verdict == Verdict.WRONG_CHECKSUM)
    assert corrupt.checksum != corrupt.expected_checksum == remote[2].checksum
    extra = next(c for c in report.checks if c.verdict == Verdict.EXTRA)
    assert extra.lfn is None and extra.size == 4
    # a download afterwards repairs what verify found, and verify then agrees
    again = collect.download(backend, remote, outdir)
    assert sorted(p.name for p in again.fetched) == sorted(names[:3])
    assert verify(remote, outdir, "/vo/user/x/out", ignore={"merged.h5"}).bad == []


def test_a_folder_that_does_not_exist_is_all_missing(backend: LocalBackend,
                                                     tmp_path: Path) -> None:
    remote = publish(backend, "/vo/user/x/out", tmp_path / "src", count=2)
    report = verify(remote, tmp_path / "nowhere", "/vo/user/x/out")
    assert report.counts[Verdict.MISSING] == 2 and report.extra == []


# --- the command --------------------------------------------------------------------------------
@pytest.fixture
def analysis(tmp_path: Path, backend: LocalBackend) -> tuple[Path, Path, list[RemoteFile]]:
    """An analysis whose energy-training gamma outputs are in the catalog and downloaded:
    (metadata file, local data folder, catalog entries)."""
    tree = create_analysis(tmp_path / "ws", "ana", None)
    write_configs(tree.configs, ["LSTCam"])
    opened = Analysis.open(tree.metadata_file).with_home(backend.home())
    remote = publish(backend, opened.tree.lfn_data_dir(STAGE, PARTICLE), tmp_path / "src")
    download = cli("data", "download", "-m", tree.metadata_file, "--stage", STAGE.value,
                   "--no-merge", "--local-root", backend.root, cwd=tmp_path)
    assert download.returncode == 0, download.stderr
    return tree.metadata_file, opened.tree.data_dir(STAGE, PARTICLE), remote


def test_command_exit_code_zero_when_all_is_ok(analysis: tuple[Path, Path, list[RemoteFile]],
                                               tmp_path: Path) -> None:
    metadata, folder, _ = analysis
    (folder / "TRAINING_energy_tail_gamma_merged.h5").write_text("the merge's own output")

    result = cli("data", "verify", "-m", metadata, "--stage", STAGE.value, "--local-root",
                 tmp_path / "grid", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "downloaded files against the catalog" in result.stdout
    assert "not ok" not in result.stdout  # no table of bad files


def test_command_reports_bad_files_and_exits_non_zero(
        analysis: tuple[Path, Path, list[RemoteFile]], tmp_path: Path) -> None:
    metadata, folder, remote = analysis
    names = sorted(Path(r.lfn).name for r in remote)
    (folder / names[0]).unlink()
    flip_a_byte(folder / names[1])
    (folder / "stray.h5").write_bytes(b"?")

    result = cli("data", "verify", "-m", metadata, "--stage", STAGE.value, "--local-root",
                 tmp_path / "grid", cwd=tmp_path)

    assert result.returncode == 4
    assert result.stderr.splitlines() == [
        "protopipe-grid data verify: error: 2 of 4 catalogued file(s) missing or wrong "
        "(protopipe-grid data download with the same options fetches them again)"]
    assert "Traceback" not in result.stdout + result.stderr
    assert "files that are not ok" in result.stdout
    for word in ("missing", "wrong adler32", "not in catalog", names[0], "stray.h5"):
        assert word in result.stdout


def test_command_json(analysis: tuple[Path, Path, list[RemoteFile]], tmp_path: Path) -> None:
    metadata, folder, remote = analysis
    names = sorted(Path(r.lfn).name for r in remote)
    (folder / names[3]).write_bytes(b"short")

    result = cli("data", "verify", "-m", metadata, "--stage", STAGE.value, "--json",
                 "--local-root", tmp_path / "grid", cwd=tmp_path)

    assert result.returncode == 4
    document = json.loads(result.stdout)
    assert document["complete"] is False
    [entry] = document["sets"]
    assert entry["label"] == "gamma" and entry["folder"] == str(folder)
    assert entry["source"].endswith("/data/TRAINING/for_energy_estimation/gamma")
    assert entry["catalogued"] == 4 and entry["complete"] is False
    assert entry["counts"] == {"ok": 3, "missing": 0, "wrong size": 1, "wrong adler32": 0,
                               "not in catalog": 0}
    by_name = {Path(f["path"]).name: f for f in entry["files"]}
    assert by_name[names[3]] == {
        "path": str(folder / names[3]), "state": "wrong size", "lfn": remote[3].lfn,
        "expected_size": remote[3].size, "size": 5,
        "expected_adler32": remote[3].checksum, "adler32": None}
    assert by_name[names[0]]["state"] == "ok"
    assert by_name[names[0]]["adler32"] == remote[0].checksum


def test_command_on_a_folder_downloaded_with_files_get(backend: LocalBackend,
                                                       tmp_path: Path) -> None:
    remote = publish(backend, "/vo/user/x/any", tmp_path / "src", count=3)
    got = cli("files", "get", "/vo/user/x/any", "--outdir", tmp_path / "dl", "--local-root",
              backend.root, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    args = ("data", "verify", "--local-dir", tmp_path / "dl", "--lfn-path", "/vo/user/x/any",
            "--json", "--local-root", backend.root)

    good = cli(*args, cwd=tmp_path)
    (tmp_path / "dl" / Path(remote[0].lfn).name).unlink()
    bad = cli(*args, cwd=tmp_path)

    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["sets"][0]["counts"]["ok"] == 3
    assert bad.returncode == 4
    assert json.loads(bad.stdout)["sets"][0]["counts"]["missing"] == 1
    assert "protopipe-grid files get fetches them again" in bad.stderr
