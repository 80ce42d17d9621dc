"""Typed configuration: ``grid.yaml``, ``analysis_metadata.yaml``, and what we read of protopipe's
``analysis.yaml`` and model configs. Original files open unchanged; every error names the file
and the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .atomic import write_atomic
from .exceptions import ConfigError, InputError
from .models import FailureClass, JobStatus, Particle

M = TypeVar("M", bound=BaseModel)

CVMFS_CONDA_SETUP = "/cvmfs/cta.in2p3.fr/software/conda/dev/setupConda.sh"


class Section(BaseModel):
    """A configuration section: unknown keys are typos, and refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneralSection(Section):
    config_path: str = ""
    config_file: str = "analysis.yaml"
    mode: Literal["tail", "wave"] = "tail"
    particle: Particle | None = None
    estimate_energy: bool = False
    force_tailcut_for_extended_cleaning: bool = False


class GridSection(Section):
    user_name: str = ""
    home_grid: str = ""
    outdir: str = ""
    training_dir_energy: str = "data/TRAINING/for_energy_estimation"
    training_dir_classification: str = "data/TRAINING/for_particle_classification"
    model_dir: str = "estimators"
    dl2_dir: str = "data/DL2"
    n_file_per_job: int = Field(10, gt=0, le=100)
    n_jobs_max: int = Field(-1, ge=-1)
    upload_sites: list[str] = Field(default_factory=list)
    banned_sites: list[str] = Field(default_factory=list)
    # added by this tool (the original hard-coded them)
    output_se: str = ""
    cpu_time: int = Field(6 * 3600, gt=0)
    #: where a stage's canary job runs before the stage is first submitted: on the backend,
    #: on this machine in the payload environment, or not at all (``workflow/canary.py``)
    canary: Literal["backend", "local", "off"] = "backend"

    @field_validator("n_jobs_max")
    @classmethod
    def no_zero_jobs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (no limit) or a positive number of jobs")
        return value


class SoftwareSection(Section):
    """Where the payload (protopipe) runs: CVMFS conda on the grid, a local environment here."""

    conda_setup: str = CVMFS_CONDA_SETUP
    conda_env: str = "ctapipe_v0.11.0"
    #: a Python environment at this path on every worker node, instead of conda (test sites)
    worker_env: str = ""
    local_env: str = ""


class FailurePolicy(Section):
    """What ``run`` does with a job that failed for one class of reasons: submit it again as a
    new job (away from the site it failed at), up to ``attempts`` in all, waiting ``backoff``
    seconds before the first retry and twice as long before each next one; or stop its step."""

    action: Literal["retry", "stop"] = "retry"
    attempts: int = Field(3, ge=1, le=20)
    backoff: float = Field(60.0, ge=0)


#: the policy of each failure class when grid.yaml gives none (a class given in part keeps
#: the rest of its default)
DEFAULT_POLICIES: dict[FailureClass, dict[str, object]] = {
    FailureClass.INPUT_DATA: {"action": "retry", "attempts": 3, "backoff": 600},
    FailureClass.STALLED: {"action": "retry", "attempts": 3, "backoff": 60},
    FailureClass.WATCHDOG: {"action": "retry", "attempts": 2, "backoff": 60},
    FailureClass.UPLOAD: {"action": "retry", "attempts": 3, "backoff": 300},
    FailureClass.APPLICATION: {"action": "stop", "attempts": 1, "backoff": 0},
    FailureClass.RESCHEDULINGS: {"action": "retry", "attempts": 2, "backoff": 600},
    FailureClass.EMPTY_OUTPUT: {"action": "stop", "attempts": 1, "backoff": 0},
    FailureClass.UNKNOWN: {"action": "retry", "attempts": 2, "backoff": 300},
}

#: states a job may be held in, and for how long (seconds) before ``run`` flags it
DEFAULT_HELD_AFTER: dict[JobStatus, float] = {
    JobStatus.RECEIVED: 3600, JobStatus.CHECKING: 3600, JobStatus.STAGING: 86400,
    JobStatus.WAITING: 86400, JobStatus.MATCHED: 3600, JobStatus.STALLED: 3600,
    JobStatus.COMPLETING: 7200, JobStatus.COMPLETED: 86400,
}


class BlackHolePolicy(Section):
    """A site is banned for the rest of the analysis when, of its last ``window`` finished
    jobs (``min_jobs`` at least), more than ``failure_rate`` failed."""

    failure_rate: float = Field(0.8, gt=0, le=1)
    min_jobs: int = Field(5, ge=1)
    window: int = Field(50, ge=1)


class RunSection(Section):
    """How ``protopipe-grid run`` handles failures: a policy per failure class, black-hole
    sites, and how long a job may stay in each state before it is flagged as held."""

    poll_seconds: float = Field(60.0, gt=0)
    failures: dict[FailureClass, FailurePolicy] = Field(
        default_factory=lambda: {c: FailurePolicy.model_validate(p)
                                 for c, p in DEFAULT_POLICIES.items()})
    black_holes: BlackHolePolicy = Field(default_factory=BlackHolePolicy)
    held_after: dict[JobStatus, float] = Field(default_factory=lambda: dict(DEFAULT_HELD_AFTER))

    @field_validator("failures", mode="before")
    @classmethod
    def fill_policies(cls, value: object) -> object:
        """Each class given in part keeps the rest of its default; missing classes theirs."""
        if not isinstance(value, Mapping):
            return value
        given = {str(key): part for key, part in value.items()}
        return {c: {**DEFAULT_POLICIES[c], **(given.pop(c.value, None) or {})}
                for c in FailureClass} | given  # unknown classes left in: refused by name

    @field_validator("held_after", mode="before")
    @classmethod
    def fill_limits(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        return {**{s.value: limit for s, limit in DEFAULT_HELD_AFTER.items()}, **value}

    def policy(self, failure: FailureClass) -> FailurePolicy:
        return self.failures[failure]


class EnergyRegressorLists(Section):
    gamma_list: str = ""


class ClassifierLists(Section):
    gamma_list: str = ""
    proton_list: str = ""


class PerformanceLists(Section):
    gamma_list: str = ""
    proton_list: str = ""
    electron_list: str = ""


class CtapipeSection(Section):
    """How a ctapipe analysis processes its files, and the CTADIRAC metadata its outputs carry
    in the catalog (``workflow/ctapipe_catalog.py``): a ctapipe analysis' grid.yaml only."""

    #: ``ctapipe-process`` configurations (in the configs folder), in the order given
    process_configs: list[str] = Field(
        default_factory=lambda: ["base_config.yaml", "ml_preprocessing_config.yaml"])
    #: more ``ctapipe-process`` options, e.g. ``--SimTelEventSource.focal_length_choice=EQUIVALENT``
    process_options: list[str] = Field(default_factory=list)
    #: the production the simulation belongs to, and CTADIRAC's keys describing it
    MCCampaign: str = "PROD6"
    site: str = "LaPalma"
    array_layout: str = "Alpha"
    phiP: float = 180.0
    thetaP: float = 20.0
    nsb: int = 1
    configuration_id: int = 0


class GridConfig(Section):
    """``grid.yaml``: the original sections, plus optional ``Software`` and ``Ctapipe``
    sections."""

    General: GeneralSection = Field(default_factory=GeneralSection)
    GRID: GridSection = Field(default_factory=GridSection)
    Software: SoftwareSection = Field(default_factory=SoftwareSection)
    Run: RunSection = Field(default_factory=RunSection)
    EnergyRegressor: EnergyRegressorLists = Field(default_factory=EnergyRegressorLists)
    GammaHadronClassifier: ClassifierLists = Field(default_factory=ClassifierLists)
    Performance: PerformanceLists = Field(default_factory=PerformanceLists)
    Ctapipe: CtapipeSection = Field(default_factory=CtapipeSection)


class AnalysisMetadata(Section):
    """``analysis_metadata.yaml``, with the original's keys (spaces included), and where the
    analysis runs: its backend and, for the local one, its folder (recorded when the analysis
    is created or first used; absent from analyses made by the original tool)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    analyses_directory: str
    analysis_name: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    grid_is_dirac: bool = Field(False, alias="GRID is DIRAC")
    grid_home: str = Field("", alias="Home directory on the GRID")
    path_from_home: str = Field("", alias="analysis directory on the GRID from home")
    backend: Literal["local", "dirac"] | None = None
    local_root: str = Field("", alias="local backend folder")
    #: the payload pipeline the analysis runs (``analysis create --pipeline``)
    pipeline: Literal["protopipe", "ctapipe"] = "protopipe"

    def dump(self) -> dict[str, object]:
        """The mapping written to ``analysis_metadata.yaml`` (unset new keys, and protopipe,
        the default pipeline, left out)."""
        unset = {name for name in ("backend", "local_root") if not getattr(self, name)}
        if self.pipeline == "protopipe":
            unset.add("pipeline")
        return self.model_dump(by_alias=True, exclude=unset)


class AnalysisGeneral(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    config_name: str = ""
    cam_id_list: list[str] = Field(default_factory=list)


class AnalysisConfig(BaseModel):
    """The parts of protopipe's ``analysis.yaml`` we need."""

    model_config = ConfigDict(extra="allow", frozen=True)

    General: AnalysisGeneral = Field(default_factory=AnalysisGeneral)


class ModelGeneral(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    model_type: str = ""
    method_name: str = ""


class ModelConfig(BaseModel):
    """The parts of protopipe's ``RandomForestRegressor.yaml`` / classifier configs we need."""

    model_config = ConfigDict(extra="allow", frozen=True)

    General: ModelGeneral = Field(default_factory=ModelGeneral)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing or malformed file is a one-line ConfigError."""
    try:
        return yaml.safe_load(read_text(path, "configuration file"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None


def set_yaml_values(path: Path, values: Mapping[tuple[str, ...], object]) -> bool:
    """Set values of a YAML file, each named by its keys (``("GRID", "n_file_per_job")``),
    changing only the text of those values: comments, quotes, spelling and layout of
    everything else stay byte for byte. Each value must be written on its key's line (a
    scalar or a ``[...]`` list). True if anything changed."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    text = read_text(path)
    try:
        document = YAML().load(text)
    except YAMLError:
        raise ConfigError(f"{path}: not valid YAML") from None
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []
    for keys, value in values.items():
        *parents, key = keys
        mapping = document
        for parent in parents:
            mapping = mapping.get(parent) if isinstance(mapping, CommentedMap) else None
        if not isinstance(mapping, CommentedMap) or key not in mapping:
            raise ConfigError(f"{path}: {'.'.join(keys)}: not found")
        if mapping[key] == value:
            continue
        line, column = mapping.lc.value(key)  # ruamel knows where each key and value is
        if line != mapping.lc.key(key)[0]:
            raise ConfigError(f"{path}: {'.'.join(keys)}: expected its value on the key's line",
                              f"write it as {key}: {json.dumps(value)}")
        end = value_end(lines[line], column)
        if end < 0:
            raise ConfigError(f"{path}: {'.'.join(keys)}: expected its value on the key's line",
                              "set the keys inside it one by one")
        edits.append((line, column, end, json.dumps(value)))
    for line, column, end, replacement in sorted(edits, reverse=True):
        lines[line] = lines[line][:column] + replacement + lines[line][end:]
    if edits:
        write_atomic(path, "".join(lines))
    return bool(edits)


def value_end(line: str, start: int) -> int:
    """Where the YAML value starting at ``start`` of ``line`` ends: after its closing quote or
    bracket, or before a comment or the end of the line; -1 for a bracket not closed on the
    line (a value written on several lines)."""
    index, depth = start, 0
    while index < len(line):
        char = line[index]
        if char in "\"'":
            close = line.find(char, index + 1)
            index = len(line) if close < 0 else close + 1
            if depth == 0:
                return index
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return index + 1
        elif depth == 0 and (char == "\n" or char == "#" and line[index - 1] in " \t"):
            break
        index += 1
    return -1 if depth else len(line[:index].rstrip())


def read_text(path: Path, what: str = "file") -> str:
    """A text file's content; a missing, unreadable or non-UTF-8 file is a one-line error
    naming it (``what``: the kind of file, for the message)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


def describe_validation_error(path: Path, error: ValidationError) -> str:
    """One line: the file, the dotted key, and what was expected."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    extra = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{path}: {key}: {message}{extra}"


def load(path: Path, model: type[M]) -> M:
    """Read ``path`` into ``model``."""
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(Path(path), exc)) from None


def load_grid(path: Path) -> GridConfig:
    return load(path, GridConfig)


def load_metadata(path: Path) -> AnalysisMetadata:
    return load(path, AnalysisMetadata)


def load_analysis(path: Path) -> AnalysisConfig:
    return load(path, AnalysisConfig)


def load_model_config(path: Path) -> ModelConfig:
    return load(path, ModelConfig)
