"""What the environment says: every variable this package reads, in one typed object.

``PGI_BACKEND`` (local or dirac), ``PGI_LOCAL_ROOT`` (the local backend's folder),
``PGI_ADMIN_PROXY`` (a JobAdministrator proxy, to force job states), ``PGI_PAYLOAD_DIR`` (where
``scripts/install-payload.sh`` puts protopipe and the demo data), and the XDG base folders the
defaults live under. Read when asked (:func:`environment`), so a changed environment is seen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .exceptions import InputError

PACKAGE = "protopipe-grid-interface"


class Settings(BaseSettings):
    """The ``PGI_*`` variables and the XDG folders."""

    model_config = SettingsConfigDict(env_prefix="PGI_", extra="ignore", frozen=True)

    backend: Literal["local", "dirac"] = "local"
    local_root: Path | None = None
    admin_proxy: Path | None = None
    payload_dir: Path | None = None
    data_home: Path = Field(default_factory=lambda: Path.home() / ".local" / "share",
                            validation_alias=AliasChoices("XDG_DATA_HOME"))
    cache_home: Path = Field(default_factory=lambda: Path.home() / ".cache",
                             validation_alias=AliasChoices("XDG_CACHE_HOME"))

    @property
    def local_grid(self) -> Path:
        """The local backend's folder: ``PGI_LOCAL_ROOT``, else under ``XDG_DATA_HOME``."""
        return self.local_root or self.data_home / PACKAGE / "local-grid"

    @property
    def payload_root(self) -> Path:
        """The payload environments and demo data: ``PGI_PAYLOAD_DIR``, else under
        ``XDG_CACHE_HOME``."""
        return self.payload_dir or self.cache_home / PACKAGE / "payload"


def environment() -> Settings:
    """The settings the environment gives now; a bad value is a one-line error naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        variable = name.upper() if name.startswith("XDG") else f"PGI_{name.upper()}"
        raise InputError(f"environment variable {variable}: {first['msg']}") from None
