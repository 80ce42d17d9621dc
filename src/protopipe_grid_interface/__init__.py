"""Run protopipe analyses as grid jobs on DIRAC, or on this machine, resumable and verified."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed package's metadata when first asked for
    (importlib.metadata costs a command's start-up ~50 ms it rarely needs)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("protopipe-grid-interface")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"
