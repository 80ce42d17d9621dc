"""``run`` killed with SIGKILL at five random moments of the demo, then ``run --watch``: no job
sent twice, every output present once, the same results as a demo never interrupted.

The demo runs real protopipe on the local backend (minutes): this test is marked ``demo``, left
out of the test command; CI runs it after its own uninterrupted demo, whose folder it compares
with, as one does by hand::

    PGI_REFERENCE_DEMO=demo-analysis .venv/bin/pytest -m demo -s tests/test_run_kill.py

(without ``PGI_REFERENCE_DEMO`` only the invariants are checked). Each kill takes the
demo's whole process group (the command and the local protopipe steps it started, as a killed
session would); the local backend's jobs run in sessions of their own and go on, as grid jobs
do. The moments are drawn from ``PGI_KILL_SEED`` (printed), after the workflow has started.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.demo

KILLS = 5
BIN = Path(sys.executable).parent
ANALYSIS = Path("shared_folder/analyses/demo")
#: results whose figures name backend ids or times (they differ from run to run)
VARYING = ("canary ",)


def started(workdir: Path) -> bool:
    """True once the demo's workflow has sent its first job."""
    state = workdir / ANALYSIS / "state.sqlite"
    if not state.is_file():
        return False
    try:
        with sqlite3.connect(state) as db:
            return bool(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    except sqlite3.Error:
        return False


def demo(workdir: Path, fresh: bool) -> subprocess.Popen[bytes]:
    argv = [str(BIN / "protopipe-grid"), "demo", "--workdir", str(workdir)]
    return subprocess.Popen([*argv, "--fresh"] if fresh else argv, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_at_random(workdir: Path, rng: random.Random) -> list[float]:
    """Start the demo and kill it ``KILLS`` times, each after a random time once started;
    return the moments (seconds after each start) of the kills that came before the end."""
    moments = []
    for kill in range(KILLS):
        process = demo(workdir, fresh=kill == 0)
        deadline = time.monotonic() + 600
        while not started(workdir) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        delay = rng.uniform(3, 60)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            moments.append(round(delay, 1))
        else:
            break  # the demo finished before this kill
    return moments


def results(workdir: Path) -> dict[str, object]:
    """The results table of the demo in ``workdir``, its folder's name taken out of paths."""
    with sqlite3.connect(workdir / ANALYSIS / "state.sqlite") as db:
        return {f"{step} {particle}": json.loads(figures.replace(str(workdir), "WORKDIR"))
                for step, particle, figures in
                db.execute("SELECT step, particle, figures FROM results")
                if not step.startswith(VARYING)}


def test_run_killed_five_times_then_watched_sends_no_job_twice_and_loses_nothing(
        tmp_path: Path) -> None:
    seed = int(os.environ.get("PGI_KILL_SEED", random.randrange(10**6)))
    print(f"PGI_KILL_SEED={seed}")
    workdir = tmp_path / "demo"
    moments = kill_at_random(workdir, random.Random(seed))
    print(f"killed after {moments} s")

    metadata = workdir / ANALYSIS / "analysis_metadata.yaml"
    finish = subprocess.run([str(BIN / "protopipe-grid"), "run", "-m", str(metadata), "--watch",
                             "--poll", "2"], capture_output=True, text=True, check=False)
    assert finish.returncode == 0, finish.stdout[-3000:] + finish.stderr[-3000:]

    state = workdir / ANALYSIS / "state.sqlite"
    catalog = workdir / "local-grid" / "catalog.sqlite"
    with sqlite3.connect(state) as db:
        jobs = {name: (attempts, status, lfn, size, checksum) for name, attempts, status, lfn,
                size, checksum in db.execute("SELECT name, attempts, status, output_lfn, "
                                             "output_size, output_checksum FROM jobs")}
    with sqlite3.connect(catalog) as db:
        sent: dict[str, int] = {}
        for (name,) in db.execute("SELECT name FROM jobs"):
            sent[name] = sent.get(name, 0) + 1
        files = {lfn: (size, checksum) for lfn, size, checksum in
                 db.execute("SELECT lfn, size, checksum FROM files")}

    # no job sent twice: every job the backend holds is an attempt the state database knows
    assert set(sent) == set(jobs)
    assert {name: n for name, n in sent.items() if n != jobs[name][0]} == {}
    # every output present once, as recorded
    done = {name: row for name, row in jobs.items() if not name.endswith("_canary")}
    assert {row[1] for row in done.values()} == {"Done"}
    for name, (_, _, lfn, size, checksum) in done.items():
        assert files.get(lfn) == (size, checksum), name
    outputs = {row[2] for row in done.values()}
    data = [lfn for lfn in files if "/demo/data/" in lfn]
    assert sorted(lfn for lfn in data if lfn not in outputs) == []  # no partial, no canary

    reference = os.environ.get("PGI_REFERENCE_DEMO")
    if reference:
        assert results(workdir) == results(Path(reference))
