"""The DIRAC client's ``dirac.cfg``: where DIRAC reads it, what it says, and how to add the CTA
production settings to it without losing anything else.

Files are read and written with DIRAC's own parser, the ``diraccfg`` package, so that what we
read is what DIRAC reads.

Where DIRAC looks (DIRAC 9: ``ConfigurationData`` then ``LocalConfiguration.__loadCFGFiles``),
highest precedence first; every file found is read, and a value in an earlier file wins:

1. ``~/.dirac.cfg``;
2. the files listed in ``$DIRACSYSCONFIG`` (comma-separated), the first listed winning;
3. ``<root>/etc/dirac.cfg``, the file ``dirac-configure`` writes. ``<root>`` is, as for DIRAC,
   ``$DIRAC_ROOT_PATH`` if set, else the installation prefix (``sys.base_prefix``) of the Python
   that runs ``dirac-proxy-init`` found on ``PATH``, else that of this Python if it can import
   DIRAC, else ``$CONDA_PREFIX`` (a conda environment is its own prefix). DIRAC's versioned
   *server* layout (``versions/vX-time/``) is not followed: this is for client installations.

The CTA production settings (:data:`SETTINGS_FILE`, package data) are option paths and values;
:func:`apply_settings` sets exactly those options and keeps every other option and section of
the user's file, with its order and comments. The server list is configuration, not code.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from diraccfg import CFG
from pydantic import RootModel, ValidationError, model_validator

from .exceptions import ConfigError, InputError

log = logging.getLogger(__name__)

#: the CTA production settings, package data
SETTINGS_FILE = "data/dirac-cta.yaml"
SERVERS = "/DIRAC/Configuration/Servers"
SETUP = "/DIRAC/Setup"
USE_SERVER_CERTIFICATE = "/DIRAC/Security/UseServerCertificate"
#: ports of configuration server URLs that do not say theirs
DEFAULT_PORTS = {"dips": 9135, "https": 443}


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
        raise ConfigError(f"{source}: not a valid DIRAC cfg file: {exc}",
                          "fix it by hand; nothing was changed") from None


def read_cfg(path: Path) -> CFG:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    return parse_cfg(text, str(path))


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
                                  "a section", "fix it by hand; nothing was changed")
            if not node.isSection(name):
                node.createNewSection(name)
            section = node[name]
            assert isinstance(section, CFG)
            node = section
        if node.isSection(option):
            raise ConfigError(f"dirac.cfg: {path} is a section where the CTA settings need an "
                              "option", "fix it by hand; nothing was changed")
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


# -- where DIRAC reads dirac.cfg --------------------------------------------------------------


@dataclass(frozen=True)
class CfgFile:
    """A place DIRAC reads ``dirac.cfg`` from, and why."""

    path: Path
    origin: str

    @property
    def exists(self) -> bool:
        return self.path.is_file()


def which(program: str, env: Mapping[str, str]) -> Path | None:
    """``program`` on the ``PATH`` of ``env``."""
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    return Path(found) if found else None


def script_interpreter(script: Path, env: Mapping[str, str]) -> Path | None:
    """The Python that runs ``script``: its ``#!`` line (``/usr/bin/env python``, and pip's
    ``/bin/sh`` trampoline for long paths, included)."""
    try:
        with open(script, "rb") as handle:
            head = handle.read(1024).decode(errors="replace").splitlines()
    except OSError:
        return None
    if not head or not head[0].startswith("#!"):
        return None
    words = head[0][2:].split()
    if not words:
        return None
    if Path(words[0]).name == "env":
        names = [w for w in words[1:] if not w.startswith("-")]
        return which(names[0], env) if names else None
    if Path(words[0]).name in ("sh", "bash") and len(head) > 1:
        match = re.search(r"exec' \"([^\"]+)\"", head[1])
        return Path(match.group(1)) if match else None
    return Path(words[0])


def python_prefix(python: Path) -> Path | None:
    """``sys.base_prefix`` of another Python (what DIRAC takes as its root)."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed argument list
            [str(python), "-I", "-c", "import sys; print(sys.base_prefix)"],
            capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = result.stdout.strip()
    return Path(out) if result.returncode == 0 and out else None


def dirac_root(env: Mapping[str, str]) -> tuple[Path, str] | None:
    """DIRAC's root (where its ``etc/dirac.cfg`` is) and how it was found; None if unknown."""
    if env.get("DIRAC_ROOT_PATH"):
        return Path(env["DIRAC_ROOT_PATH"]), "$DIRAC_ROOT_PATH"
    script = which("dirac-proxy-init", env)
    if script is not None:
        python = script_interpreter(script, env)
        prefix = python_prefix(python) if python is not None else None
        if prefix is not None:
            return prefix.resolve(), f"the DIRAC installation of {script}"
    if importlib.util.find_spec("DIRAC") is not None:
        return Path(sys.base_prefix).resolve(), "the DIRAC installation of this Python"
    if env.get("CONDA_PREFIX"):
        return Path(env["CONDA_PREFIX"]), "$CONDA_PREFIX"
    return None


def cfg_candidates(env: Mapping[str, str], home: Path,
                   root: tuple[Path, str] | None = None) -> list[CfgFile]:
    """Every place DIRAC reads ``dirac.cfg`` from, highest precedence first (module docstring).
    ``root`` is :func:`dirac_root`, found here if not given."""
    candidates = [CfgFile(home / ".dirac.cfg", "~/.dirac.cfg")]
    for item in env.get("DIRACSYSCONFIG", "").replace(" ", "").split(","):
        if item:
            candidates.append(CfgFile(Path(item), "$DIRACSYSCONFIG"))
    root = root if root is not None else dirac_root(env)
    if root is not None:
        candidates.append(CfgFile(root[0] / "etc" / "dirac.cfg", f"etc/dirac.cfg of {root[1]}"))
    return candidates


@dataclass(frozen=True)
class EffectiveConfig:
    """What DIRAC makes of the files it finds: ``cfg`` merged as DIRAC merges them."""

    files: tuple[CfgFile, ...]
    parsed: tuple[CFG, ...]
    cfg: CFG

    def value(self, option: str) -> str | None:
        value = self.cfg.getOption(option)
        return value if isinstance(value, str) else None

    def origin(self, option: str) -> CfgFile | None:
        """The file whose value of ``option`` is in force."""
        for file, cfg in zip(self.files, self.parsed, strict=True):
            if cfg.getOption(option) is not None:
                return file
        return None


def effective_config(candidates: Sequence[CfgFile]) -> EffectiveConfig:
    """Read the files that exist among ``candidates`` (highest precedence first) and merge them
    the way DIRAC does; ConfigError if one cannot be read."""
    found = tuple(c for c in candidates if c.exists)
    parsed = tuple(read_cfg(c.path) for c in found)
    merged = CFG()
    for cfg in reversed(parsed):  # lowest precedence first; mergeWith's argument wins
        merged = merged.mergeWith(cfg)
    return EffectiveConfig(found, parsed, merged)


def default_target(env: Mapping[str, str], home: Path,
                   root: tuple[Path, str] | None = None) -> Path:
    """The file ``dirac configure`` writes by default: the existing ``dirac.cfg`` of highest
    precedence (what it says is what DIRAC uses), else ``<root>/etc/dirac.cfg``, where
    ``dirac-configure`` puts it."""
    candidates = cfg_candidates(env, home, root)
    for candidate in candidates:
        if candidate.exists:
            return candidate.path
    for candidate in candidates:
        if candidate.origin.startswith("etc/dirac.cfg"):
            return candidate.path
    raise InputError("cannot tell where the DIRAC client reads dirac.cfg",
                     "install the DIRAC client, set DIRAC_ROOT_PATH, or pass --file")


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
    when it already says everything the settings say."""
    path = Path(path)
    exists = path.exists()
    old_text = ""
    if exists:
        try:
            old_text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    old = parse_cfg(old_text, str(path))
    new = apply_settings(old, settings)
    if exists and new.serialize() == old.serialize():
        return ConfigurePlan(path, exists, old_text, old_text)
    patched = patch_text(old_text, settings)
    if patched is None or parse_cfg(patched, str(path)).serialize() != new.serialize():
        log.info("%s: layout not understood line by line; writing it out whole", path)
        patched = new.serialize()
    return ConfigurePlan(path, exists, old_text, patched)


@dataclass
class _Section:
    close: int  # line of its "}" (past the end for the top level)
    indent: str | None  # indentation of its entries, once one is seen
    base: str  # indentation of its name


def _index(lines: Sequence[str]) -> tuple[dict[str, _Section], dict[str, list[int]]] | None:
    """Sections and option lines of a cfg file, by path; None for a layout we do not follow
    line by line (several statements on a line, say)."""
    sections = {"": _Section(len(lines), None, "")}
    options: dict[str, list[int]] = {}
    stack = [""]
    pending: tuple[str, str] | None = None  # a section name waiting for its "{"
    for number, raw in enumerate(lines):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        indent = raw[:len(raw) - len(raw.lstrip())]
        if "=" in text and pending is None:
            equal = text.index("=")
            append = equal > 0 and text[equal - 1] == "+"
            key = text[:equal - 1 if append else equal].strip()
            if not key or any(c in key for c in "{}"):
                return None
            path = f"{stack[-1]}/{key}"
            if append and path not in options:
                return None
            options.setdefault(path, []).append(number)
            section = sections[stack[-1]]
            section.indent = indent if section.indent is None else section.indent
        elif text == "}":
            if len(stack) == 1 or pending is not None:
                return None
            sections[stack.pop()].close = number
        elif text.endswith("{"):
            name, base = text[:-1].strip(), indent
            if not name and pending is not None:
                (name, base), pending = pending, None
            if not name or pending is not None or any(c in name for c in "{}="):
                return None
            path = f"{stack[-1]}/{name}"
            if path in sections:
                return None
            sections[path] = _Section(-1, None, base)
            stack.append(path)
        elif pending is None and not any(c in text for c in "{}="):
            pending = (text, indent)
        else:
            return None
    return (sections, options) if len(stack) == 1 and pending is None else None


def _option_lines(indent: str, name: str, value: str | list[str]) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [f"{indent}{name} = {values[0]}\n"] + [f"{indent}{name} += {v}\n" for v in values[1:]]


def patch_text(text: str, settings: DiracSettings) -> str | None:
    """``text`` with the options of ``settings`` set, changing only their lines: comments,
    blank lines and layout elsewhere stay. None when the layout is not one we follow line by
    line (the caller then writes DIRAC's serialization, which means the same)."""
    lines = text.splitlines(keepends=True)
    index = _index(lines)
    if index is None:
        return None
    sections, options = index
    current = parse_cfg(text, "dirac.cfg")
    replace: dict[int, list[str]] = {}
    delete: set[int] = set()
    inserts: dict[str, CFG] = {}  # existing section -> what to add at its end
    for path, value in settings.root.items():
        if path in options and as_list(current.getOption(path)) == as_list(value):
            continue  # the same values, maybe written otherwise: leave the lines alone
        if path in options:
            first, *rest = options[path]
            raw = lines[first]
            indent = raw[:len(raw) - len(raw.lstrip())]
            replace[first] = _option_lines(indent, path.rsplit("/", 1)[1], value)
            delete.update(rest)
            continue
        parts = path.strip("/").split("/")
        depth = len(parts) - 1
        while depth and "/" + "/".join(parts[:depth]) not in sections:
            depth -= 1
        anchor = "/" + "/".join(parts[:depth]) if depth else ""
        if any("/" + "/".join(parts[:n]) in options for n in range(depth + 1, len(parts))):
            return None
        node = inserts.setdefault(anchor, CFG())
        for name in parts[depth:-1]:
            if not node.isSection(name):
                node.createNewSection(name)
            child = node[name]
            assert isinstance(child, CFG)
            node = child
        node.setOption(parts[-1], ", ".join(value) if isinstance(value, list) else value)
    added: dict[int, list[str]] = {}
    for anchor, cfg in inserts.items():
        section = sections[anchor]
        indent = section.indent if section.indent is not None else (
            section.base + "  " if anchor else "")
        added.setdefault(section.close, []).extend(
            cfg.serialize(indent).splitlines(keepends=True))
    if lines and not lines[-1].endswith("\n") and len(lines) in added:
        lines[-1] += "\n"
    out: list[str] = []
    for number, raw in enumerate([*lines, ""]):
        out += added.get(number, [])
        if number in replace:
            out += replace[number]
        elif number not in delete:
            out.append(raw)
    return "".join(out)


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
        if path.read_text() != plan.old_text:
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
