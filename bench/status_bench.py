#!/usr/bin/env python
"""Benchmark ``protopipe-grid status`` on an analysis of 100,000 jobs with nothing active.

    python bench/status_bench.py                  # 100,000 jobs, 5 rounds
    python bench/status_bench.py --jobs 20000     # quicker

An analysis (protopipe's workflow file, the local backend) whose state database holds
``--jobs`` realistic jobs over every stage and particle (``run_iteration_bench.make_specs``),
each submitted, seen Running, then Done (97 %) or Failed (3 %) with its outcome recorded at
one of 20 sites: a finished campaign's history (about 4 rows per job). Each command runs as
a whole process (``--rounds`` times, the median kept), against the baseline of the same run:

- **status**: ``protopipe-grid status -m A`` (the backend asked for the active jobs: none);
- **status --json**: the same, for scripts;
- **baseline**: ``protopipe-grid jobs status -m A --no-refresh --json``, the per-job listing
  (every job read with its spec).

The target: status under 2 s (exit status 1 if not). See bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from run_iteration_bench import SITES, make_specs

from protopipe_grid_interface.models import JobState, JobStatus
from protopipe_grid_interface.store import Outcome, Store
from protopipe_grid_interface.workflow.tree import create_analysis

TARGET_SECONDS = 2.0
PROGRAM = str(Path(sys.executable).with_name("protopipe-grid"))


def build(folder: Path, jobs: int) -> Path:
    """The analysis (its metadata file) with a finished campaign of ``jobs`` jobs."""
    tree = create_analysis(folder, "bench_ana", None, backend="local",
                           local_root=folder / "grid")
    (tree.configs / "analysis.yaml").write_text("General:\n  config_name: bench_ana\n")
    specs = make_specs(jobs, 10)
    names = [spec.name for spec in specs]
    store = Store(tree.state_db)
    try:
        store.add_planned(specs)
        store.mark_sending(names)
        store.mark_submitted("local", [(name, i + 1) for i, name in enumerate(names)])
        site = [SITES[i % len(SITES)] for i in range(len(names))]
        store.update_states({name: JobState(i + 1, JobStatus.RUNNING, "Application", "",
                                            site[i]) for i, name in enumerate(names)})
        final = {name: JobState(i + 1, JobStatus.FAILED if i % 100 >= 97 else JobStatus.DONE,
                                "", "", site[i]) for i, name in enumerate(names)}
        store.update_states(final)
        store.set_output([(name, 50_000, f"{i:08x}") for i, name in enumerate(names)
                          if final[name].status == JobStatus.DONE])
        start = datetime(2026, 1, 1, tzinfo=UTC)
        store.record_outcomes([
            Outcome(name, 1, i + 1, site[i], "done" if state.status == JobStatus.DONE
                    else "application", "", "accepted" if state.status == JobStatus.DONE
                    else "stop", (start + timedelta(seconds=i)).isoformat())
            for i, (name, state) in enumerate(final.items())])
    finally:
        store.close()
    return tree.metadata_file


def timed(argv: list[str], rounds: int) -> float:
    """Median wall seconds of the command, run as a whole process."""
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - fixed list
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="pgi-status-bench-"))
    try:
        start = time.perf_counter()
        metadata = build(folder, args.jobs)
        print(f"state database of {args.jobs} jobs built in {time.perf_counter() - start:.0f} s")
        commands = {
            "status": [PROGRAM, "status", "-m", str(metadata)],
            "status --json": [PROGRAM, "status", "-m", str(metadata), "--json"],
            "baseline: jobs status --no-refresh --json": [
                PROGRAM, "jobs", "status", "-m", str(metadata), "--no-refresh", "--json"],
        }
        found = {label: timed(command, args.rounds) for label, command in commands.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    baseline = found["baseline: jobs status --no-refresh --json"]
    print(f"{'command':45} {'median s':>9} {'/ baseline':>11}")
    for label, seconds in found.items():
        print(f"{label:45} {seconds:9.2f} {seconds / baseline:11.2f}")
    ok = found["status"] < TARGET_SECONDS
    print(f"status at {args.jobs} jobs, nothing active: {found['status']:.2f} s "
          f"(target < {TARGET_SECONDS:.0f} s): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
