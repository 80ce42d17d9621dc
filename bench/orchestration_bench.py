#!/usr/bin/env python
"""The demo's orchestration overhead: its wall time against its critical path.

    python bench/orchestration_bench.py                      # runs the demo (local), then measures
    python bench/orchestration_bench.py --from /tmp/demo     # measures a demo already finished

Both figures come from the same run's own records:

- **wall**: from the first job sent (the state database's first ``Sending``) to the last step of
  the workflow finished (its ``steps`` table);
- **critical path**: the longest chain through the workflow file's tasks, each weighing what
  could not be avoided by a perfect orchestrator given the same backend: a grid task its
  stage's canary run (Running to Done) plus the execution of the stage up to its particle's
  last job (from the stage's first Running to that last Done, as the local backend's own job
  history records them: a queue the backend's cores impose on the stage's jobs is the
  backend's, not the orchestration's); a local task (download and merge after the stage's last
  job, enlargement, a model, an upload, the IRFs) the seconds it took, as ``run`` recorded
  them.

The overhead is wall / critical path - 1: submission, polling, waiting between steps. The
target (issue 13) is within 15 %.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from protopipe_grid_interface.workflow import engine
from protopipe_grid_interface.workflow.analysis import Analysis

ANALYSIS = Path("shared_folder/analyses/demo")
TARGET = 1.15


def stamp(text: str) -> float:
    """Seconds since the epoch of a time as the state database (ISO 8601) or the local backend
    (``YYYY-MM-DD HH:MM:SS``, UTC) writes it."""
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def job_spans(state: Path, catalog: Path) -> dict[str, tuple[float, float]]:
    """(first Running, last Done) of each job name, from the backend's own history of the
    attempts the state database knows."""
    with sqlite3.connect(state) as db:
        ids = {int(i): name for name, i in db.execute("SELECT name, backend_id FROM attempts")}
    spans: dict[str, tuple[float, float]] = {}
    with sqlite3.connect(catalog) as db:
        for job_id, status, when in db.execute("SELECT id, status, time FROM job_history"):
            name = ids.get(int(job_id))
            if name is None or status not in ("Running", "Done"):
                continue
            start, end = spans.get(name, (float("inf"), float("-inf")))
            at = stamp(when)
            spans[name] = ((min(start, at), end) if status == "Running" else (start, max(end, at)))
    return spans


def measure(workdir: Path) -> int:
    analysis = Analysis.open(workdir / ANALYSIS / "analysis_metadata.yaml")
    workflow = engine.open_workflow(analysis)
    state = analysis.tree.state_db
    spans = job_spans(state, workdir / "local-grid" / "catalog.sqlite")
    with sqlite3.connect(state) as db:
        jobs = list(db.execute("SELECT name, stage, particle FROM jobs"))
        first_sent = min(stamp(t) for (t,) in db.execute(
            "SELECT time FROM history WHERE status = 'Sending'"))
        steps = {(step, particle): (stamp(finished), seconds) for step, particle, finished, seconds
                 in db.execute("SELECT step, particle, finished, seconds FROM steps")}
    wall = max(finished for finished, _ in steps.values()) - first_sent

    weight: dict[tuple[str, str], float] = {}
    for task in workflow.order:
        if task.step.kind == "grid":
            stage, particle = task.step.stage, task.particle
            assert stage is not None and particle is not None
            stage_jobs = [(name, pa) for name, st, pa in jobs
                          if st == stage.value and name in spans]
            runs = [spans[name] for name, _ in stage_jobs if not name.endswith("_canary")]
            mine = [spans[name] for name, pa in stage_jobs
                    if pa == particle.value and not name.endswith("_canary")]
            canaries = [spans[name] for name, _ in stage_jobs if name.endswith("_canary")]
            weight[task.key] = (max(end for _, end in mine) - min(start for start, _ in runs)
                                + sum(end - start for start, end in canaries))
        else:
            weight[task.key] = steps[task.key][1]
    finish: dict[tuple[str, str], float] = {}
    before: dict[tuple[str, str], tuple[str, str] | None] = {}
    for task in workflow.order:
        needs = workflow.needs(task)
        longest = max(needs, key=lambda n: finish[n.key], default=None)
        finish[task.key] = weight[task.key] + (finish[longest.key] if longest else 0.0)
        before[task.key] = longest.key if longest else None
    end = max(finish, key=lambda key: finish[key])
    critical = finish[end]
    chain = []
    key: tuple[str, str] | None = end
    while key is not None:
        chain.append(key)
        key = before[key]
    print(f"{'task on the critical path':42} {'seconds':>8}")
    for step, particle in reversed(chain):
        print(f"{(step + ' ' + particle).strip():42} {weight[step, particle]:8.1f}")
    ratio = wall / critical
    print(f"critical path {critical:.1f} s, wall {wall:.1f} s: wall / critical path = "
          f"{ratio:.3f} (overhead {100 * (ratio - 1):.1f} %; target <= {100 * (TARGET - 1):.0f} %"
          f": {'met' if ratio <= TARGET else 'MISSED'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--from", dest="done", type=Path, help="a finished demo's --workdir")
    parser.add_argument("--workdir", type=Path, help="where to run the demo (default: a "
                        "temporary folder)")
    args = parser.parse_args(argv)
    if args.done:
        return measure(args.done)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pgi-orchestration-"))
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "protopipe-grid"), "demo", "--workdir",
                    str(workdir), "--fresh"], check=True, stdout=subprocess.DEVNULL)
    print(f"demo in {workdir}: {time.perf_counter() - start:.0f} s")
    return measure(workdir)


if __name__ == "__main__":
    sys.exit(main())
