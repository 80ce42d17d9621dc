"""An analysis opened for work: its backend, its grid home, its state database with the
command recorded in it. What every command (and a whole run) does before its step."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..backends import open_backend
from ..backends.base import Backend
from ..software import local_payload_env
from ..store import Store
from .analysis import Analysis


@dataclass(frozen=True)
class BackendChoice:
    """What the user asked for: a backend name, the local backend's folder, and the Python
    environment local jobs run in (each None when not asked)."""

    name: str | None = None
    local_root: Path | None = None
    payload_env: Path | None = None


def backend_for(choice: BackendChoice, analysis: Analysis | None = None) -> Backend:
    """The backend to use: an analysis' own (see ``Analysis.backend_choice``), else the one
    asked for, ``$PGI_BACKEND`` or local; the local one in the folder asked for,
    ``$PGI_LOCAL_ROOT`` or its default folder."""
    from ..settings import environment  # pydantic-settings: loaded when a backend is made

    settings = environment()
    name, root = choice.name, choice.local_root
    if analysis is not None:
        name, root = analysis.backend_choice(name, root, settings.backend, settings.local_grid)
    grid = analysis.grid if analysis is not None else None
    return open_backend(name or settings.backend, root or settings.local_grid,
                        grid.Software if grid else None, choice.payload_env,
                        grid.GRID.upload_sites if grid else (), settings.admin_proxy,
                        analysis.pipeline if analysis is not None else "protopipe")


def attach(analysis: Analysis, choice: BackendChoice) -> tuple[Analysis, Backend]:
    """The analysis' backend, and the analysis with the backend's home as its grid home
    (where none is configured)."""
    backend = backend_for(choice, analysis)
    return analysis.with_home(backend.home), backend


def payload_env(choice: BackendChoice, analysis: Analysis) -> Path:
    """Where the analysis' pipeline runs on this machine for its local steps."""
    return local_payload_env(choice.payload_env, analysis.grid.Software.local_env,
                             analysis.pipeline)


@contextmanager
def recorded(analysis: Analysis, backend: Backend | None = None) -> Iterator[Store]:
    """The analysis' state database, with the command recorded in it (argv, version, the
    configurations' hashes, then its exit code); a command that used ``backend`` and
    succeeded records it as the analysis' backend, if none is yet."""
    from .. import __version__

    store = analysis.store()
    command = store.start_command(sys.argv, __version__, analysis.config_hashes())
    code = 1
    try:
        yield store
        code = 0
    finally:
        store.finish_command(command, code)
        store.close()
    if backend is not None:
        analysis.remember_backend(backend.name, backend.root)


@contextmanager
def existing_store(analysis: Analysis) -> Iterator[Store | None]:
    """The analysis' state database if it has one (a preview creates none), else None."""
    if not analysis.tree.state_db.is_file():
        yield None
        return
    store = analysis.store()
    try:
        yield store
    finally:
        store.close()


@dataclass
class Session:
    """An open analysis (its grid home known), its state database and its backend."""

    analysis: Analysis
    store: Store
    backend: Backend


@contextmanager
def session(metadata: Path, choice: BackendChoice) -> Iterator[Session]:
    """The analysis of ``metadata``, with its backend, its state database, the command
    recorded."""
    analysis, backend = attach(Analysis.open(metadata), choice)
    with recorded(analysis, backend) as store:
        yield Session(analysis, store, backend)
