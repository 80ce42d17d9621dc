"""The DIRAC client on this machine: where it is installed, and which ``dirac.cfg`` files it
reads (with :mod:`.diraccfg`, what they say together).

Where DIRAC looks (DIRAC 9: ``ConfigurationData`` then ``LocalConfiguration.__loadCFGFiles``),
highest precedence first; every file found is read, and a value in an earlier file wins:

1. ``~/.dirac.cfg``;
2. the files listed in ``$DIRACSYSCONFIG`` (comma-separated), the first listed winning;
3. ``<root>/etc/dirac.cfg``, the file ``dirac-configure`` writes. ``<root>`` is, as for DIRAC,
   ``$DIRAC_ROOT_PATH`` if set, else the installation prefix (``sys.base_prefix``) of the Python
   that runs ``dirac-proxy-init`` found on ``PATH``, else that of this Python if it can import
   DIRAC, else ``$CONDA_PREFIX`` (a conda environment is its own prefix). DIRAC's versioned
   *server* layout (``versions/vX-time/``) is not followed: this is for client installations.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from diraccfg import CFG

from ..exceptions import InputError
from .diraccfg import read_cfg
from .machine import which


@dataclass(frozen=True)
class CfgFile:
    """A place DIRAC reads ``dirac.cfg`` from, and why."""

    path: Path
    origin: str

    @property
    def exists(self) -> bool:
        return self.path.is_file()


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
