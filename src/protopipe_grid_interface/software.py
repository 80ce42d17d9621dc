"""The payload software: where protopipe lives, which version, and whether we support it.

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


def default_payload_env() -> Path:
    """The protopipe environment ``scripts/install-payload.sh`` makes."""
    from .settings import environment

    return environment().payload_root / "protopipe-0.5.0"


def local_payload_env(asked: Path | None, configured: str = "") -> Path:
    """Where protopipe runs on this machine: ``asked`` (``--payload-env``), else grid.yaml's
    ``Software.local_env``, else the installed payload environment."""
    return asked or (Path(configured) if configured else default_payload_env())


def default_demo_data() -> Path:
    """The real sim_telarray files ``scripts/install-payload.sh`` fetches for the demo."""
    from .settings import environment

    return environment().payload_root / "data"


def check_payload_env(env: Path) -> Path:
    """``env`` if it holds a usable protopipe; a one-line error naming what is missing if not."""
    env = Path(env)
    for program in ("python", "protopipe-TRAINING", "protopipe-MODEL", "protopipe-DL2"):
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
