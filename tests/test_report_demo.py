"""The report of a finished demo analysis (real protopipe outputs: merged DL2 files, models'
scores, protopipe's IRF file) in headless Chromium: every plot drawn, the IRFs' among them, no
console error, no request to the network; its numbers those of the state database. CI runs it
after its local demo; by hand, after a demo::

    PGI_REFERENCE_DEMO=demo-analysis .venv/bin/pytest -m demo tests/test_report_demo.py

The screenshot is saved in ``test-artefacts/report-demo.png``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from browser import open_page
from test_report import ARTEFACTS, embedded

from protopipe_grid_interface.cli.main import main

pytestmark = pytest.mark.demo

PLOTS = {"job-states", "throughput", "sites", "reco-energy", "gammaness",
         "irf-effective-area", "irf-energy-resolution-and-bias", "irf-angular-resolution",
         "irf-sensitivity"}


def test_the_demo_report_opens_offline_with_every_plot_and_the_databases_numbers(
        tmp_path: Path) -> None:
    workdir = os.environ.get("PGI_REFERENCE_DEMO")
    if not workdir:
        pytest.skip("PGI_REFERENCE_DEMO: the workdir of a finished demo")
    analysis = Path(workdir) / "shared_folder" / "analyses" / "demo"
    assert (analysis / "report.html").is_file()  # the demo wrote its own
    page = tmp_path / "report.html"
    assert main(["report", "-m", str(analysis), "-o", str(page)]) == 0
    ARTEFACTS.mkdir(exist_ok=True)
    check = open_page(page, ARTEFACTS / "report-demo.png")
    assert check.console_errors == [] and check.requests == []
    assert all(plot.rendered for plot in check.plots)
    assert PLOTS <= {plot.id for plot in check.plots}
    data = embedded(page.read_text())
    with sqlite3.connect(analysis / "state.sqlite") as db:
        by_state = dict(db.execute("SELECT status, COUNT(*) FROM jobs WHERE name NOT LIKE "
                                   "'%\\_canary' ESCAPE '\\' GROUP BY status").fetchall())
    assert data["jobs"]["by_state"] == by_state and data["overview"]["finished"]
    assert data["irf"]["effective_area"] and "problem" not in data["irf"]
