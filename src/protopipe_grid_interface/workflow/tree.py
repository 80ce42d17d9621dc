"""Create an analysis: folders, metadata and filled configuration templates.

Does what ``protopipe-CREATE_ANALYSIS`` did: ``shared_folder/{analyses,productions}``, the
analysis tree, ``analysis_metadata.yaml``, ``configs/grid.yaml`` from our template and every
``*.yaml`` of protopipe's installed example configs with ``ANALYSES_DIRECTORY`` and
``ANALYSIS_NAME`` filled in, the workflow file ``run`` follows, and performance.yaml's
``num_use`` and ``num_showers`` set to null (derived from the DL2 files). Nothing existing is
overwritten without ``overwrite``. A ctapipe analysis (``pipeline``) gets grid.yaml's
``Ctapipe`` section, its own workflow file and ctapipe's configurations instead
(:func:`create_ctapipe_analysis`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import ValidationError

from ..atomic import write_atomic
from ..config import AnalysisMetadata, describe_validation_error, load_metadata, read_yaml
from ..exceptions import ConfigError, InputError
from ..paths import CTAPIPE_WORK, STANDARD_TREE, AnalysisTree, analyses_directory, create_paths
from . import steps

if TYPE_CHECKING:
    from .ctapipe_configs import Contact
from .performance import null_shower_counts


def fill(text: str, replacements: Mapping[str, str]) -> str:
    """Replace each placeholder, in order, then expand environment variables (as the original)."""
    for old, new in replacements.items():
        text = text.replace(old, new)
    return os.path.expandvars(text)


def create_analysis(
    output_path: Path,
    name: str,
    templates: Path | None,
    workflow_tree: Mapping[str, object] | None = None,
    grid_is_dirac: bool = False,
    grid_home: str = "",
    path_from_home: str = "",
    overwrite: bool = False,
    backend: str | None = None,
    local_root: Path | None = None,
    pipeline: Literal["protopipe", "ctapipe"] = "protopipe",
) -> AnalysisTree:
    """Create the analysis ``name`` under ``<output_path>/shared_folder/analyses``; with
    ``backend`` (and ``local_root`` for the local one), record where it runs."""
    output_path = Path(output_path).resolve()
    analyses = analyses_directory(output_path)
    shared = analyses.parent
    try:
        metadata = AnalysisMetadata(
            analyses_directory=str(analyses), analysis_name=name,
            grid_is_dirac=grid_is_dirac or backend == "dirac", grid_home=grid_home,
            path_from_home=path_from_home, backend=backend,
            local_root=str(Path(local_root).resolve()) if local_root and backend == "local"
            else "", pipeline=pipeline)
    except ValidationError as exc:
        raise InputError(describe_validation_error(Path("analysis name"), exc)) from None
    tree = AnalysisTree(analyses, name, grid_home, path_from_home)
    if tree.root.exists() and not overwrite:
        raise InputError(f"{tree.root}: analysis already exists",
                         "use --overwrite-analysis to fill it again")
    if templates is not None and not Path(templates).is_dir():
        raise InputError(f"{templates}: protopipe example configuration folder not found")
    folders = create_paths(workflow_tree if workflow_tree is not None else STANDARD_TREE)

    for folder in (shared, analyses, shared / "productions", tree.root):
        folder.mkdir(parents=True, exist_ok=True)
    for relative in folders:
        (tree.root / relative).mkdir(parents=True, exist_ok=True)
    tree.configs.mkdir(exist_ok=True)

    user_name = grid_home.rstrip("/").split("/")[-1] if grid_is_dirac and grid_home else ""
    data = files("protopipe_grid_interface").joinpath("data")
    grid_template = data.joinpath("grid.yaml").read_text()
    if pipeline == "ctapipe":
        grid_template += data.joinpath("grid-ctapipe.yaml").read_text()
    write_atomic(tree.grid_config, fill(grid_template, {
        "ANALYSIS_NAME": name,
        "LOCAL": str(output_path),
        'user_name: ""': f'user_name: "{user_name}"',
        'home_grid: ""': f'home_grid: "{grid_home}"',
        'outdir: ""': f'outdir: "{path_from_home}"',
    }))
    if templates is not None:
        for template in sorted(Path(templates).glob("*.yaml")):
            write_atomic(tree.configs / template.name, fill(template.read_text(), {
                "ANALYSES_DIRECTORY": str(analyses),
                "ANALYSIS_NAME": name,
            }))
        performance_config = tree.configs / "performance.yaml"
        if performance_config.is_file():  # derived from the DL2 files, unless the user sets them
            null_shower_counts(performance_config)
    write_atomic(tree.root / steps.FILE_NAME, steps.template(pipeline))
    write_atomic(tree.metadata_file, yaml.safe_dump(metadata.dump()))
    return tree


def create_ctapipe_analysis(output_path: Path, name: str, env: Path, contact: Contact, *,
                            gamma_diffuse: bool = False, **options: Any) -> AnalysisTree:
    """A ctapipe analysis: :func:`create_analysis`, then ctapipe's configurations from
    ``ctapipe-quickstart`` in ``env``, made consistent end to end (``ctapipe_configs.py``;
    ``gamma_diffuse``: IRFs over several field-of-view offsets, for diffuse test gammas)."""
    from .ctapipe_configs import write_configs

    tree = create_analysis(output_path, name, None, pipeline="ctapipe", **options)
    write_configs(env, tree.configs, contact, gamma_diffuse=gamma_diffuse,
                  overwrite=bool(options.get("overwrite")), workdir=tree.root / CTAPIPE_WORK)
    return tree


def create_pipeline_analysis(output_path: Path, name: str, pipeline: str,
                             payload_env: Path | None, contact: Sequence[str] | None,
                             **options: Any) -> AnalysisTree:
    """``analysis create``: a protopipe analysis from the example configurations of its
    payload environment, or a ctapipe one (:func:`create_ctapipe_analysis`, which needs
    ``contact``: name, email, organisation)."""
    from ..software import check_payload_env, default_payload_env, example_configs

    if pipeline == "protopipe":
        env = check_payload_env(payload_env or default_payload_env())
        return create_analysis(output_path, name, example_configs(env), **options)
    if not contact:
        raise InputError("--contact NAME EMAIL ORGANISATION is needed for a ctapipe analysis",
                         "ctapipe-quickstart writes it into the configurations")
    from .ctapipe_configs import Contact

    env = check_payload_env(payload_env or default_payload_env(pipeline), pipeline)
    return create_ctapipe_analysis(output_path, name, env, Contact(*contact), **options)


def load_workflow_tree(path: Path) -> Mapping[str, object]:
    """A folder tree from a YAML file (``--analysis_directory_tree``), checked."""
    tree = read_yaml(path)
    try:
        create_paths(tree)
    except InputError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
    return dict(tree)


def open_tree(metadata_file: Path) -> AnalysisTree:
    """The tree of an existing analysis, from its ``analysis_metadata.yaml``."""
    metadata = load_metadata(metadata_file)
    return AnalysisTree(Path(metadata.analyses_directory), metadata.analysis_name,
                        metadata.grid_home, metadata.path_from_home)


def record_backend(metadata_file: Path, backend: str, local_root: Path | None) -> None:
    """Record in ``analysis_metadata.yaml`` where the analysis runs (the rest is kept)."""
    metadata = load_metadata(metadata_file).model_copy(update={
        "backend": backend, "grid_is_dirac": backend == "dirac",
        "local_root": str(Path(local_root).resolve()) if local_root and backend == "local"
        else ""})
    write_atomic(metadata_file, yaml.safe_dump(metadata.dump()))
