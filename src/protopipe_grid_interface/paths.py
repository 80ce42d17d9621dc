"""The only place that knows the analysis folder layout and the LFN layout.

Local analysis tree (as ``protopipe-CREATE_ANALYSIS`` makes it)::

    <output_path>/shared_folder/analyses/<analysis>/
        analysis_metadata.yaml  analysis.log  state.sqlite
        configs/  data/simtel/  data/TRAINING/for_energy_estimation/gamma/
        data/TRAINING/for_particle_classification/{gamma,proton}/
        data/DL2/{gamma,proton,electron}/  data/DL3/
        estimators/{energy_regressor,gamma_hadron_classifier}/

LFN layout (the original's): ``<grid home>/<path from home>/<analysis>/`` then
``data/TRAINING/for_energy_estimation/<particle>/``, ``data/TRAINING/for_particle_classification/
<particle>/``, ``data/DL2/<particle>/`` and ``estimators/`` (models and their configs, flat).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from .exceptions import InputError
from .models import Particle, Stage

LFN_PATTERN = re.compile(r"^/[A-Za-z0-9_.+=:@%,-]+(/[A-Za-z0-9_.+=:@%,-]+)*/?$")

STANDARD_TREE: dict[str, object] = {
    "configs": [],
    "data": {
        "simtel": [],
        "TRAINING": {
            "for_energy_estimation": ["gamma"],
            "for_particle_classification": ["gamma", "proton"],
        },
        "DL2": ["gamma", "proton", "electron"],
        "DL3": [],
    },
    "estimators": ["energy_regressor", "gamma_hadron_classifier"],
}

#: each stage's outputs below the analysis, locally and (by default) in the catalog
STAGE_DATA_DIR = {
    Stage.TRAINING_ENERGY: "data/TRAINING/for_energy_estimation",
    Stage.TRAINING_CLASSIFICATION: "data/TRAINING/for_particle_classification",
    Stage.DL2: "data/DL2",
}

STAGE_PARTICLES = {
    Stage.TRAINING_ENERGY: (Particle.GAMMA,),
    Stage.TRAINING_CLASSIFICATION: (Particle.GAMMA, Particle.PROTON),
    Stage.DL2: (Particle.GAMMA, Particle.PROTON, Particle.ELECTRON),
}

OUTPUT_PREFIX = {
    Stage.TRAINING_ENERGY: "TRAINING_energy",
    Stage.TRAINING_CLASSIFICATION: "TRAINING_classification",
    Stage.DL2: "DL2",
}

MODEL_FOLDER = {"regressor": "energy_regressor", "classifier": "gamma_hadron_classifier"}

#: what ``protopipe-SPLIT_DATASET`` appends to a list's name for each stage
SPLIT_SUFFIX = {
    Stage.TRAINING_ENERGY: "_TRAINING_ENERGY",
    Stage.TRAINING_CLASSIFICATION: "_TRAINING_CLASSIFICATION",
    Stage.DL2: "_PERFORMANCE",
}


#: where a ctapipe analysis' local tools keep their numba and astropy caches (its folder)
CTAPIPE_WORK = ".ctapipe-work"


def analyses_directory(output_path: Path) -> Path:
    """``<output_path>/shared_folder/analyses``: where ``protopipe-CREATE_ANALYSIS`` puts
    analyses (``shared_folder/productions`` beside it)."""
    return Path(output_path) / "shared_folder" / "analyses"


def validate_lfn(lfn: str, where: str = "") -> str:
    """Return ``lfn`` if it is an absolute LFN made of safe characters; raise InputError if not.

    Spaces, quotes and shell metacharacters are refused: no grid storage accepts them, and they
    are how the original tool's shell strings broke.
    """
    prefix = f"{where}: " if where else ""
    if not LFN_PATTERN.match(lfn) or "/../" in lfn + "/" or "/./" in lfn + "/":
        raise InputError(f"{prefix}invalid LFN {lfn!r}",
                         "expected an absolute path of letters, digits and . _ - + = : @ % ,")
    return lfn


def create_paths(tree: object, prefix: str = "") -> list[str]:
    """Flatten a workflow tree (dicts and lists of folder names) into relative paths."""
    if not isinstance(tree, dict):
        raise InputError("analysis workflow tree must be a mapping of folders to lists or mappings")
    paths: list[str] = []
    for key, children in tree.items():
        here = f"{prefix}{key}"
        if isinstance(children, dict) and children:
            paths += create_paths(children, here + "/")
        elif isinstance(children, list) and children:
            if not all(isinstance(child, str) for child in children):
                raise InputError(f"analysis workflow tree: {here}: expected a list of folder names")
            paths += [f"{here}/{child}" for child in children]
        elif children in (None, [], {}):
            paths.append(here)
        else:
            raise InputError(f"analysis workflow tree: {here}: expected a list or a mapping")
    return paths


@dataclass(frozen=True)
class AnalysisTree:
    """Local folders and LFNs of one analysis. ``lfn_dirs`` and ``lfn_models`` are the catalog
    folders of the stages' outputs and of the models, below the analysis (grid.yaml's
    ``GRID.training_dir_energy``, ``training_dir_classification``, ``dl2_dir``, ``model_dir``)."""

    analyses_directory: Path
    name: str
    grid_home: str = ""
    path_from_home: str = ""
    lfn_dirs: tuple[tuple[Stage, str], ...] = tuple(STAGE_DATA_DIR.items())
    lfn_models: str = "estimators"

    @property
    def root(self) -> Path:
        return self.analyses_directory / self.name

    @property
    def metadata_file(self) -> Path:
        return self.root / "analysis_metadata.yaml"

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def grid_config(self) -> Path:
        return self.configs / "grid.yaml"

    @property
    def state_db(self) -> Path:
        return self.root / "state.sqlite"

    @property
    def simtel_lists(self) -> Path:
        return self.root / "data" / "simtel"

    @property
    def dl3(self) -> Path:
        return self.root / "data" / "DL3"

    def data_dir(self, stage: Stage, particle: Particle) -> Path:
        return self.root / STAGE_DATA_DIR[stage] / particle.value

    def estimator_dir(self, model_type: str) -> Path:
        return self.root / "estimators" / MODEL_FOLDER[model_type]

    # --- LFNs ---------------------------------------------------------------------------------
    @property
    def lfn_root(self) -> str:
        """``<grid home>/<path from home>/<analysis>``."""
        if not self.grid_home:
            raise InputError("the grid home is not set",
                             "give --GRID-home or set GRID.home_grid in grid.yaml")
        return posixpath.join(self.grid_home, self.path_from_home, self.name).rstrip("/")

    def lfn_data_dir(self, stage: Stage, particle: Particle) -> str:
        return posixpath.join(self.lfn_root, dict(self.lfn_dirs)[stage], particle.value)

    @property
    def lfn_estimators(self) -> str:
        return posixpath.join(self.lfn_root, self.lfn_models)


def merged_file_name(stage: Stage, particle: Particle, mode: str) -> str:
    """The name ``protopipe-DOWNLOAD_AND_MERGE`` gives a merged file."""
    return f"{output_prefix(stage)}_{mode}_{particle.value}_merged.h5"


def output_prefix(stage: Stage) -> str:
    """``TRAINING_energy``, ``TRAINING_classification`` or ``DL2``."""
    return OUTPUT_PREFIX[stage]


def model_file_name(model_type: str, camera: str, method: str) -> str:
    """``regressor_LSTCam_RandomForestRegressor.pkl.gz`` and the like (protopipe's naming)."""
    return f"{model_type}_{camera}_{method}.pkl.gz"


def split_list_name(stem: str, stage: Stage) -> str:
    """``gamma_TRAINING_ENERGY.list``: the name of a stage's list split from ``gamma.list``."""
    return f"{stem}{SPLIT_SUFFIX[stage]}.list"
