"""Backends run jobs and hold files: ``local`` (embedded), ``dirac`` (the grid) and ``fake``
(in memory, for tests); :func:`open_backend` makes the one an analysis or a command uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import SoftwareSection
    from .base import Backend


def open_backend(name: str, local_root: Path, software: SoftwareSection | None = None,
                 payload_env: Path | None = None, ses: Sequence[str] = (),
                 admin_proxy: Path | None = None, pipeline: str = "protopipe") -> Backend:
    """The ``local`` backend in ``local_root`` (jobs run in ``payload_env``, else grid.yaml's
    ``Software.local_env``, else the installed environment of ``pipeline``), or ``dirac``
    (jobs activate ``Software.worker_env``, else its CVMFS conda environment; ``ses``:
    grid.yaml's ``GRID.upload_sites``)."""
    from ..config import SoftwareSection

    software = software or SoftwareSection()
    if name == "dirac":
        from .dirac import DiracBackend, Environment

        payload = (Environment("venv", software.worker_env) if software.worker_env
                   else Environment("conda", software.conda_setup, software.conda_env))
        return DiracBackend(payload, ses=ses, admin_proxy=admin_proxy)
    from ..software import local_payload_env
    from .local import LocalBackend

    return LocalBackend(local_root, payload_env=local_payload_env(payload_env, software.local_env,
                                                                  pipeline))
