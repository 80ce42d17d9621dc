#!/usr/bin/env python
"""Benchmark the client side of one ``run`` iteration at 100,000 jobs, against the old way.

    python bench/run_iteration_bench.py                    # 100,000 jobs of 10 files, 3 rounds
    python bench/run_iteration_bench.py --jobs 20000       # quicker

One state database of ``--jobs`` submitted jobs over the three stages and their particles (most
Done, some Running, Waiting or Failed; the outcomes of the finished ones recorded), and a
``FakeBackend`` (``hold=True``: nothing runs) that holds the same jobs, some in a newer state
(Running ones now Done or Failed, Waiting ones now Running). One iteration is what ``run`` does
on the client before deciding: the status of every active job asked and what changed recorded
(outputs of the jobs now Done too), each stage's jobs read back, failures counted per site.

- **old way**: ``track.refresh`` as it was (every job read with its spec to find the active
  ones, each state compared on a full ``JobRecord``, one UPDATE per change), the stages taken
  from the ``Store.jobs()`` it returns, failures counted from those records;
- **light**: ``track.refresh_active`` (the active jobs read by ``Store.job_rows``, no spec
  decoded; changes written with ``executemany``), ``Store.job_rows(stage)`` for each stage,
  failures counted from those rows and ``Store.site_outcomes`` (the query ``run`` bans
  black-hole sites with).

Each approach runs in a child process of its own (its memory is its own), ``--rounds`` times, each
round on a fresh copy of the same database, opened before the clock starts (``run`` opens it once).
Reported: the median wall and CPU seconds of the iteration, its memory (the peak RSS during
the iteration, ``VmHWM`` reset just before it, minus the RSS before it: what the iteration
allocates; the fake backend's jobs, the server side, are resident before) and the child's
peak RSS. Both approaches must find the same states (exit status 1 if not). See
bench/README.md.

Importable: :func:`build_state`, :func:`build_fake` and :func:`measure` take any iteration
``(store, backend) -> Iteration``; add one to :data:`APPROACHES` to time it here.
"""

from __future__ import annotations

import argparse
import functools
import gc
import hashlib
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from protopipe_grid_interface.backends.base import Backend
from protopipe_grid_interface.backends.fake import FakeBackend, FakeJob
from protopipe_grid_interface.iterutils import chunked
from protopipe_grid_interface.models import (
    FailureClass,
    JobSpec,
    JobState,
    JobStatus,
    Stage,
)
from protopipe_grid_interface.paths import STAGE_PARTICLES
from protopipe_grid_interface.store import JobRecord, JobRow, Outcome, Store
from protopipe_grid_interface.workflow import engine, track
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.plan import PlanSettings, plan_jobs
from protopipe_grid_interface.workflow.steps import StepConfig, Workflow, WorkflowFile
from protopipe_grid_interface.workflow.tree import create_analysis

HOME = "/vo.cta.in2p3.fr/user/j/jdoe/analyses/bench_ana"
SIM = ("/vo.cta.in2p3.fr/MC/PROD3/Paranal/{particle}/sim_telarray/2150/Data/{block:03d}xxx/"
       "{particle}_20deg_{az}deg_run{run}___cta-prod3_desert-2150m-Paranal-merged.simtel.gz")
STAGE_DIRS = {Stage.TRAINING_ENERGY: "data/TRAINING/for_energy_estimation",
              Stage.TRAINING_CLASSIFICATION: "data/TRAINING/for_particle_classification",
              Stage.DL2: "data/DL2"}
OUTPUT_SE = "CC-IN2P3-USER"
SITES = tuple(f"LCG.SITE{n:02d}.xx" for n in range(20))
#: outcomes per site ``Store.site_outcomes`` looks at
WINDOW = 50
TARGET_SECONDS = 3.0
TARGET_MB = 1024.0


# --- the jobs: where each is in the database, and what the backend says now ------------------
def layout(index: int) -> tuple[JobState, JobState]:
    """(state in the database, state on the backend) of the job at ``index`` (its backend id
    is ``index + 1``), by ``index % 100``: 0-84 Done, 85-92 Running (85-88 now Done, 89 now
    Failed), 93-96 Waiting (93-94 now Running), 97-99 Failed."""
    job_id, slot, site = index + 1, index % 100, SITES[(index // 100) % len(SITES)]
    done = JobState(job_id, JobStatus.DONE, "Execution Complete", "Job Finished Successfully",
                    site)
    running = JobState(job_id, JobStatus.RUNNING, "Application", "protopipe running", site)
    failed = JobState(job_id, JobStatus.FAILED, "Application Finished With Errors",
                      "protopipe Exited With Status 1", site)
    waiting = JobState(job_id, JobStatus.WAITING, "Pilot Agent Submission")
    if slot < 85:
        return done, done
    if slot < 93:
        return running, done if slot < 89 else failed if slot == 89 else running
    if slot < 97:
        return waiting, running if slot < 95 else waiting
    return failed, failed


def make_specs(jobs: int, per_job: int) -> list[JobSpec]:
    """About ``jobs`` realistic specs of ``per_job`` files each, spread over every stage and
    particle, as ``plan_jobs`` makes them (3 cameras: models and configs as input data)."""
    pairs = [(stage, particle) for stage, particles in STAGE_PARTICLES.items()
             for particle in particles]
    specs: list[JobSpec] = []
    for n, (stage, particle) in enumerate(pairs):
        count = (jobs // len(pairs) + (n < jobs % len(pairs))) * per_job
        lfns = [SIM.format(particle=particle.value, block=run // 1000, az=(run % 2) * 180,
                           run=run) for run in range(1, count + 1)]
        settings = PlanSettings(
            analysis="bench_ana",
            lfn_stage_dir=f"{HOME}/{STAGE_DIRS[stage]}/{particle.value}",
            lfn_estimators=f"{HOME}/estimators",
            analysis_config="/home/jdoe/bench_ana/configs/analysis.yaml",
            cam_ids=("LSTCam", "NectarCam", "FlashCam"),
            output_se=OUTPUT_SE,
            files_per_job=per_job,
            merge_script="/opt/pgi/payload/merge_tables.py",
        )
        specs += plan_jobs(stage, particle, lfns, settings)
    return specs


def build_state(path: Path, specs: Sequence[JobSpec]) -> dict[str, float]:
    """The state database at ``path``: every spec planned, submitted to ``fake`` (backend id
    = index + 1), in its :func:`layout` state, outputs of Done jobs and outcomes of finished
    ones recorded. Returns the seconds of each step, by the public API."""
    seconds: dict[str, float] = {}
    names = [spec.name for spec in specs]
    states = [layout(i)[0] for i in range(len(specs))]
    store = Store(path)
    try:
        def step(label: str, action: Callable[[], object]) -> None:
            start = time.perf_counter()
            action()
            seconds[label] = time.perf_counter() - start

        step("add_planned", lambda: store.add_planned(specs))
        step("mark_sending", lambda: store.mark_sending(names))
        step("mark_submitted", lambda: store.mark_submitted(
            FakeBackend.name, [(name, i + 1) for i, name in enumerate(names)]))
        step("update_states", lambda: store.update_states(dict(zip(names, states, strict=True))))
        step("set_output", lambda: store.set_output(
            [(name, 1000 + i, f"{i:08x}") for i, (name, state) in
             enumerate(zip(names, states, strict=True)) if state.status == JobStatus.DONE]))
        start = datetime(2026, 1, 1, tzinfo=UTC)
        step("record_outcomes", lambda: store.record_outcomes([
            Outcome(name, 1, state.backend_id, state.site,
                    "done" if state.status == JobStatus.DONE else FailureClass.APPLICATION.value,
                    "", "accepted" if state.status == JobStatus.DONE else "stop",
                    (start + timedelta(seconds=i)).isoformat(timespec="milliseconds"))
            for i, (name, state) in enumerate(zip(names, states, strict=True))
            if state.status.is_final]))
    finally:
        store.close()
    return seconds


def build_fake(specs: Sequence[JobSpec]) -> FakeBackend:
    """A held ``FakeBackend`` with every spec as a job in its :func:`layout` backend state, the
    outputs of its Done jobs in its catalog. Its ``jobs`` are filled directly (submitting
    100,000 jobs through ``submit`` would time the fake, not the client), ``register`` puts the
    outputs (a few bytes each)."""
    fake = FakeBackend(hold=True, ses=[OUTPUT_SE])
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    for i, spec in enumerate(specs):
        state = layout(i)[1]
        fake.jobs[state.backend_id] = FakeJob(spec, state, stamp, fake.root / str(i + 1))
        if state.status == JobStatus.DONE:
            fake.register(spec.output_lfn, spec.output_se, spec.name.encode())
    fake.ids = itertools.count(len(specs) + 1)
    return fake


# --- one iteration, two ways ---------------------------------------------------------------------
@dataclass(frozen=True)
class Iteration:
    """What an iteration found: how many states changed, each stage's jobs, failed jobs per
    site."""

    changed: int
    stages: dict[Stage, Sequence[JobRecord | JobRow]]
    failures: dict[str, int]


@dataclass(frozen=True)
class Snapshot:
    """An :class:`Iteration` in short, to compare approaches: every job's state as a digest."""

    changed: int
    jobs: int
    digest: str
    failures: dict[str, int]


def snapshot(found: Iteration) -> Snapshot:
    digest = hashlib.sha256()
    for stage, rows in found.stages.items():
        for r in rows:
            digest.update(repr((stage.value, r.name, r.status.value, r.minor_status,
                                r.application_status, r.site, r.backend_id, r.attempts,
                                r.output_size, r.output_checksum)).encode())
    return Snapshot(found.changed, sum(len(rows) for rows in found.stages.values()),
                    digest.hexdigest(), dict(sorted(found.failures.items())))


def failures_per_site(stages: dict[Stage, Sequence[JobRecord | JobRow]]) -> dict[str, int]:
    return dict(Counter(r.site for rows in stages.values() for r in rows
                        if r.status == JobStatus.FAILED))


def iterate_light(store: Store, backend: Backend) -> Iteration:
    """The active jobs' states refreshed, each stage's light rows read, failures per site
    counted (and the recent outcomes per site read, as ``run`` does to ban a site)."""
    changed = track.refresh_active(store, backend)
    stages: dict[Stage, Sequence[JobRecord | JobRow]] = {
        stage: store.job_rows(stage=stage) for stage in Stage}
    store.site_outcomes(WINDOW)
    return Iteration(changed, stages, failures_per_site(stages))


def update_states_the_old_way(store: Store, by_name: dict[str, JobState]) -> int:
    """``Store.update_states`` as it was: every job read with its spec, one UPDATE per change."""
    current = {r.name: r for r in store.jobs(names=list(by_name))}
    changed = 0
    with store.transaction() as db:
        for name, state in by_name.items():
            record = current.get(name)
            if record is None or record.backend_id != state.backend_id:
                continue
            if (record.status, record.minor_status, record.application_status,
                    record.site) == (state.status, state.minor_status,
                                     state.application_status, state.site):
                continue
            store._set(db, name, state.backend_id, state.status, state.minor_status,
                       state.application_status, ", site = ?", (state.site,))
            changed += 1
    return changed


def iterate_the_old_way(store: Store, backend: Backend) -> Iteration:
    """``track.refresh`` as it was (all jobs read to find the active ones, then again to return
    them), the stages and failures per site taken from what it returned."""
    active = [r for r in store.jobs() if r.status.is_active]
    changed = 0
    for chunk in chunked(active, track.STATUS_CHUNK):
        states = backend.status([r.backend_id for r in chunk if r.backend_id is not None])
        by_name = {r.name: states[r.backend_id] for r in chunk
                   if r.backend_id is not None and r.backend_id in states}
        changed += update_states_the_old_way(store, by_name)
        done = [r for r in chunk if r.name in by_name and by_name[r.name].status == JobStatus.DONE]
        if done:
            found = backend.metadata([r.spec.output_lfn for r in done])
            store.set_output([(r.name, found[r.spec.output_lfn].size,
                               found[r.spec.output_lfn].checksum)
                              for r in done if r.spec.output_lfn in found])
    records = store.jobs()
    stages: dict[Stage, Sequence[JobRecord | JobRow]] = {
        stage: [r for r in records if r.stage == stage] for stage in Stage}
    return Iteration(changed, stages, failures_per_site(stages))


@functools.cache
def bench_analysis() -> Analysis:
    """An analysis (grid.yaml's defaults) for the engine, in a folder of its own."""
    folder = Path(tempfile.mkdtemp(prefix="pgi-iteration-analysis-"))
    tree = create_analysis(folder, "bench_ana", None, grid_home=HOME.rsplit("/", 2)[0])
    (tree.configs / "analysis.yaml").write_text("General:\n  config_name: bench_ana\n")
    return Analysis.open(tree.metadata_file)


#: the grid steps of the workflow: what an iteration follows and decides on (downloads and
#: merges are timed by download_bench.py and merge_bench.py)
GRID_STEPS = WorkflowFile(pipeline="protopipe", steps=[
    StepConfig(name=stage.value, kind="grid", stage=stage,
               particles=list(STAGE_PARTICLES[stage])) for stage in Stage])


def iterate_engine(store: Store, backend: Backend) -> Iteration:
    """``run``'s own iteration (``Engine.iterate``) over the grid steps: the states refreshed,
    the finished attempts handled (the newly failed ones decided on by their class' policy,
    retries sent), black-hole sites and held jobs looked for, each step's state read. What it
    changes differs from the other approaches' (it decides), so it is not compared with them."""
    runner = engine.Engine(bench_analysis(), store, backend, Workflow(GRID_STEPS),
                           engine.RunOptions(Path(sys.prefix)))
    runner.iterate()
    return Iteration(-1, {}, {})


#: name -> (label, iteration)
APPROACHES: dict[str, tuple[str, Callable[[Store, Backend], Iteration]]] = {
    "old": ("old way (Store.jobs: every spec decoded)", iterate_the_old_way),
    "light": ("light (job_rows, refresh_active)", iterate_light),
    "engine": ("run's iteration (Engine.iterate, grid steps)", iterate_engine),
}
#: the approaches that must find the same states
COMPARED = ("old", "light")


# --- measuring ---------------------------------------------------------------------------------
def rss_mb(field: str = "VmRSS") -> float:
    """This process's ``VmRSS`` (now) or ``VmHWM`` (peak since the last reset), in MB."""
    with open("/proc/self/status") as stream:
        found = re.search(rf"^{field}:\s+(\d+) kB", stream.read(), re.MULTILINE)
    return int(found.group(1)) / 1024 if found else 0.0


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux: ``clear_refs``); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as stream:
            stream.write("5")
    except OSError:
        return False
    return True


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Measure:
    """One iteration: wall and CPU seconds, MB allocated during it (None: not measurable)."""

    seconds: float
    cpu_seconds: float
    iteration_mb: float | None
    snapshot: Snapshot


def measure(iterate: Callable[[Store, Backend], Iteration], state: Path, backend: Backend,
            workdir: Path) -> Measure:
    """Time ``iterate`` on a fresh copy of the database ``state`` (opened before the clock)."""
    copy = workdir / "round.sqlite"
    shutil.copyfile(state, copy)
    store = Store(copy)
    try:
        gc.collect()
        before = rss_mb()
        peak_known = reset_peak_rss()
        start, cpu_start = time.perf_counter(), cpu_seconds()
        found = iterate(store, backend)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
        grown = rss_mb("VmHWM") - before if peak_known else None
        summary = snapshot(found)
    finally:
        store.close()
        for leftover in workdir.glob("round.sqlite*"):
            leftover.unlink()
    return Measure(seconds, cpu, grown, summary)


def worker(approach: str, state: Path, jobs: int, per_job: int, rounds: int) -> dict[str, object]:
    """Run ``approach`` ``rounds`` times in this process; return its figures."""
    iterate = APPROACHES[approach][1]
    specs = make_specs(jobs, per_job)
    with build_fake(specs) as fake:
        del specs
        with tempfile.TemporaryDirectory(prefix="pgi-iteration-", dir=state.parent) as folder:
            found = [measure(iterate, state, fake, Path(folder)) for _ in range(rounds)]
        active = sum(1 for i in range(len(fake.jobs)) if layout(i)[0].status.is_active)
        grown = [m.iteration_mb for m in found if m.iteration_mb is not None]
        return {
            "approach": approach,
            "jobs": len(fake.jobs),
            "active": active,
            "seconds": statistics.median(m.seconds for m in found),
            "cpu_seconds": statistics.median(m.cpu_seconds for m in found),
            "iteration_mb": max(grown) if grown else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "snapshots": sorted({json.dumps(asdict(m.snapshot), sort_keys=True)
                                 for m in found}),
        }


def run_child(approach: str, state: Path, args: argparse.Namespace) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, __file__, "--worker", approach, "--state", str(state),
         "--jobs", str(args.jobs), "--per-job", str(args.per_job), "--rounds", str(args.rounds)],
        check=True, capture_output=True, text=True,
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the database")
    parser.add_argument("--per-job", type=int, default=10, help="input files per job")
    parser.add_argument("--rounds", type=int, default=3, help="iterations per approach")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the temporary folder (the database is ~1 GB)")
    parser.add_argument("--worker", choices=sorted(APPROACHES), help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.state, args.jobs, args.per_job, args.rounds)))
        return 0

    print(f"one run iteration, {args.jobs:,} jobs of {args.per_job} files, {args.rounds} "
          f"round(s) (python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    with tempfile.TemporaryDirectory(prefix="pgi-iteration-bench-", dir=args.workdir) as folder:
        state = Path(folder) / "state.sqlite"
        start = time.perf_counter()
        specs = make_specs(args.jobs, args.per_job)
        planned = time.perf_counter() - start
        steps = build_state(state, specs)
        del specs
        print(f"state database: {state.stat().st_size / 2**20:,.0f} MB; plan_jobs {planned:.1f} s, "
              + ", ".join(f"{label} {seconds:.1f} s" for label, seconds in steps.items()))
        results = {name: run_child(name, state, args) for name in APPROACHES}

    def mb(value: object) -> str:
        return "n/a" if value is None else f"{float(value):.0f}"  # type: ignore[arg-type]

    rows = [("approach", "jobs", "active", "changed", "wall s", "cpu s", "iteration MB",
             "peak RSS MB")]
    for name, result in results.items():
        found = json.loads(result["snapshots"][0])  # type: ignore[index]
        rows.append((APPROACHES[name][0], f"{result['jobs']:,}", f"{result['active']:,}",
                     f"{found['changed']:,}", f"{result['seconds']:.2f}",
                     f"{result['cpu_seconds']:.2f}", mb(result["iteration_mb"]),
                     mb(result["peak_rss_mb"])))
    base, ours = results["old"], results["light"]

    def ratio(key: str) -> str:
        if base[key] is None or ours[key] is None:
            return "n/a"
        return f"{float(ours[key]) / float(base[key]):.2f}"  # type: ignore[arg-type]

    rows.append(("ratio light / old", "", "", "", ratio("seconds"), ratio("cpu_seconds"),
                 ratio("iteration_mb"), ratio("peak_rss_mb")))
    table(rows)
    met = float(ours["seconds"]) <= TARGET_SECONDS and (  # type: ignore[arg-type]
        ours["iteration_mb"] is not None and float(ours["iteration_mb"]) < TARGET_MB)  # type: ignore[arg-type]
    print(f"target (<= {TARGET_SECONDS:.0f} s, < {TARGET_MB / 1024:.0f} GB): "
          f"{'met' if met else 'MISSED'}")
    compared = [results[name] for name in COMPARED]
    same = all(len(r["snapshots"]) == 1 for r in compared) and len(  # type: ignore[arg-type]
        {r["snapshots"][0] for r in compared}) == 1  # type: ignore[index]
    run_iteration = results["engine"]
    engine_met = float(run_iteration["seconds"]) <= TARGET_SECONDS and (  # type: ignore[arg-type]
        run_iteration["iteration_mb"] is not None
        and float(run_iteration["iteration_mb"]) < TARGET_MB)  # type: ignore[arg-type]
    print(f"run's own iteration within the target: {'met' if engine_met else 'MISSED'}")
    print(f"same states and failures per site from every approach and round: "
          f"{'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
