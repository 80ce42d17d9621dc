"""What the report shows, gathered from the state database and the analysis folder only (so
it can be rebuilt at any time, mid-campaign too), as JSON-able data: the page embeds it, and
its plots and tables are drawn from it.

- the analysis: its configuration files and their hashes, software versions, every command
  run (provenance from the ``commands`` table);
- the jobs: the workflow's tasks (:mod:`..workflow.overview`), job states over time (from the
  status history), throughput, failures by class and by site, the time each job took between
  Running and its end, output volume;
- the physics: the results each local step recorded (rows merged, models' scores, IRF
  warnings), reconstructed energy and gammaness of the merged DL2 files, and the IRFs.
"""

from __future__ import annotations

import math
import platform
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..backends.base import Backend
from ..exceptions import DataError
from ..models import Particle, Stage
from ..paths import merged_file_name
from ..store import Store
from ..workflow import engine, overview, performance
from ..workflow.analysis import Analysis
from ..workflow.ctapipe_tasks import data_file
from ..workflow.results import merge_step

#: points of the job-states-over-time curves
TIMELINE_POINTS = 200
#: the histograms of the DL2 files: log10(reconstructed energy / TeV) and gammaness
LOG_ENERGY_BINS = np.linspace(-2.0, 2.5, 28)
GAMMANESS_BINS = np.linspace(0.0, 1.0, 21)
#: libraries whose versions the report gives
LIBRARIES = ("numpy", "astropy", "h5py", "tables", "matplotlib", "rich", "pydantic")


def gather(analysis: Analysis, store: Store, backend: Backend) -> dict[str, Any]:
    """Everything the report shows (see the module docstring)."""
    from .. import __version__

    view = overview.build(analysis, store, backend, engine.open_workflow(analysis),
                          refresh=False)
    transitions = store.transitions()
    return {
        "analysis": {"name": analysis.tree.name, "folder": str(analysis.tree.root),
                     "backend": backend.name, "generated": view.generated},
        "software": {"protopipe-grid-interface": __version__,
                     "python": platform.python_version(),
                     **{name: version(name) for name in LIBRARIES},
                     "payload (grid.yaml Software)": analysis.grid.Software.model_dump()},
        "configs": analysis.config_hashes(),
        "commands": store.commands(),
        "overview": view.to_json(),
        "jobs": {"by_state": dict(sorted(sum_states(store).items()))},
        "timeline": timeline(transitions),
        "throughput": throughput(store.done_times()),
        "run_seconds": run_seconds(transitions),
        "results": [asdict(result) for result in store.results()],
        "dl2": dl2_distributions(analysis, store),
        "irf": irfs(store) if analysis.pipeline == "protopipe" else {
            "problem": "the ctapipe IRFs are not drawn here yet: their headline figures are "
                       "the 'performance ctapipe' result"},
    }


def sum_states(store: Store) -> Counter[str]:
    """Jobs by state, the whole analysis (canaries left out)."""
    counts: Counter[str] = Counter()
    for _, _, status, count, _ in store.counts():
        counts[status] += count
    return counts


def timeline(transitions: list[tuple[str, str, str, str, str]]) -> dict[str, Any]:
    """How many jobs were in each state over time, at :data:`TIMELINE_POINTS` moments from the
    first recorded change to the last (a job is counted from its first recorded state)."""
    if not transitions:
        return {"times": [], "states": {}}
    events = sorted((datetime.fromisoformat(t), name, status)
                    for name, _, _, status, t in transitions)
    start, end = events[0][0], events[-1][0]
    span = (end - start).total_seconds()
    points = TIMELINE_POINTS if span > 0 else 1
    states = sorted({status for _, _, status in events})
    series: dict[str, list[int]] = {state: [] for state in states}
    current: dict[str, str] = {}
    counts: Counter[str] = Counter()
    times, index = [], 0
    for point in range(points):
        moment = span * point / max(points - 1, 1)
        while index < len(events) and (events[index][0] - start).total_seconds() <= moment:
            _, name, status = events[index]
            if name in current:
                counts[current[name]] -= 1
            current[name] = status
            counts[status] += 1
            index += 1
        times.append(moment)
        for state in states:
            series[state].append(counts[state])
    return {"start": start.isoformat(), "seconds": times, "states": series}


def throughput(done_times: list[str]) -> dict[str, Any]:
    """Jobs that became Done per minute (a campaign shorter than two hours) or per hour, from
    the first."""
    if not done_times:
        return {"unit": "hour", "start": [], "done": []}
    moments = [datetime.fromisoformat(t) for t in done_times]
    offsets = [(m - moments[0]).total_seconds() for m in moments]
    unit, seconds = ("minute", 60) if offsets[-1] < 7200 else ("hour", 3600)
    bins = max(1, math.ceil(offsets[-1] / seconds))
    counts, edges = np.histogram(offsets, bins=bins, range=(0, bins * seconds))
    return {"unit": unit, "start": (edges[:-1] / seconds).tolist(), "done": counts.tolist()}


def run_seconds(transitions: list[tuple[str, str, str, str, str]]) -> dict[str, list[float]]:
    """Seconds from Running to the end (Done, Failed, Killed) of each attempt, by stage, from
    the status history: as precise as the polling that recorded it. The backend's own wall
    and CPU times are not collected."""
    started: dict[str, datetime] = {}
    seconds: dict[str, list[float]] = defaultdict(list)
    for name, stage, _, status, t in transitions:
        if status == "Running":
            started.setdefault(name, datetime.fromisoformat(t))
        elif status in ("Done", "Failed", "Killed") and name in started:
            took = datetime.fromisoformat(t) - started.pop(name)
            seconds[stage].append(took.total_seconds())
    return dict(seconds)


def dl2_distributions(analysis: Analysis, store: Store) -> dict[str, Any]:
    """Histograms of reconstructed energy and gammaness of each particle's DL2 file: the
    merged one (protopipe), or the one the models were applied to (ctapipe)."""
    found: dict[str, Any] = {}
    ctapipe = analysis.pipeline == "ctapipe"
    made = {r.particle for r in store.results(f"apply {Stage.DL2.value}" if ctapipe
                                              else merge_step(Stage.DL2.value))}
    mode = analysis.grid.General.mode
    for particle in Particle:
        if particle.value not in made:
            continue
        path = (data_file(analysis.tree, Stage.DL2, particle, "applied") if ctapipe else
                analysis.tree.data_dir(Stage.DL2, particle) / merged_file_name(
                    Stage.DL2, particle, mode))
        try:
            energy, gammaness = ctapipe_dl2(path) if ctapipe else protopipe_dl2(path)
        except (OSError, KeyError, ValueError, StopIteration) as exc:
            found[particle.value] = {"file": str(path), "problem": f"not readable: {exc}"}
            continue
        positive = energy[np.isfinite(energy) & (energy > 0)]
        found[particle.value] = {
            "file": str(path), "events": int(energy.size),
            "log_energy": histogram(np.log10(positive), LOG_ENERGY_BINS),
            "gammaness": histogram(gammaness[np.isfinite(gammaness)], GAMMANESS_BINS)}
    return found


def protopipe_dl2(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructed energy and gammaness of protopipe's merged DL2 file (``/reco_events``)."""
    with h5py.File(path, "r") as h5:
        events = h5["reco_events"]
        return (np.asarray(events["reco_energy"], dtype=float),
                np.asarray(events["gammaness"], dtype=float))


def ctapipe_dl2(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructed energy and gammaness of a ctapipe DL2 file: the first reconstructor's
    table under ``/dl2/event/subarray/energy`` and ``.../particle_type`` (PyTables: ctapipe
    compresses with blosc, which h5py cannot read)."""
    import tables

    with tables.open_file(str(path), "r") as h5:
        energy = next(iter(h5.get_node("/dl2/event/subarray/energy")))
        score = next(iter(h5.get_node("/dl2/event/subarray/particle_type")))
        column = next(n for n in energy.colnames if n.endswith("_energy"))
        prediction = next(n for n in score.colnames if n.endswith("_prediction"))
        return (np.asarray(energy.col(column), dtype=float),
                np.asarray(score.col(prediction), dtype=float))


def histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, list[float]]:
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def irfs(store: Store) -> dict[str, Any]:
    """The IRFs of the performance step's file, per energy bin (pyirf's under- and overflow
    bins left out), with the background rate; {"problem": ...} when there is none."""
    recorded = store.results(performance.STEP)
    if not recorded:
        return {"problem": "no performance step yet"}
    path = Path(recorded[-1].figures.get("irf_file", ""))
    try:
        summary = performance.summarise(path)
        background = background_rate(path)
    except DataError as exc:
        return {"problem": exc.message}
    return {**summary.figures(), "background": background, "warnings": summary.warnings}


def background_rate(path: Path) -> dict[str, Any]:
    """The BACKGROUND HDU at the first offset bin, against reconstructed energy."""
    from astropy.io import fits

    with fits.open(path) as hdus:
        if "BACKGROUND" not in hdus:
            return {"problem": "no BACKGROUND HDU"}
        hdu = hdus["BACKGROUND"]
        low = np.ravel(hdu.data["ENERG_LO"][0])
        high = np.ravel(hdu.data["ENERG_HI"][0])
        rate = np.asarray(hdu.data["BKG"][0], dtype=float).reshape(-1, len(low))[0]
        unit = hdu.columns["BKG"].unit or ""
    keep = (low > 0) & np.isfinite(high)
    return {"low": low[keep].tolist(), "high": high[keep].tolist(),
            "rate": [v if math.isfinite(v) else None for v in rate[keep].tolist()],
            "unit": str(unit)}
