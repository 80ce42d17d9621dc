"""The status overview and the report, on the fake backend's analysis of ``test_engine``: its
numbers agree with the state database, and the page opens in headless Chromium with every
plot drawn, no console error and no request to the network."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from browser import open_page
from test_engine import Workspace, workspace
from test_performance import irf_file

from protopipe_grid_interface import report
from protopipe_grid_interface.cli.main import main
from protopipe_grid_interface.models import JobStatus, Particle, Stage
from protopipe_grid_interface.paths import merged_file_name
from protopipe_grid_interface.workflow import engine, overview, performance
from protopipe_grid_interface.workflow.results import merge_step

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    yield from workspace(tmp_path)


def stalled_once(ws: Workspace) -> None:
    """The energy TRAINING taken to its merge, run102 stalled once and retried."""
    ws.policy("stalled")
    ws.script.plan["run102"] = [(JobStatus.FAILED, "Job stalled: pilot not running")]
    assert ws.run().finished


def embedded(html: str) -> dict[str, Any]:
    found = re.search(r"<script type='application/json' id='report-data'>(.*?)</script>", html,
                      re.S)
    assert found is not None
    return dict(json.loads(found.group(1).replace("<\\/", "</")))


def sql(ws: Workspace, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(ws.analysis.tree.state_db) as db:
        return db.execute(query).fetchall()


def test_the_overview_counts_jobs_failures_and_sites_as_the_database(ws: Workspace) -> None:
    stalled_once(ws)
    view = overview.build(ws.analysis, ws.store, ws.backend,
                          engine.open_workflow(ws.analysis))
    training = next(t for t in view.tasks if t.step == "training-energy")
    assert training.jobs == {"Done": 3} and training.failures == {"stalled": 1}
    assert training.outputs == 3 and training.output_bytes == sum(
        size for (size,) in sql(ws, "SELECT output_size FROM jobs"))
    collect = next(t for t in view.tasks if t.step == "collect-training-energy")
    assert collect.state == "finished" and collect.downloaded == 3
    assert [(s.done, s.failed) for s in view.sites] == [(3, 1)]
    assert view.sites[0].success_rate == 0.75
    assert (view.jobs_total, view.jobs_done, view.seconds_left) == (3, 3, None)


def test_the_time_left_is_the_jobs_not_done_at_the_observed_rate() -> None:
    times = [f"2026-12-03T10:{minute:02d}:00+00:00" for minute in range(0, 60, 10)]
    assert overview.rate_per_hour(times) == pytest.approx(6.0)  # 5 in 50 minutes
    assert overview.rate_per_hour(times[:1]) is None
    assert overview.rate_per_hour([times[0], times[0]]) is None


def test_the_reports_numbers_agree_with_the_state_database(ws: Workspace) -> None:
    stalled_once(ws)
    page = report.write(ws.analysis, ws.store, ws.backend)
    data = embedded(page.read_text())
    by_state = dict(sql(ws, "SELECT status, COUNT(*) FROM jobs WHERE name NOT LIKE "
                            "'%\\_canary' ESCAPE '\\' GROUP BY status"))
    assert data["jobs"]["by_state"] == by_state == {"Done": 3}
    failed = sql(ws, "SELECT COUNT(*) FROM outcomes WHERE outcome != 'done'")[0][0]
    assert sum(n for t in data["overview"]["tasks"] for n in t["failures"].values()) == failed
    assert sum(data["throughput"]["done"]) == sql(
        ws, "SELECT COUNT(*) FROM history WHERE status = 'Done'")[0][0]
    assert [c["id"] for c in data["commands"]] == [
        i for (i,) in sql(ws, "SELECT id FROM commands ORDER BY id")]
    assert data["configs"] == ws.analysis.config_hashes()


def test_a_report_mid_campaign_says_what_is_not_there_yet(ws: Workspace) -> None:
    html = report.write(ws.analysis, ws.store, ws.backend).read_text()
    assert "no state change recorded yet" in html and "no performance step yet" in html
    assert "0 of 0 grid job(s) done" in html
    assert "class='plot'" not in html


def physics(ws: Workspace) -> None:
    """A merged DL2 file and an IRF file, as the steps that make them record them."""
    tree, mode = ws.analysis.tree, ws.analysis.grid.General.mode
    rng = np.random.default_rng(1)
    for particle in (Particle.GAMMA, Particle.PROTON):
        path = tree.data_dir(Stage.DL2, particle) / merged_file_name(Stage.DL2, particle, mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        events = np.zeros(50, dtype=[("reco_energy", "f8"), ("gammaness", "f8")])
        events["reco_energy"] = 10 ** rng.uniform(-1.5, 2, 50)
        events["gammaness"] = rng.uniform(0, 1, 50)
        with h5py.File(path, "w") as h5:
            h5["reco_events"] = events
        ws.store.record_result(merge_step(Stage.DL2.value), particle.value, {"file": path.name})
    irf = irf_file(tree.root / "irf.fits.gz")
    performance.record(ws.store, performance.summarise(irf), [])


def test_the_report_opens_offline_in_chromium_with_every_plot_drawn(ws: Workspace) -> None:
    stalled_once(ws)
    physics(ws)
    page = report.write(ws.analysis, ws.store, ws.backend)
    ARTEFACTS.mkdir(exist_ok=True)
    check = open_page(page, ARTEFACTS / "report-fake-backend.png")
    assert check.console_errors == [] and check.requests == []
    drawn = {plot.id for plot in check.plots if plot.rendered}
    assert drawn == {plot.id for plot in check.plots}
    assert {"job-states", "throughput", "failures", "sites", "reco-energy",
            "gammaness", "irf-effective-area", "irf-energy-resolution-and-bias",
            "irf-angular-resolution", "irf-sensitivity"} <= drawn
    assert check.screenshot.stat().st_size > 10_000
    data = embedded(page.read_text())
    assert data["dl2"]["gamma"]["events"] == 50
    assert all(math.isfinite(b["area_m2"]) for b in data["irf"]["effective_area"])


def test_status_of_a_new_analysis_prints_json_and_a_bad_analysis_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analysis", "create", "ana", "--output-path", str(tmp_path)]) == 0
    metadata = tmp_path / "shared_folder" / "analyses" / "ana"
    capsys.readouterr()
    assert main(["status", "-m", str(metadata), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["jobs_total"] == 0 and not view["finished"]
    assert view["tasks"][0]["step"] == "training-energy"
    assert main(["status", "-m", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err



def test_status_watch_refreshes_until_the_analysis_is_finished() -> None:
    from protopipe_grid_interface.cli import status

    states = ["running", "running", "finished"]
    seen: list[str] = []

    def look() -> overview.Overview:
        seen.append(states[len(seen)])
        task = overview.TaskView("dl2", "gamma", "grid", seen[-1], "")
        return overview.Overview("ana", "fake", "now", [task], [], 1, 0, None, None)

    status.watch(look, poll=0.01)
    assert seen == states  # looked again until finished, then returned
