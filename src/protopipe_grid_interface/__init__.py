"""Run protopipe analyses as grid jobs on DIRAC, or on this machine, resumable and verified."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("protopipe-grid-interface")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
