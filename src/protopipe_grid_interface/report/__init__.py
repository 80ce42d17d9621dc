"""``protopipe-grid report``: one self-contained HTML page of an analysis, from its state
database and its folder (:mod:`.data` gathers, :mod:`.plots` draws, :mod:`.page` lays out)."""

from __future__ import annotations

from pathlib import Path

from ..atomic import write_atomic
from ..backends.base import Backend
from ..store import Store
from ..workflow.analysis import Analysis
from . import data, page

#: the report's file in the analysis folder, unless told otherwise
FILE_NAME = "report.html"


def write(analysis: Analysis, store: Store, backend: Backend, output: Path | None = None
          ) -> Path:
    """Write the analysis' report (replacing an older one: it is rebuilt from the state
    database and the folder, nothing else) and return where."""
    path = output or analysis.tree.root / FILE_NAME
    write_atomic(path, page.render(data.gather(analysis, store, backend)))
    return path
