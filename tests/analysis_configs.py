"""A complete, valid set of protopipe 0.5 configurations for test analyses.

``tests/configs/`` holds protopipe's example files, filled as a user must fill them (production,
site, array, cameras; ``num_use`` and ``num_showers`` left empty, to be derived from the
data). :func:`register_inputs` puts the input files of a test plan in a catalog.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from protopipe_grid_interface.backends.base import Backend
from protopipe_grid_interface.config import set_yaml_values

CONFIGS = Path(__file__).resolve().parent / "configs"
FILES = ("analysis.yaml", "performance.yaml", "RandomForestRegressor.yaml",
         "RandomForestClassifier.yaml")


def write_configs(folder: Path, cameras: Sequence[str] = ("LSTCam", "NectarCam"),
                  config_name: str = "ana", **general: object) -> Path:
    """Copy the valid configurations into ``folder`` (an analysis' ``configs``), with these
    cameras, analysis name and other ``General`` values of analysis.yaml; returns
    analysis.yaml's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(CONFIGS / name, folder / name)
    values = {"cam_id_list": list(cameras), "config_name": config_name, **general}
    set_yaml_values(folder / "analysis.yaml", {("General", k): v for k, v in values.items()})
    for name in FILES[2:]:
        set_yaml_values(folder / name, {("General", "cam_id_list"): list(cameras)})
    return folder / "analysis.yaml"


def register_inputs(backend: Backend, lfns: Iterable[str]) -> None:
    """Put a small stand-in file in ``backend``'s catalog at each LFN not there yet (the
    submission refuses inputs the catalog lacks)."""
    wanted = list(lfns)
    present = backend.metadata(wanted)
    with tempfile.TemporaryDirectory() as tmp:
        stand_in = Path(tmp) / "input.simtel.zst"
        stand_in.write_bytes(b"a simulation file\n")
        se = backend.storage_elements()[0]
        for lfn in wanted:
            if lfn not in present:
                backend.put_file(stand_in, lfn, se)
