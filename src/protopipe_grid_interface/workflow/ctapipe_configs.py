"""The ctapipe profile's configuration files: written by ``ctapipe-quickstart``, then aligned.

The chain reads its models' outputs by column prefix: the energy regressor writes
``<prefix>_energy`` and ``<prefix>_is_valid`` (the prefix is the regressor's ``prefix``, else
its ``model_cls``), the classifier ``<prefix>_prediction``. quickstart's training configs train
``ExtraTrees*`` models, but its optimisation and IRF configs read ``RandomForest*`` columns;
:func:`align` makes the latter follow the former, keeping comments (ruamel.yaml). compute-irf
refuses point-like gammas binned in more than one field-of-view offset bin, so their configs
get one bin. :func:`check_configs` refuses a folder whose files disagree.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..config import read_text, read_yaml
from ..exceptions import ConfigError, InputError
from .local_steps import PAYLOAD_SCRIPTS, run_payload

#: what ``ctapipe-process`` reads to write DL1 parameters and DL2 geometry (what training needs;
#: quickstart's stage2 config alone writes no DL1 parameters)
PROCESS_CONFIGS = ("base_config.yaml", "ml_preprocessing_config.yaml")
ENERGY_CONFIG = "train_energy_regressor.yaml"
CLASSIFIER_CONFIG = "train_particle_classifier.yaml"
OPTIMISE_CONFIG = "optimize_cuts.yaml"
IRF_CONFIG = "compute_irf.yaml"
REQUIRED = (*PROCESS_CONFIGS, ENERGY_CONFIG, CLASSIFIER_CONFIG, OPTIMISE_CONFIG, IRF_CONFIG)
#: the tool section of each file read by the chain's selection tools
SELECTION_TOOLS = {OPTIMISE_CONFIG: "EventSelectionOptimizer", IRF_CONFIG: "IrfTool"}
#: ctapipe 0.32's defaults of DL2EventPreprocessor (what a config that omits them reads)
PREPROCESSOR_DEFAULTS = {"energy_reconstructor": "RandomForestRegressor",
                         "geometry_reconstructor": "HillasReconstructor",
                         "gammaness_classifier": "RandomForestClassifier"}
VALID_COLUMN = re.compile(r"\b(\w+?)_is_valid\b")


@dataclass(frozen=True)
class Contact:
    """Who produced the data: written by ctapipe into every output file's provenance."""

    name: str
    email: str
    organisation: str


@dataclass(frozen=True)
class Prefixes:
    """The column prefixes the chain's models and geometry reconstruction write."""

    energy: str
    classifier: str
    geometry: str


def write_configs(env: Path, folder: Path, contact: Contact, *, gamma_diffuse: bool = False,
                  overwrite: bool = False, workdir: Path | None = None) -> list[Path]:
    """Write quickstart's configs into ``folder``, aligned end to end; return the files.

    Order of work: refuse an empty contact field, or files already in ``folder`` (unless
    ``overwrite``); run ``ctapipe-quickstart`` in ``env`` through ``ctapipe_job.py`` in
    ``workdir`` (else a temporary folder), its log ``folder/ctapipe-quickstart.log``; copy the
    YAML files it wrote; align the selection configs (:func:`align`: one FoV offset bin unless
    ``gamma_diffuse``); check them (:func:`check_configs`).

    A ``workdir`` shared with the later steps saves them time: importing ctapipe fills its
    numba cache (about 20 s, paid once per cache folder).
    """
    for field, value in vars(contact).items():
        if not value.strip():
            raise InputError(f"contact {field}: empty", "ctapipe writes it into every output")
    folder = Path(folder)
    refuse_existing([folder / name for name in REQUIRED], overwrite)  # before 20 s of work
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ctapipe-quickstart-", dir=folder) as scratch:
        work = Path(scratch)
        cwd = work if workdir is None else Path(workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        argv = ["python", str(PAYLOAD_SCRIPTS / "ctapipe_job.py"), "ctapipe-quickstart",
                "--workdir", str(work / "configs"), "--name", contact.name,
                "--email", contact.email, "--org", contact.organisation,
                "--provenance-log", str(work / "provenance.log")]
        run_payload(env, argv, folder / "ctapipe-quickstart.log", cwd=cwd)
        sources = sorted((work / "configs").glob("*.yaml"))
        missing = [name for name in REQUIRED if not (work / "configs" / name).is_file()]
        if missing:
            raise ConfigError(f"ctapipe-quickstart wrote no {missing[0]}",
                              f"see {folder / 'ctapipe-quickstart.log'}")
        refuse_existing([folder / source.name for source in sources], overwrite)
        written = copy_configs(work / "configs", folder)
    align(folder, gamma_diffuse=gamma_diffuse)
    check_configs(folder)
    return written


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Refuse to replace a file unless ``overwrite``."""
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        raise InputError(f"{existing[0]}: already there", "pass overwrite to replace it")


def model_prefixes(folder: Path) -> Prefixes:
    """The prefixes the training and process configs in ``folder`` produce."""
    energy = trained_prefix(Path(folder) / ENERGY_CONFIG, "TrainEnergyRegressor",
                            "EnergyRegressor")
    classifier = trained_prefix(Path(folder) / CLASSIFIER_CONFIG, "TrainParticleClassifier",
                                "ParticleClassifier")
    return Prefixes(energy, classifier, geometry_prefix(folder))


def trained_prefix(path: Path, tool: str, component: str) -> str:
    """The column prefix a training config's model writes: ``prefix``, else ``model_cls``."""
    section = component_section(read_mapping(path), tool, component)
    value = section.get("prefix") or section.get("model_cls")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: {tool}.{component}.model_cls: not set",
                          "name a scikit-learn model, e.g. ExtraTreesRegressor")
    return value


def geometry_prefix(folder: Path) -> str:
    """The first ``ShowerProcessor.reconstructor_types`` of the process configs (the last
    file that sets it wins, as in ctapipe); ctapipe's default if none does."""
    found = "HillasReconstructor"
    for name in PROCESS_CONFIGS:
        path = Path(folder) / name
        section = component_section(read_mapping(path), "ProcessorTool", "ShowerProcessor")
        types = section.get("reconstructor_types")
        if types:
            if not isinstance(types, list) or not isinstance(types[0], str):
                raise ConfigError(f"{path}: ShowerProcessor.reconstructor_types: not a list of "
                                  "names")
            found = types[0]
    return found


def align(folder: Path, *, gamma_diffuse: bool = False) -> list[Path]:
    """Make the optimisation and IRF configs in ``folder`` read the columns the training and
    process configs produce; without ``gamma_diffuse`` (point-like gammas) give compute-irf a
    single FoV offset bin. Comments and layout are kept; return the files changed."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    prefixes = model_prefixes(folder)
    wanted = {"energy_reconstructor": prefixes.energy,
              "geometry_reconstructor": prefixes.geometry,
              "gammaness_classifier": prefixes.classifier}
    changed = []
    for name, tool in SELECTION_TOOLS.items():
        path = Path(folder) / name
        document = load_round_trip(path)
        section = preprocessor(document, tool)
        if section is None:
            section = CommentedMap()
            document["DL2EventPreprocessor"] = section
        renames = {str(section.get(key, PREPROCESSOR_DEFAULTS[key])): value
                   for key, value in wanted.items()}
        edited = False
        for key, value in wanted.items():
            if section.get(key) != value:
                section[key] = value
                edited = True
        criteria = component_section(section, "", "DL2EventQualityQuery").get(
            "quality_criteria") or []
        for criterion in criteria:
            if isinstance(criterion, CommentedSeq) and len(criterion) == 2:
                renamed = rename_valid_columns(str(criterion[1]), renames)
                if renamed != criterion[1]:
                    criterion[1] = renamed
                    edited = True
        if name == IRF_CONFIG and not gamma_diffuse:
            for key, mapping in fov_bin_settings(document):
                if mapping.get(key) != 1:
                    mapping[key] = 1
                    edited = True
        if edited:
            dump_round_trip(path, document)
            changed.append(path)
    return changed


def check_configs(folder: Path) -> None:
    """Refuse a config folder the chain cannot run: a required file missing, or a selection
    config reading other columns than the training and process configs produce."""
    folder = Path(folder)
    for name in REQUIRED:
        if not (folder / name).is_file():
            raise ConfigError(f"{folder / name}: not found",
                              "write the configs with ctapipe-quickstart first")
    writer: dict[str, Any] = {}
    for name in PROCESS_CONFIGS:
        writer.update(component_section(read_mapping(folder / name), "ProcessorTool",
                                        "DataWriter"))
    for key in ("write_dl1_parameters", "write_dl2"):
        if writer.get(key) is not True:
            raise ConfigError(f"{folder / PROCESS_CONFIGS[-1]}: DataWriter.{key}: not true",
                              "training needs DL1 parameters and DL2 geometry")
    prefixes = model_prefixes(folder)
    expected = {"energy_reconstructor": (prefixes.energy, ENERGY_CONFIG),
                "geometry_reconstructor": (prefixes.geometry, PROCESS_CONFIGS[0]),
                "gammaness_classifier": (prefixes.classifier, CLASSIFIER_CONFIG)}
    for name, tool in SELECTION_TOOLS.items():
        section = preprocessor(read_mapping(folder / name), tool) or {}
        for key, (value, source) in expected.items():
            found = section.get(key, PREPROCESSOR_DEFAULTS[key])
            if found != value:
                raise ConfigError(f"{folder / name}: DL2EventPreprocessor.{key}: {found!r}, but "
                                  f"{source} produces {value!r}", f"set it to {value!r}")
        criteria = component_section(section, "", "DL2EventQualityQuery").get(
            "quality_criteria") or []
        for criterion in criteria:
            expression = criterion[1] if isinstance(criterion, list) and len(criterion) == 2 else ""
            for column in VALID_COLUMN.findall(str(expression)):
                if column not in (prefixes.energy, prefixes.classifier, prefixes.geometry):
                    raise ConfigError(
                        f"{folder / name}: DL2EventPreprocessor.DL2EventQualityQuery."
                        f"quality_criteria: {column}_is_valid is not a column of the chain",
                        f"models: {prefixes.energy}, {prefixes.classifier}")
    classifier = component_section(read_mapping(folder / CLASSIFIER_CONFIG),
                                   "TrainParticleClassifier", "ParticleClassifier")
    energy_columns = {f"{prefixes.energy}_energy", f"{prefixes.energy}_tel_energy"}
    for feature in classifier.get("features") or []:
        if (isinstance(feature, str) and feature.endswith("_energy")
                and feature != "true_energy" and feature not in energy_columns):
            raise ConfigError(f"{folder / CLASSIFIER_CONFIG}: TrainParticleClassifier."
                              f"ParticleClassifier.features: {feature}, but {ENERGY_CONFIG} "
                              f"produces {prefixes.energy}_energy")


def rename_valid_columns(expression: str, renames: Mapping[str, str]) -> str:
    """``expression`` with each ``<old>_is_valid`` column renamed to ``<new>_is_valid``."""
    return VALID_COLUMN.sub(
        lambda match: f"{renames.get(match.group(1), match.group(1))}_is_valid", expression)


def read_mapping(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping (an empty file is an empty mapping)."""
    document = read_yaml(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a mapping of configuration sections")
    return document


def component_section(document: Mapping[str, Any], tool: str, component: str
                      ) -> Mapping[str, Any]:
    """A component's section: nested in its tool's section, else at the top (ctapipe reads
    both); empty if neither."""
    for parent in (document.get(tool) if tool else None, document):
        if isinstance(parent, Mapping) and isinstance(parent.get(component), Mapping):
            return parent[component]  # type: ignore[no-any-return]
    return {}


def preprocessor(document: Any, tool: str) -> Any:
    """The ``DL2EventPreprocessor`` section of a selection config, or None."""
    section = component_section(document, tool, "DL2EventPreprocessor")
    return section if section else None


def fov_bin_settings(document: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(key, section)`` of each ``fov_offset_n_bins`` of compute-irf's config (the default
    bins, and any maker that sets its own); the default section is added if missing."""
    from ruamel.yaml.comments import CommentedMap

    if "DefaultFoVOffsetBins" not in document and isinstance(document, CommentedMap):
        document["DefaultFoVOffsetBins"] = CommentedMap()
    for name, section in document.items():
        if isinstance(section, Mapping) and (name == "DefaultFoVOffsetBins"
                                             or "fov_offset_n_bins" in section):
            yield "fov_offset_n_bins", section


def round_trip() -> Any:
    """A ruamel.yaml round-trip parser that keeps comments, quotes and ``null``."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def load_round_trip(path: Path) -> Any:
    """A YAML mapping with its comments, for :func:`dump_round_trip`."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    try:
        document = round_trip().load(read_text(path, "configuration file"))
    except YAMLError:
        raise ConfigError(f"{path}: not valid YAML") from None
    if document is None:
        return CommentedMap()
    if not isinstance(document, CommentedMap):
        raise ConfigError(f"{path}: not a mapping of configuration sections")
    return document


def dump_round_trip(path: Path, document: Any) -> None:
    """Write a document read by :func:`load_round_trip`, whole or not at all."""
    stream = StringIO()
    round_trip().dump(document, stream)
    write_atomic(path, stream.getvalue())


def copy_configs(source: Path, folder: Path) -> list[Path]:
    """Copy the YAML configs of ``source`` into ``folder`` (each whole or not at all)."""
    written = []
    for path in sorted(Path(source).glob("*.yaml")):
        write_atomic(Path(folder) / path.name, path.read_bytes())
        written.append(Path(folder) / path.name)
    return written

