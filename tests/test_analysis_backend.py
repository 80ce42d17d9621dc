"""An analysis remembers where it runs: the first command that succeeds with a backend records
it (and the local backend's folder) in analysis_metadata.yaml; every later command uses it, and
one that names another is refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from analysis_configs import register_inputs, write_configs

from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.models import Particle, Stage
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.tree import create_analysis

BIN = Path(sys.executable).parent


def grid(*args: object, cwd: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """``protopipe-grid <args>`` as a user runs it: no --local-root, no PGI_* variable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PGI_")}
    clean["XDG_DATA_HOME"] = str(cwd / "xdg")  # the default local grid, inside the test
    return subprocess.run([str(BIN / "protopipe-grid"), *map(str, args)], cwd=cwd,
                          env={**clean, **(env or {})}, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)


def analysis_with_a_list(tmp_path: Path) -> Path:
    tree = create_analysis(tmp_path / "ws", "ana", None)
    write_configs(tree.configs, ["LSTCam"])
    listing = tmp_path / "gamma.list"
    listing.write_text("/vo.cta.in2p3.fr/MC/gamma_run101.simtel.zst\n")
    assert Analysis.open(tree.metadata_file).set_list_file(Stage.TRAINING_ENERGY,
                                                           Particle.GAMMA, listing)
    return tree.metadata_file


def recorded(metadata: Path) -> dict[str, object]:
    return {k: v for k, v in yaml.safe_load(metadata.read_text()).items()
            if k in ("backend", "local backend folder", "GRID is DIRAC")}


def test_the_first_successful_command_records_the_backend_and_later_ones_use_it(
        tmp_path: Path) -> None:
    metadata = analysis_with_a_list(tmp_path)
    own = tmp_path / "my-grid"
    register_inputs(LocalBackend(own), ["/vo.cta.in2p3.fr/MC/gamma_run101.simtel.zst"])
    submit = ["jobs", "submit", "-m", metadata, "--stage", "training-energy",
              "--payload-env", sys.prefix, "--no-canary"]  # its input is not in the catalog
    assert recorded(metadata) == {"GRID is DIRAC": False}

    dry = grid(*submit, "--dry-run", "--local-root", own, cwd=tmp_path)  # changes nothing
    assert dry.returncode == 0 and recorded(metadata) == {"GRID is DIRAC": False}
    first = grid(*submit, "--local-root", own, cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    assert recorded(metadata) == {"GRID is DIRAC": False, "backend": "local",
                                  "local backend folder": str(own.resolve())}
    status = grid("jobs", "status", "-m", metadata, "--json", cwd=tmp_path)  # no --local-root
    assert status.returncode == 0, status.stderr
    [job] = yaml.safe_load(status.stdout)
    assert LocalBackend(own).find_jobs([job["name"]]) == {job["name"]: [job["backend_id"]]}
    assert not (tmp_path / "xdg").exists()  # the default local grid was never opened

    elsewhere = grid("jobs", "status", "-m", metadata, "--local-root", tmp_path / "other",
                     cwd=tmp_path)
    assert elsewhere.returncode == 2
    assert elsewhere.stderr.strip() == (
        f"protopipe-grid jobs status: error: {metadata}: this analysis' local backend is in "
        f"{own.resolve()}, not {tmp_path / 'other'} (leave --local-root out)")
    other_backend = grid("jobs", "status", "-m", metadata, "--backend", "dirac", cwd=tmp_path)
    assert other_backend.returncode == 2
    assert "this analysis runs on the local backend, not dirac" in other_backend.stderr
    LocalBackend(own).kill([job["backend_id"]])


def test_analysis_create_records_the_backend_it_is_given(tmp_path: Path) -> None:
    created = grid("analysis", "create", "ana", "--output-path", tmp_path / "ws",
                   "--local-root", tmp_path / "g", "--payload-env", tmp_path / "no-such-env",
                   cwd=tmp_path)
    # the templates need protopipe: without it the analysis is not created at all
    assert created.returncode == 2 and "no-such-env" in created.stderr
    assert not (tmp_path / "ws" / "shared_folder" / "analyses" / "ana").exists()
    tree = create_analysis(tmp_path / "ws2", "ana", None, backend="local",
                           local_root=tmp_path / "g")
    assert recorded(tree.metadata_file) == {"GRID is DIRAC": False, "backend": "local",
                                            "local backend folder": str(tmp_path / "g")}
    dirac = create_analysis(tmp_path / "ws3", "ana", None, backend="dirac",
                            local_root=tmp_path / "g")
    assert recorded(dirac.metadata_file) == {"GRID is DIRAC": True, "backend": "dirac"}
