"""What the payload needs of an analysis, checked before any job leaves.

protopipe 0.5 checks its configuration only inside each job (``site``, ``array`` and
``production`` in ``scripts/data_training.py`` and ``write_dl2.py``; the cleaning of each camera
when the event preparer starts): a mistake there fails every job of a campaign. Here the same
rules run on this machine first, over ``analysis.yaml``, the model configs and
``performance.yaml``; each problem is one line naming the file and the key.

The inputs are checked too: every input file and model of a plan must be in the catalog with a
replica (one bulk catalog query per thousand files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import read_yaml
from ..exceptions import ConfigError, DataError
from ..iterutils import chunked
from ..models import JobSpec, Particle
from .consistency import overlaps
from .performance import TEMPLATE_SHOWERS

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..store import Store
    from .analysis import Analysis

PRODUCTIONS = ("Prod3b", "Prod5N")
SITES = ("north", "south")
#: the camera types of CTA's productions, as ctapipe 0.11 names them
CAMERAS = ("ASTRICam", "CHEC", "DigiCam", "FlashCam", "LSTCam", "NectarCam", "SCTCam")
#: the subarrays protopipe names (``pipeline/utils.py``: ``prod3b_array``, ``prod5N_array``);
#: Prod5N also knows ``full_array_<type>`` and ``prod5N_alpha_<site>_subarray_<type>``
ARRAYS = {
    "Prod3b": ("full_array", "subarray_LSTs", "subarray_MSTs", "subarray_SSTs"),
    "Prod5N": ("full_array", "prod5N_alpha_north", "prod5N_alpha_south",
               "prod5N_alpha_south_NectarCam"),
}
PROD5N_SITE_ARRAYS = {"north": ("prod5N_alpha_north",),
                      "south": ("prod5N_alpha_south", "prod5N_alpha_south_NectarCam")}
#: what ``protopipe-MODEL`` reads of a model config (``scripts/build_model.py``)
MODEL_KEYS = ("General.cam_id_list", "Split.train_fraction", "Method.name", "Method.target_name",
              "Method.tuned_parameters", "FeatureList.Basic", "FeatureList.Derived",
              "SigFiducialCuts", "GridSearchCV.use")
#: what ``protopipe-DL3-EventDisplay`` reads of performance.yaml besides particle_information
PERFORMANCE_KEYS = ("analysis.obs_time.value", "analysis.obs_time.unit",
                    "analysis.cut_on_multiplicity", "analysis.alpha", "analysis.max_bg_radius",
                    "analysis.reconstructed_energy.min", "analysis.reconstructed_energy.max",
                    "analysis.reconstructed_energy.bins_per_decade",
                    "analysis.true_energy.min", "analysis.true_energy.max",
                    "analysis.true_energy.bins_per_decade")
PARTICLE_KEYS = ("e_min", "e_max", "gen_radius", "gen_gamma", "diff_cone")


@dataclass(frozen=True)
class Problem:
    """One thing the payload would fail on (or compute wrongly with)."""

    path: Path
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.key}: {self.message}"


MISSING = object()


def lookup(document: Any, key: str) -> Any:
    """The value at a dotted ``key`` of a parsed YAML document, or :data:`MISSING`."""
    value = document
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def empty(value: Any) -> bool:
    return value is MISSING or value is None or value == "" or value == []


def analysis_problems(path: Path, document: Any, mode: str) -> list[Problem]:
    """``analysis.yaml``: what protopipe 0.5 needs to pick the telescopes and clean images."""
    found: list[Problem] = []

    def problem(key: str, message: str) -> None:
        found.append(Problem(path, key, message))

    production, site, array = (lookup(document, f"General.{key}")
                               for key in ("production", "site", "array"))
    if production not in PRODUCTIONS:
        problem("General.production", f"{shown(production)} is not a production protopipe "
                f"knows (expected {' or '.join(map(repr, PRODUCTIONS))})")
    if not isinstance(site, str) or site.lower() not in SITES:
        problem("General.site", f"{shown(site)} is not a site (expected 'north' or 'south')")
    if empty(array):
        problem("General.array", "empty (expected a list of telescope IDs or a subarray name "
                f"such as {ARRAYS['Prod3b'][0]!r})")
    elif isinstance(array, list):
        if not all(isinstance(tel, int) and not isinstance(tel, bool) and tel > 0
                   for tel in array):
            problem("General.array", "expected positive telescope IDs")
    elif isinstance(array, str) and production in ARRAYS:
        if not known_array(array, production):
            problem("General.array", f"{array!r} is not a {production} subarray protopipe "
                    f"knows (expected a list of telescope IDs or one of "
                    f"{', '.join(ARRAYS[production])})")
        elif production == "Prod5N" and array.startswith("prod5N_alpha_") and \
                isinstance(site, str) and site in PROD5N_SITE_ARRAYS and \
                not any(array.startswith(name) for name in PROD5N_SITE_ARRAYS[site]):
            problem("General.array", f"{array!r} is not a subarray of the {site} site")
    elif not isinstance(array, str):
        problem("General.array", "expected a list of telescope IDs or a subarray name")

    cameras = lookup(document, "General.cam_id_list")
    if empty(cameras) or not isinstance(cameras, list):
        problem("General.cam_id_list", "empty (expected the camera types of the array, "
                f"e.g. [LSTCam, NectarCam]; known: {', '.join(CAMERAS)})")
        cameras = []
    for camera in cameras:
        if camera not in CAMERAS:
            problem("General.cam_id_list", f"{shown(camera)} is not a camera type "
                    f"(expected some of {', '.join(CAMERAS)})")
    known = [c for c in cameras if c in CAMERAS]
    for cleaning in ("biggest", "extended"):
        key = f"ImageCleaning.{cleaning}.{mode}"
        section = lookup(document, key)
        if not isinstance(section, Mapping):
            problem(key, f"missing (grid.yaml's General.mode is {mode!r})")
            continue
        configured = cleaning_cameras(section, mode)
        for camera in known:
            if camera not in configured:
                problem(key, f"no cleaning for {camera} (it is in General.cam_id_list)")
    for section, example in (("EnergyRegressor", "RandomForestRegressor"),
                             ("GammaHadronClassifier", "RandomForestClassifier")):
        if empty(lookup(document, f"{section}.method_name")):
            problem(f"{section}.method_name", f"empty (expected a model class, e.g. {example})")
    return found


def known_array(array: str, production: str) -> bool:
    if array in ARRAYS[production]:
        return True
    return production == "Prod5N" and (array.startswith("full_array_") or any(
        array.startswith(f"{name}_subarray_") for name in ARRAYS["Prod5N"][1:3]))


def cleaning_cameras(section: Mapping[str, Any], mode: str) -> set[str]:
    """The cameras a cleaning section configures (tail: a list of one-key thresholds; wave:
    ``options`` per camera)."""
    if mode == "wave":
        options = section.get("options")
        return set(options) if isinstance(options, Mapping) else set()
    thresholds = section.get("thresholds")
    if not isinstance(thresholds, list):
        return set()
    return {camera for item in thresholds if isinstance(item, Mapping) for camera in item}


def model_problems(path: Path, document: Any, model_type: str, method: str) -> list[Problem]:
    """A model config (``<method>.yaml``): what ``protopipe-MODEL`` reads."""
    keys = [*MODEL_KEYS, *(("BkgFiducialCuts",) if model_type == "classifier" else ())]
    found = [Problem(path, key, "missing") for key in keys if lookup(document, key) is MISSING]
    name = lookup(document, "Method.name")
    if isinstance(name, str) and name.rpartition(".")[2] != method:
        found.append(Problem(path, "Method.name", f"{name!r} is not the {method} that "
                             "analysis.yaml names (the models are looked for by that name)"))
    return found


def performance_problems(path: Path, document: Any, template: bool = True) -> list[Problem]:
    """``performance.yaml``: the analysis settings and each particle's simulation (and, with
    ``template``, protopipe's example shower numbers: before the DL2 files exist to say
    whether they are right)."""
    found = [Problem(path, key, "missing") for key in PERFORMANCE_KEYS
             if empty(lookup(document, key))]
    for particle in Particle:
        base = f"particle_information.{particle.value}"
        found += [Problem(path, f"{base}.{key}", "missing") for key in PARTICLE_KEYS
                  if empty(lookup(document, f"{base}.{key}"))]
        numbers = (lookup(document, f"{base}.num_use"), lookup(document, f"{base}.num_showers"))
        if template and numbers == TEMPLATE_SHOWERS[particle]:
            found.append(Problem(path, f"{base}.num_use, num_showers", f"{numbers[0]} x "
                                 f"{numbers[1]} are protopipe's example numbers (leave them "
                                 "empty to have them derived from the merged DL2 files, or "
                                 "write your production's)"))
    return found


def config_problems(analysis: Analysis) -> list[Problem]:
    """Every problem of the analysis' payload configuration (see the module docstring)."""
    if analysis.pipeline == "ctapipe":
        return [Problem(analysis.tree.grid_config, "Ctapipe.process_configs",
                        f"{name}: not found in {analysis.tree.configs}")
                for name in analysis.grid.Ctapipe.process_configs
                if not (analysis.tree.configs / name).is_file()]
    mode = analysis.grid.General.mode
    found = analysis_problems(analysis.config_path, read_yaml(analysis.config_path), mode)
    for model_type in ("regressor", "classifier"):
        method = analysis.method(model_type)
        if method:
            path = analysis.tree.configs / f"{method}.yaml"
            if not path.is_file():
                found.append(Problem(path, "(file)", f"not found (the {model_type} config "
                                     f"analysis.yaml names)"))
            else:
                found += model_problems(path, read_yaml(path), model_type, method)
    performance = analysis.tree.configs / "performance.yaml"
    if performance.is_file():
        found += performance_problems(performance, read_yaml(performance))
    else:
        found.append(Problem(performance, "(file)", "not found"))
    return found


def check_analysis(analysis: Analysis, store: Store | None) -> None:
    """Checked before any plan: the configuration, and files in two stages of a particle
    (``store``: the jobs already submitted count, if there is one)."""
    problems = [*map(str, config_problems(analysis)), *overlaps(analysis, store)]
    if problems:
        raise ConfigError("\n".join(problems),
                          "fix these first: every job would fail, or compute with wrong numbers")
    if analysis.pipeline == "ctapipe":  # the training's outputs are what the IRF step reads
        from .ctapipe_configs import check_configs

        check_configs(analysis.tree.configs)


def check_performance(analysis: Analysis) -> None:
    """What the performance step needs of performance.yaml (its shower numbers are checked
    against the DL2 files by :func:`~.performance.normalise`)."""
    path = analysis.tree.configs / "performance.yaml"
    problems = performance_problems(path, read_yaml(path), template=False)
    if problems:
        raise ConfigError("\n".join(map(str, problems)))


def missing_inputs(backend: Backend, specs: Iterable[JobSpec]) -> list[str]:
    """The input files and models of ``specs`` not in the backend's catalog with a replica, in
    the order the plan needs them."""
    wanted = list(dict.fromkeys(lfn for spec in specs
                                for lfn in (*spec.input_lfns, *spec.input_data)))
    missing: list[str] = []
    for chunk in chunked(wanted, 1000):
        found = backend.metadata(chunk)
        missing += [lfn for lfn in chunk if lfn not in found or not found[lfn].replicas]
    return missing


def check_inputs(backend: Backend, specs: Sequence[JobSpec], shown_at_most: int = 10) -> None:
    """Refuse a plan whose inputs are not all in the catalog: the missing ones on a line each
    (the first ``shown_at_most``)."""
    missing = missing_inputs(backend, specs)
    if not missing:
        return
    lines = [f"{lfn}: not in the {backend.name} catalog (or without a replica)"
             for lfn in missing[:shown_at_most]]
    if len(missing) > shown_at_most:
        lines.append(f"... and {len(missing) - shown_at_most} more of "
                     f"{len({lfn for s in specs for lfn in (*s.input_lfns, *s.input_data)})} "
                     "input files")
    raise DataError("\n".join(lines), "register them, or remove them from the list "
                    "(dataset dump writes lists of what exists)")


def shown(value: Any) -> str:
    return "empty" if empty(value) else repr(value)
