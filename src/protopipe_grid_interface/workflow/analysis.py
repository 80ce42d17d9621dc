"""An open analysis: its tree, its configurations, its state database, and its job plans."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import write_lines
from ..config import (
    AnalysisConfig,
    GridConfig,
    load_analysis,
    load_grid,
    load_metadata,
    set_yaml_values,
)
from ..exceptions import ConfigError, InputError
from ..models import JobSpec, Particle, Stage
from ..paths import STAGE_PARTICLES, AnalysisTree, analyses_directory, validate_lfn
from ..store import Store
from .ctapipe_catalog import SPLITS, Layout
from .ctapipe_plan import ProcessSettings, plan_process_jobs
from .plan import PlanSettings, plan_jobs
from .split import SplitInput, StageList, read_list, read_replicas, split_files
from .tree import open_tree, record_backend

if TYPE_CHECKING:
    from ..backends.base import Backend

LIST_SECTIONS = {
    Stage.TRAINING_ENERGY: "EnergyRegressor",
    Stage.TRAINING_CLASSIFICATION: "GammaHadronClassifier",
    Stage.DL2: "Performance",
}
PLACEHOLDER = "XXX.list"
MERGE_SCRIPT = Path(__file__).resolve().parent.parent / "payload" / "merge_tables.py"


@dataclass
class Analysis:
    """Everything a command needs to know about one analysis."""

    tree: AnalysisTree
    grid: GridConfig
    protopipe: AnalysisConfig
    #: the payload pipeline (``analysis create --pipeline``): protopipe, or ctapipe (which has
    #: no analysis.yaml: its configurations are ctapipe's own, see ``ctapipe_configs.py``)
    pipeline: str = "protopipe"

    @classmethod
    def open(cls, metadata_file: Path) -> Analysis:
        """Open from ``analysis_metadata.yaml`` (or the analysis folder holding it)."""
        path = Path(metadata_file)
        if path.is_dir():
            path = path / "analysis_metadata.yaml"
        tree = open_tree(path)
        pipeline = load_metadata(path).pipeline
        grid = load_grid(tree.grid_config)
        dirs = grid.GRID
        tree = replace(tree, lfn_models=dirs.model_dir, lfn_dirs=(
            (Stage.TRAINING_ENERGY, dirs.training_dir_energy),
            (Stage.TRAINING_CLASSIFICATION, dirs.training_dir_classification),
            (Stage.DL2, dirs.dl2_dir)))
        if grid.GRID.home_grid and not tree.grid_home:
            tree = replace(tree, grid_home=grid.GRID.home_grid,
                           path_from_home=tree.path_from_home or grid.GRID.outdir)
        if pipeline == "ctapipe":
            return cls(tree, grid, AnalysisConfig(), pipeline)
        return cls(tree, grid, load_analysis(cls.config_path_of(tree, grid)))

    @classmethod
    def open_legacy(cls, metadata: Path | None, name: str | None, local_path: Path | None,
                    grid_home: str | None, path_from_home: str, mode: str) -> Analysis:
        """The original commands' ways to name an analysis: its metadata file, else
        ``<local_path>/shared_folder/analyses/<name>`` with ``grid_home`` and
        ``path_from_home`` (a folder without metadata gets default configurations)."""
        if metadata is not None:
            analysis = cls.open(metadata)
            return analysis.with_home(grid_home) if grid_home else analysis
        if not name:
            raise InputError("no analysis given",
                             "use --metadata, or --analysis_name (with --local_path)")
        analyses = analyses_directory(Path(local_path or ".")).resolve()
        root = analyses / name
        if (root / "analysis_metadata.yaml").is_file():
            analysis = cls.open(root / "analysis_metadata.yaml")
        elif root.is_dir():
            analysis = cls(AnalysisTree(analyses, name),
                           GridConfig.model_validate({"General": {"mode": mode}}),
                           AnalysisConfig())
        else:
            raise InputError(f"{root}: analysis folder not found",
                             "check --local_path and --analysis_name, or use --metadata")
        if not grid_home:
            return analysis
        tree = replace(analysis.tree, grid_home=grid_home, path_from_home=path_from_home)
        return cls(tree, analysis.grid, analysis.protopipe, analysis.pipeline)

    @classmethod
    def open_folder(cls, folder: Path, option: str) -> Analysis:
        """The analysis in ``folder`` (given as ``option``), whose metadata must describe it."""
        if not folder.is_dir():
            raise InputError(f"{option} {folder}: analysis folder not found",
                             "create it with protopipe-CREATE_ANALYSIS")
        described = open_tree(folder / "analysis_metadata.yaml").root
        if described.resolve() != folder.resolve():
            raise InputError(f"{option} {folder}: its analysis_metadata.yaml describes "
                             f"{described}", "use that folder, or fix analyses_directory and "
                             "analysis_name in the metadata")
        return cls.open(folder)

    @staticmethod
    def config_path_of(tree: AnalysisTree, grid: GridConfig) -> Path:
        folder = Path(grid.General.config_path) if grid.General.config_path else tree.configs
        return folder / grid.General.config_file

    @property
    def config_path(self) -> Path:
        """protopipe's ``analysis.yaml`` of this analysis."""
        return self.config_path_of(self.tree, self.grid)

    def config_lfn(self, stage: Stage, particle: Particle) -> str:
        """Where ``analysis.yaml`` goes next to the outputs of a stage (their provenance)."""
        return validate_lfn(posixpath.join(self.tree.lfn_data_dir(stage, particle),
                                           self.config_path.name))

    def store(self) -> Store:
        return Store(self.tree.state_db)

    def with_home(self, home: str | Callable[[], str]) -> Analysis:
        """This analysis with ``home`` (or what it returns: asked only when needed) as its grid
        home, where none is configured."""
        if self.tree.grid_home:
            return self
        if callable(home):
            home = home()
        tree = replace(self.tree, grid_home=home,
                       path_from_home=self.tree.path_from_home or self.grid.GRID.outdir)
        return Analysis(tree, self.grid, self.protopipe, self.pipeline)

    def backend_choice(self, asked: str | None, asked_root: Path | None, default: str,
                       default_root: Path) -> tuple[str, Path]:
        """The backend this analysis runs on, and the local backend's folder: what its
        metadata records (a different one asked for is refused, so that jobs and files are
        never looked for where they are not), else what is asked for, else the defaults."""
        metadata = load_metadata(self.tree.metadata_file)
        recorded = metadata.backend
        if recorded is not None and asked is not None and asked != recorded:
            raise InputError(f"{self.tree.metadata_file}: this analysis runs on the {recorded} "
                             f"backend, not {asked}",
                             "leave --backend out, or create another analysis for it")
        root = Path(metadata.local_root) if metadata.local_root else None
        if root and asked_root and asked_root.resolve() != root:
            raise InputError(f"{self.tree.metadata_file}: this analysis' local backend is in "
                             f"{root}, not {asked_root}", "leave --local-root out")
        return recorded or asked or default, root or (asked_root or default_root).resolve()

    def remember_backend(self, name: str, root: Path | None) -> None:
        """Record where this analysis runs in its metadata, unless it is recorded already
        (the first command that used a backend with it, and succeeded)."""
        metadata = load_metadata(self.tree.metadata_file)
        unknown = metadata.backend is None or (name == "local" and not metadata.local_root)
        if unknown and name in ("local", "dirac"):
            record_backend(self.tree.metadata_file, name, root)

    def config_hashes(self) -> dict[str, str]:
        """sha256 (first 16 digits) of every configuration file: provenance of each command."""
        hashes = {}
        for path in sorted(self.tree.configs.glob("*.yaml")):
            hashes[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return hashes

    # --- dataset lists ------------------------------------------------------------------------
    def list_file(self, stage: Stage, particle: Particle) -> Path:
        """The list file grid.yaml names for this stage and particle."""
        section = LIST_SECTIONS[stage]
        key = f"{particle.value}_list"
        if particle not in STAGE_PARTICLES[stage]:
            raise InputError(f"particle {particle.value!r} has no {stage.value} stage")
        value = str(getattr(getattr(self.grid, section), key))
        if is_unset(value):
            raise ConfigError(f"{self.tree.grid_config}: {section}.{key} is not set",
                              "run `protopipe-grid dataset split` or edit grid.yaml")
        return Path(value)

    def set_list_file(self, stage: Stage, particle: Particle, path: Path) -> bool:
        """Fill a list entry of grid.yaml still empty or a placeholder (comments kept);
        True if it changed."""
        section, key = LIST_SECTIONS[stage], f"{particle.value}_list"
        if not is_unset(getattr(getattr(self.grid, section), key)):
            return False
        set_yaml_values(self.tree.grid_config, {(section, key): str(path)})
        self.grid = load_grid(self.tree.grid_config)
        return True

    def split(self, inputs: Sequence[SplitInput], seed: int | None = None,
              overwrite: bool = False) -> list[tuple[StageList, bool]]:
        """Split list files into ``data/simtel/`` (every input and existing list checked
        first: see :func:`~.split.plan_split`) and name each new list in grid.yaml where its
        entry is still unset; return each list with whether grid.yaml now names it."""
        lists = split_files(inputs, self.tree.simtel_lists, seed, overwrite)
        return [(stage_list, self.set_list_file(stage_list.stage, stage_list.particle,
                                                stage_list.path)) for stage_list in lists]

    def split_from_catalog(self, backend: Backend, path: str, query: Mapping[str, str],
                           overwrite: bool = False) -> list[tuple[StageList, bool]]:
        """Stage lists from the catalog's own ``split`` metadata (``train_en``, ``train_cl``,
        ``test``, as CTADIRAC's ``cta-prod-split-dataset`` sets it): the files below ``path``
        matching ``query``, the split and the particle; named in grid.yaml where unset.
        Every list is found before any is written; an existing list with another content is
        refused unless ``overwrite``."""
        found = [StageList(particle, stage, self.tree.simtel_lists /
                           f"{particle.value}_{split}.list",
                           tuple(sorted(backend.find_files(path, {
                               **query, "split": split, "particle": particle.value}))))
                 for stage, split in SPLITS.items() for particle in STAGE_PARTICLES[stage]]
        found = [stage_list for stage_list in found if stage_list.lfns]
        if not found:
            raise InputError(f"no file below {path} has split metadata matching the query",
                             "check --path and --query (keys: split, particle, ...)")
        for stage_list in found:
            text = "".join(f"{lfn}\n" for lfn in stage_list.lfns)
            if (stage_list.path.is_file() and stage_list.path.read_text() != text
                    and not overwrite):
                raise InputError(f"{stage_list.path} exists with another content",
                                 "use --overwrite to replace it")
        self.tree.simtel_lists.mkdir(parents=True, exist_ok=True)
        for stage_list in found:
            write_lines(stage_list.path, stage_list.lfns)
        return [(stage_list, self.set_list_file(stage_list.stage, stage_list.particle,
                                                stage_list.path)) for stage_list in found]

    def model_method(self, model_type: str) -> str:
        """The model class analysis.yaml names for ``regressor`` or ``classifier``."""
        method = self.method(model_type)
        if not method:
            section = "EnergyRegressor" if model_type == "regressor" else "GammaHadronClassifier"
            raise InputError(f"{self.config_path}: {section}.method_name is not set",
                             f"the {model_type} needs a model class")
        return method

    def method(self, model_type: str) -> str | None:
        """The model class analysis.yaml names for ``regressor`` or ``classifier`` (or None)."""
        section = "EnergyRegressor" if model_type == "regressor" else "GammaHadronClassifier"
        value = ((self.protopipe.model_extra or {}).get(section) or {}).get("method_name")
        return None if not value or str(value).lower() == "none" else str(value)

    @property
    def cam_ids(self) -> tuple[str, ...]:
        return tuple(self.protopipe.General.cam_id_list)

    # --- plans --------------------------------------------------------------------------------
    def settings(self, stage: Stage, particle: Particle, output_se: str,
                 **overrides: object) -> PlanSettings:
        """Plan settings from grid.yaml and analysis.yaml; ``overrides`` win."""
        grid, general = self.grid.GRID, self.protopipe.General
        values: dict[str, object] = dict(
            analysis=general.config_name or self.tree.name,
            lfn_stage_dir=self.tree.lfn_data_dir(stage, particle),
            lfn_estimators=self.tree.lfn_estimators,
            analysis_config=str(self.config_path),
            cam_ids=self.cam_ids,
            output_se=grid.output_se or output_se,
            mode=self.grid.General.mode,
            files_per_job=grid.n_file_per_job,
            regressor_method=self.method("regressor"),
            classifier_method=self.method("classifier"),
            merge_script=str(MERGE_SCRIPT),
            cpu_time=grid.cpu_time,
            banned_sites=tuple(grid.banned_sites),
            max_jobs=grid.n_jobs_max,
            force_tailcut_for_extended_cleaning=(
                self.grid.General.force_tailcut_for_extended_cleaning),
        )
        values.update(overrides)
        return PlanSettings(**values)  # type: ignore[arg-type]

    @property
    def layout(self) -> Layout:
        """Where a ctapipe analysis' outputs go in the catalog (CTADIRAC's layout)."""
        return Layout(self.tree.lfn_root, self.grid.Ctapipe)

    def process_settings(self, output_se: str, **overrides: object) -> ProcessSettings:
        """A ctapipe analysis' plan settings, from grid.yaml; ``overrides`` win
        (``max_events``: ctapipe's ``--EventSource.max_events``)."""
        grid, section = self.grid.GRID, self.grid.Ctapipe
        options = tuple(section.process_options)
        if "max_events" in overrides:
            options += (f"--EventSource.max_events={overrides.pop('max_events')}",)
        values: dict[str, object] = dict(
            analysis=self.tree.name, layout=self.layout,
            configs=tuple(str(self.tree.configs / name) for name in section.process_configs),
            output_se=grid.output_se or output_se, options=options,
            files_per_job=grid.n_file_per_job, cpu_time=grid.cpu_time,
            banned_sites=tuple(grid.banned_sites), max_jobs=grid.n_jobs_max)
        values.update(overrides)
        return ProcessSettings(**values)  # type: ignore[arg-type]

    def plan_stage(self, backend: Backend, stage: Stage, particles: Sequence[Particle],
                   list_file: Path | None = None, **overrides: object) -> list[JobSpec]:
        """Every job of a stage, particle by particle (``list_file``: instead of grid.yaml's,
        for one particle); outputs go to ``GRID.output_se``, else the backend's first SE."""
        if list_file is not None and len(particles) != 1:
            raise InputError("--list needs exactly one --particle")
        se = backend.storage_elements()[0]
        return [spec for particle in stage_particles(stage, particles)
                for spec in self.plan(stage, particle, se, list_file, **overrides)]

    def legacy_stage(self, output_type: str) -> tuple[Stage, Particle]:
        """The stage and particle grid.yaml's ``General`` section selects for the original
        ``--output_type`` (TRAINING: energy, or classification with ``estimate_energy``)."""
        general, where = self.grid.General, self.tree.grid_config
        if general.particle is None:
            raise ConfigError(f"{where}: General.particle is not set",
                              "set it to gamma, proton or electron")
        stage = (Stage.DL2 if output_type == "DL2" else Stage.TRAINING_CLASSIFICATION
                 if general.estimate_energy else Stage.TRAINING_ENERGY)
        if general.particle not in STAGE_PARTICLES[stage]:
            allowed = ", ".join(p.value for p in STAGE_PARTICLES[stage])
            raise ConfigError(f"{where}: General.particle: {general.particle.value} has no "
                              f"{stage.value} stage (--output_type {output_type}, "
                              f"General.estimate_energy {general.estimate_energy})",
                              f"expected one of: {allowed}")
        return stage, general.particle

    def plan(self, stage: Stage, particle: Particle, output_se: str,
             list_file: Path | None = None, **overrides: object) -> list[JobSpec]:
        """Job specs for one stage and particle, from its list file (and the replica sites
        next to it, when ``dataset dump`` wrote them: each job then reads files of one site)."""
        path = list_file or self.list_file(stage, particle)
        if self.pipeline == "ctapipe":
            return plan_process_jobs(stage, particle, read_list(path),
                                     self.process_settings(output_se, **overrides),
                                     sites=read_replicas(path))
        return plan_jobs(stage, particle, read_list(path),
                         self.settings(stage, particle, output_se, **overrides),
                         sites=read_replicas(path))


def is_unset(value: object) -> bool:
    """True for a list entry of grid.yaml that names no list yet (empty, or the template's
    placeholder)."""
    return not value or str(value).endswith(PLACEHOLDER)


def stage_particles(stage: Stage, particles: Sequence[Particle] | None,
                    option: str = "--particle") -> list[Particle]:
    """The particles asked for (``option`` names them in errors), checked against the stage;
    all of the stage's when none is asked for."""
    allowed = STAGE_PARTICLES[stage]
    expected = ", ".join(p.value for p in allowed)
    for particle in particles or ():
        if particle not in allowed:
            raise InputError(f"{option} {particle.value}: not part of the {stage.value} stage",
                             f"expected one of: {expected}")
    return list(dict.fromkeys(particles)) if particles else list(allowed)
