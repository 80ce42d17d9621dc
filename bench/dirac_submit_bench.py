"""Submitting and following N jobs on a real DIRAC: the original tool's loop against bulk calls.

Run on the DIRAC box, in its client environment (see dirac-box/client-env.sh)::

    eval "$(bash dirac-box/client-env.sh)"
    python bench/dirac_submit_bench.py               # 1000 jobs per approach (~5 min)
    python bench/dirac_submit_bench.py --jobs 200    # quicker

In one run, on the same server, with the same trivial job (one step, ``python -c pass``, no input
data):

- **baseline**: the original ``submit_jobs.py`` loop, re-implemented: one ``Job()`` and one
  ``Dirac().submitJob`` per job (name, CPU time, input sandbox with the pilot script, the step as
  an executable with its command string, the ``ls -lh`` check, output data);
- **bulk**: ``DiracBackend.submit``: the input sandbox uploaded once, then parametric jobs of at
  most ``MaxParametricJobs`` each, referring to it.

then the state of the bulk jobs, read as the original did (one ``getJobAttributes`` per job) and
with ``DiracBackend.status`` (one ``getJobStatus`` per 1000 jobs).

Server round trips are counted as calls of the DIRAC API (``submitJob``,
``confirmBulkSubmission``, ``uploadFilesAsSandbox``, ``getJobAttributes``, ``getJobStatus``).
The original's ``submitJob`` uploads the job's sandbox too (two requests); ours uploads it once
per submission, and each parametric chunk is DIRAC's transaction: ``submitJob``, then
``confirmBulkSubmission`` (two requests, both counted). Every job asks
for a tag no worker offers, so none of them is ever run, and all are killed right after their
submission and deleted at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: a tag no worker offers: the benchmark's jobs are queued but never run
HOLD_TAG = "pgi-bench-hold"


def counted(function: Callable[..., Any], counter: list[int]) -> Callable[..., Any]:
    """``function``, adding 1 to ``counter[0]`` on every call."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return function(*args, **kwargs)

    return wrapper


def baseline_submit(specs: Sequence[Any], group: str, workdir: Path) -> tuple[list[int], int]:
    """The original tool: one Job and one submitJob per job. Returns (ids, submitJob calls)."""
    from DIRAC.Interfaces.API.Dirac import Dirac
    from DIRAC.Interfaces.API.Job import Job

    pilot = workdir / "pilot.sh"  # the original's aux/pilot.sh: run the command it is given
    pilot.write_text('#!/bin/bash\neval "$@"\n')
    pilot.chmod(0o755)
    dirac = Dirac()
    calls = [0]
    submit = counted(dirac.submitJob, calls)
    ids = []
    for spec in specs:
        j = Job()
        j.setCPUTime(spec.cpu_time)
        j.setName(spec.name)
        j.setJobGroup(group)
        j.setInputSandbox([str(pilot)])
        j.setExecutable("./pilot.sh", shlex.join(spec.steps[0]))
        j.setExecutable(f"ls -lh {spec.output_file}")
        j.setOutputData([spec.output_file], outputSE=spec.output_se,
                        outputPath=str(Path(spec.output_lfn).parent))
        j.setTag([HOLD_TAG])
        result = submit(j)
        if not result["OK"]:
            raise RuntimeError(f"baseline submitJob: {result['Message']}")
        ids.append(int(result["Value"]))
    return ids, calls[0]


def baseline_status(ids: Sequence[int]) -> tuple[dict[int, str], int]:
    """The original tool's way of reading job states: getJobAttributes per job."""
    from DIRAC.Interfaces.API.Dirac import Dirac

    dirac = Dirac()
    calls = [0]
    attributes = counted(dirac.getJobAttributes, calls)
    states = {}
    for job_id in ids:
        result = attributes(job_id)
        if not result["OK"]:
            raise RuntimeError(f"getJobAttributes {job_id}: {result['Message']}")
        states[job_id] = result["Value"]["Status"]
    return states, calls[0]


def make_specs(n: int, analysis: str, home: str, se: str) -> list[Any]:
    from protopipe_grid_interface.models import JobSpec, Particle, Stage

    return [JobSpec(name=f"{analysis}_{i:05d}", analysis=analysis, stage=Stage.DL2,
                    particle=Particle.GAMMA, input_lfns=(), steps=(("python", "-c", "pass"),),
                    output_file="out.txt", output_lfn=f"{home}/{analysis}/{i:05d}.txt",
                    output_se=se, cpu_time=600, tags=(HOLD_TAG,))
            for i in range(n)]


def cleanup(backend: Any, groups: Sequence[str]) -> tuple[int, int]:
    """Delete (DIRAC kills them first) every job of ``groups``; return (found, not deleted)."""
    from protopipe_grid_interface.exceptions import BackendError
    from protopipe_grid_interface.models import JobSelection, JobStatus

    ids = sorted({i for group in groups
                  for i in backend.select_jobs(JobSelection(job_group=group))})
    try:
        backend.delete(ids)
    except BackendError as exc:
        print(f"cleanup: {exc}", file=sys.stderr)
    left = sum(s.status != JobStatus.DELETED for s in backend.status(ids).values())
    return len(ids), left


def timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per approach (1000)")
    parser.add_argument("--verbose", action="store_true", help="keep DIRAC's own log lines")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    import DIRAC

    from protopipe_grid_interface.backends.dirac import DiracBackend, Environment

    se = os.environ.get("BOX_SE", "BOX-SE")
    backend = DiracBackend(Environment("venv", sys.prefix), ses=[se])
    home = backend.home()  # initialises DIRAC, whose logger the backend keeps quiet
    if args.verbose:
        from DIRAC import gLogger

        gLogger.setLevel("INFO")
    token = uuid.uuid4().hex[:8]
    base_specs = make_specs(args.jobs, f"pgibench-{token}-orig", home, se)
    bulk_specs = make_specs(args.jobs, f"pgibench-{token}-bulk", home, se)
    groups = [base_specs[0].job_group, bulk_specs[0].job_group]
    n = args.jobs
    print(f"submitting {n:,} trivial jobs per approach to DIRAC {DIRAC.version} "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"MaxParametricJobs {backend.max_parametric()})", flush=True)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="pgi-bench-") as tmp:
            (base_ids, base_calls), base_s = timed(baseline_submit, base_specs, groups[0],
                                                   Path(tmp))
        backend.kill(base_ids)
        print(f"  baseline submitted in {base_s:.1f} s", flush=True)

        before = backend.round_trips
        bulk_ids, bulk_s = timed(backend.submit, bulk_specs)
        bulk_calls = backend.round_trips - before
        print(f"  bulk submitted in {bulk_s:.1f} s", flush=True)
        assert len(set(bulk_ids)) == n and len(set(base_ids)) == n

        (old_states, old_calls), old_s = timed(baseline_status, bulk_ids)
        before = backend.round_trips
        states, status_s = timed(backend.status, bulk_ids)
        status_calls = backend.round_trips - before
        assert set(states) == set(bulk_ids) == set(old_states)
        backend.kill(bulk_ids)

        rows = [
            ("submit: original tool (Job + submitJob per job)", n, base_s, n / base_s,
             base_calls),
            ("submit: DiracBackend.submit (parametric)", n, bulk_s, n / bulk_s, bulk_calls),
            ("status: original tool (getJobAttributes per job)", n, old_s, n / old_s, old_calls),
            ("status: DiracBackend.status (bulk)", n, status_s, n / status_s, status_calls),
        ]
    finally:
        found, left = cleanup(backend, groups)

    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{'approach':<{width}}{'jobs':>7}{'wall s':>9}{'jobs/s':>10}{'round trips':>13}")
    for i, (label, jobs, seconds, rate, calls) in enumerate(rows):
        print(f"{label:<{width}}{jobs:>7,}{seconds:>9.2f}{rate:>10.1f}{calls:>13,}")
        if i % 2:
            base = rows[i - 1]
            print(f"{'  ratio bulk / original':<{width}}{'':>7}{seconds / base[2]:>9.3f}"
                  f"{rate / base[3]:>10.1f}{calls / base[4]:>13.3f}")
    print(f"\ncleanup: {found:,} jobs killed and deleted, {left} left")
    return 1 if left or found != 2 * n else 0


if __name__ == "__main__":
    sys.exit(main())
