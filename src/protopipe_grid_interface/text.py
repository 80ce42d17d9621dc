"""Numbers as people read them, for the terminal and the report alike."""

from __future__ import annotations


def duration_text(seconds: float) -> str:
    """A duration as people say it: 45 s, 5 min, 24 h, 2.5 d."""
    for unit, size, limit in (("s", 1, 120), ("min", 60, 7200), ("h", 3600, 4 * 86400)):
        if seconds < limit:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / 86400:.3g} d"


def size_text(size: float) -> str:
    """Bytes in decimal units: 512 B, 3.4 MB, 1.2 TB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g} {unit}" if unit != "B" else f"{size:.0f} B"
        size /= 1000
    raise AssertionError("unreachable")
