"""``dataset dump``: LFNs of a catalog folder with their replica sites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.exceptions import BackendError, DataError
from protopipe_grid_interface.workflow.datasets import dump

BIN = Path(sys.executable).parent
PROD = "/vo.cta.in2p3.fr/MC/PROD3/Paranal/gamma/sim_telarray/demo/Data"


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path / "grid", payload_env=Path(sys.prefix))
    for block, run in (("000xxx", 101), ("000xxx", 102), ("001xxx", 1001)):
        path = tmp_path / f"gamma_run{run}.simtel.gz"
        path.write_bytes(bytes(run % 251 for _ in range(1000)))
        backend.put_file(path, f"{PROD}/{block}/{path.name}", "LOCAL-SE")
    backend.replicate(f"{PROD}/000xxx/gamma_run101.simtel.gz", "LOCAL-SE2")
    return backend


def test_dump_writes_every_file_below_the_folder_with_its_replicas(
        backend: LocalBackend, tmp_path: Path) -> None:
    files, per_se = dump(backend, PROD, {}, tmp_path / "gamma.list")
    lines = (tmp_path / "gamma.list").read_text().splitlines()
    assert lines == sorted(lines) and len(lines) == 3
    assert lines[-1].endswith("001xxx/gamma_run1001.simtel.gz")
    assert per_se == {"LOCAL-SE": 3, "LOCAL-SE2": 1}
    replicas = dict(line.split("\t") for line in
                    (tmp_path / "gamma.list.replicas").read_text().splitlines())
    assert replicas[f"{PROD}/000xxx/gamma_run101.simtel.gz"] == "LOCAL-SE,LOCAL-SE2"


def test_dump_of_an_empty_folder_is_an_error_and_writes_nothing(
        backend: LocalBackend, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file below"):
        dump(backend, "/vo.cta.in2p3.fr/MC/none", {}, tmp_path / "x.list")
    assert not list(tmp_path.glob("x.list*"))


def test_dump_by_catalog_metadata(backend: LocalBackend, tmp_path: Path) -> None:
    backend.set_metadata(f"{PROD}/000xxx", {"block": 0})
    backend.set_metadata(f"{PROD}/000xxx/gamma_run102.simtel.gz", {"particle": "gamma"})

    files, _ = dump(backend, PROD, {"block": "0", "particle": "gamma"}, tmp_path / "x.list")

    assert [f.lfn for f in files] == [f"{PROD}/000xxx/gamma_run102.simtel.gz"]
    with pytest.raises(BackendError, match="Metadata field run not defined"):
        dump(backend, PROD, {"run": "102"}, tmp_path / "x.list")


def test_cli_dump_then_the_list_feeds_split(backend: LocalBackend, tmp_path: Path) -> None:
    out = tmp_path / "gamma.list"
    result = subprocess.run([str(BIN / "protopipe-grid"), "dataset", "dump", "--path", PROD,
                             "-o", str(out), "--local-root", str(backend.root)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "LOCAL-SE2" in result.stdout
    split = subprocess.run([str(BIN / "protopipe-SPLIT_DATASET"), "--input_gammas", str(out),
                            "--output_path", str(tmp_path / "split")],
                           capture_output=True, text=True)
    assert split.returncode == 0, split.stderr
    # 3 files at 10/10/80: int(0.3 + 0.5) = 0 for each training stage, the rest to performance
    assert len((tmp_path / "split" / "gamma_PERFORMANCE.list").read_text().splitlines()) == 3
    assert not (tmp_path / "split" / "gamma_TRAINING_ENERGY.list").exists()
