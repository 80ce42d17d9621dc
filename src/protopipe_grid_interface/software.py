"""The payload software: where protopipe (or ctapipe) lives, which version, and whether we
support it.

The compatibility table is kept here and nowhere else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .exceptions import InputError

#: protopipe release -> interface releases that drive it
COMPATIBILITY = {
    "0.5.0": "0.5.x (this release)",
    "0.4.0": "0.4.x (the original scripts; not driven by this release)",
}
#: PyPI publishes protopipe 0.5.0 under the version string 0.0.0
PYPI_ALIASES = {"0.0.0": "0.5.0"}
SUPPORTED = ("0.5.0",)
#: the ctapipe release the ctapipe profile drives (its tools, config keys and table layout)
CTAPIPE_VERSION = "0.32.0"
#: each pipeline's environment folder, as ``scripts/install-payload.sh`` names it
ENV_FOLDERS = {"protopipe": "protopipe-0.5.0", "ctapipe": f"ctapipe-{CTAPIPE_VERSION}"}
#: the programs a pipeline's environment must have
PROGRAMS = {
    "protopipe": ("python", "protopipe-TRAINING", "protopipe-MODEL", "protopipe-DL2"),
    "ctapipe": ("python", "ctapipe-process", "ctapipe-merge", "ctapipe-apply-models",
                "ctapipe-train-energy-regressor", "ctapipe-train-particle-classifier",
                "ctapipe-optimize-event-selection", "ctapipe-compute-irf"),
}


def default_payload_env(pipeline: str = "protopipe") -> Path:
    """The pipeline's environment ``scripts/install-payload.sh`` makes."""
    from .settings import environment

    return environment().payload_root / ENV_FOLDERS[pipeline]


def local_payload_env(asked: Path | None, configured: str = "", pipeline: str = "protopipe"
                      ) -> Path:
    """Where the pipeline runs on this machine: ``asked`` (``--payload-env``), else grid.yaml's
    ``Software.local_env``, else the installed payload environment."""
    return asked or (Path(configured) if configured else default_payload_env(pipeline))


def default_demo_data() -> Path:
    """The real sim_telarray files ``scripts/install-payload.sh`` fetches for the demo."""
    from .settings import environment

    return environment().payload_root / "data"


def check_payload_env(env: Path, pipeline: str = "protopipe") -> Path:
    """``env`` if it holds the pipeline's programs; a one-line error naming what is missing if
    not."""
    env = Path(env)
    for program in PROGRAMS[pipeline]:
        if not (env / "bin" / program).exists():
            raise InputError(f"payload environment {env}: bin/{program} not found",
                             "run scripts/install-payload.sh or pass --payload-env")
    return env


def protopipe_location(env: Path) -> tuple[str, Path]:
    """(version, package folder) of protopipe in the payload environment."""
    probe = ("import importlib.metadata as m, protopipe, os; "
             "print(m.version('protopipe')); print(os.path.dirname(protopipe.__file__))")
    result = subprocess.run(  # noqa: S603 - fixed argument list
        [str(Path(env) / "bin" / "python"), "-c", probe],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise InputError(f"payload environment {env}: protopipe cannot be imported")
    version, folder = result.stdout.split()[:2]
    return PYPI_ALIASES.get(version, version), Path(folder)


def example_configs(env: Path) -> Path:
    """protopipe's installed example configuration files (the analysis templates)."""
    version, folder = protopipe_location(env)
    if version not in SUPPORTED:
        raise InputError(f"protopipe {version} in {env} is not supported",
                         f"supported: {', '.join(SUPPORTED)}")
    return folder / "aux" / "example_config_files"
