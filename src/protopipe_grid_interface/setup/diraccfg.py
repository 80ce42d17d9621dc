"""``dirac.cfg`` read, repaired and written with DIRAC's own parser, the ``diraccfg`` library,
so that what we read is what DIRAC reads and what we write is what DIRAC writes.

The CTA production settings (:data:`SETTINGS_FILE`, package data) are option paths and values;
:func:`apply_settings` sets exactly those options and keeps every other option and section of
the user's file, with its order and comments. ``dirac configure`` (:func:`plan_configure`, then
:func:`write_configure`) leaves a file that already says all that untouched; otherwise it writes
DIRAC's serialization of the result (comments kept, blank lines not), after a backup, and shows
the diff. The server list is configuration, not code.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from diraccfg import CFG
from pydantic import RootModel, ValidationError, model_validator

from ..exceptions import ConfigError, InputError

log = logging.getLogger(__name__)

#: the CTA production settings, package data
SETTINGS_FILE = "data/dirac-cta.yaml"
SERVERS = "/DIRAC/Configuration/Servers"
SETUP = "/DIRAC/Setup"
USE_SERVER_CERTIFICATE = "/DIRAC/Security/UseServerCertificate"
#: ports of configuration server URLs that do not say theirs
DEFAULT_PORTS = {"dips": 9135, "https": 443}
#: what a refused repair says to do
BY_HAND = "fix it by hand; nothing was changed"


class DiracSettings(RootModel[dict[str, str | list[str]]]):
    """Option paths of ``dirac.cfg`` (``/DIRAC/Setup``) and their values; a list is a
    multi-valued option."""

    @model_validator(mode="after")
    def option_paths(self) -> DiracSettings:
        for path, value in self.root.items():
            parts = path.split("/")
            if not path.startswith("/") or len(parts) < 2 or not all(parts[1:]):
                raise ValueError(f"{path!r} is not an option path like /DIRAC/Setup")
            if isinstance(value, list) and not value:
                raise ValueError(f"{path}: empty list")
        return self

    @property
    def servers(self) -> list[str]:
        """The configuration servers these settings name."""
        return as_list(self.root.get(SERVERS, []))

    @property
    def setup(self) -> str | None:
        value = self.root.get(SETUP)
        return value if isinstance(value, str) else None


def as_list(value: str | list[str] | None) -> list[str]:
    """A multi-valued option as a list (DIRAC separates values with commas)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else value.split(",")
    return [item.strip() for item in items if item.strip()]


def load_settings(path: Path | None = None) -> DiracSettings:
    """The CTA production settings (package data), or those of ``path`` (YAML, or a ``.cfg``
    file whose options are all taken)."""
    source = str(path) if path else f"protopipe_grid_interface/{SETTINGS_FILE}"
    try:
        if path is not None and path.suffix == ".cfg":
            return DiracSettings(cfg_options(read_cfg(path)))
        text = (Path(path).read_text() if path is not None
                else files("protopipe_grid_interface").joinpath(SETTINGS_FILE).read_text())
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{source}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    try:
        return DiracSettings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "/".join(str(p) for p in error["loc"][:1])
        raise ConfigError(f"{source}: {where + ': ' if where else ''}{error['msg']}",
                          "values are strings or lists of strings; quote yes/no/True/False"
                          ) from None


def cfg_options(cfg: CFG, prefix: str = "") -> dict[str, str | list[str]]:
    """Every option of ``cfg`` by path; multi-valued options as lists."""
    options: dict[str, str | list[str]] = {}
    for name in cfg.listOptions():
        value = cfg[name]
        assert isinstance(value, str)
        values = as_list(value)
        options[f"{prefix}/{name}"] = values if len(values) > 1 else value
    for name in cfg.listSections():
        section = cfg[name]
        assert isinstance(section, CFG)
        options.update(cfg_options(section, f"{prefix}/{name}"))
    return options


def parse_cfg(text: str, source: str) -> CFG:
    """``text`` read by DIRAC's parser; a one-line ConfigError naming ``source`` if it fails."""
    try:
        return CFG().loadFromBuffer(text)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{source}: not a valid DIRAC cfg file: {exc}", BY_HAND) from None


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None


def read_cfg(path: Path) -> CFG:
    return parse_cfg(read_text(path), str(path))


def apply_settings(cfg: CFG, settings: DiracSettings) -> CFG:
    """A copy of ``cfg`` with the options of ``settings`` set (sections created as needed);
    everything else, with its order and comments, as it was."""
    result = cfg.clone()
    for path, value in settings.root.items():
        *sections, option = path.strip("/").split("/")
        node = result
        walked = ""
        for name in sections:
            walked += f"/{name}"
            if node.isOption(name):
                raise ConfigError(f"dirac.cfg: {walked} is an option where the CTA settings need "
                                  "a section", BY_HAND)
            if not node.isSection(name):
                node.createNewSection(name)
            section = node[name]
            assert isinstance(section, CFG)
            node = section
        if node.isSection(option):
            raise ConfigError(f"dirac.cfg: {path} is a section where the CTA settings need an "
                              "option", BY_HAND)
        comment = node.getComment(option) if node.isOption(option) else ""
        node.setOption(option, ", ".join(value) if isinstance(value, list) else value, comment)
    return result


def server_address(url: str) -> tuple[str, int]:
    """(host, port) of a configuration server URL, ``dips://host:9135/Configuration/Server``."""
    parts = urlsplit(url.strip())
    if not parts.hostname:
        raise InputError(f"{url!r} is not a server URL",
                         "expected dips://host:port/Configuration/Server")
    try:
        port = parts.port
    except ValueError:
        raise InputError(f"{url!r}: invalid port") from None
    return parts.hostname, port or DEFAULT_PORTS.get(parts.scheme, 9135)


# -- dirac configure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigurePlan:
    """What ``dirac configure`` would do to ``path``."""

    path: Path
    exists: bool
    old_text: str
    new_text: str

    @property
    def changed(self) -> bool:
        return self.new_text != self.old_text

    @property
    def diff(self) -> str:
        old = str(self.path) if self.exists else "/dev/null"
        return "".join(difflib.unified_diff(
            self.old_text.splitlines(keepends=True), self.new_text.splitlines(keepends=True),
            fromfile=old, tofile=str(self.path)))


def plan_configure(path: Path, settings: DiracSettings) -> ConfigurePlan:
    """The CTA settings applied to ``path`` (which may not exist yet). The file is left as it is
    when DIRAC reads in it everything the settings say, however it is written."""
    path = Path(path)
    exists = path.exists()
    old_text = read_text(path) if exists else ""
    old = parse_cfg(old_text, str(path))
    new = apply_settings(old, settings).serialize()
    if exists and new == old.serialize():
        return ConfigurePlan(path, exists, old_text, old_text)
    return ConfigurePlan(path, exists, old_text, new)


def backup_path(path: Path, now: datetime) -> Path:
    """A backup name beside ``path`` that is not taken yet."""
    stem = f"{path.name}.bak-{now.strftime('%Y%m%dT%H%M%S')}"
    candidate = path.with_name(stem)
    number = 1
    while candidate.exists():
        candidate = path.with_name(f"{stem}.{number}")
        number += 1
    return candidate


def write_configure(plan: ConfigurePlan, now: datetime | None = None) -> Path | None:
    """Carry out ``plan``: copy the old file to a backup, then replace it atomically (same
    permissions). Returns the backup, None when there was no old file or nothing to change."""
    if not plan.changed:
        return None
    path = plan.path
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if plan.exists:
        if read_text(path) != plan.old_text:
            raise InputError(f"{path} changed while being configured", "run the command again")
        backup = backup_path(path, now or datetime.now())
        shutil.copy2(path, backup)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(plan.new_text)
        if plan.exists:
            shutil.copymode(path, temp)
        else:
            os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    log.info("wrote %s (backup: %s)", path, backup)
    return backup
