"""Where an analysis stands, for the status screen (``protopipe-grid status``) and the report:
each task of its workflow with its jobs' states, failures by class, outputs and what ``run``
will do next; each site's success rate; the throughput and the time left.

Read from the state database; with ``refresh`` the backend is asked for the state of the
active jobs only (one call per thousand, :func:`.track.refresh_active`). What ``run`` would do
next is its own dry run (:class:`.engine.Engine`), so the two never disagree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..backends.base import Backend
from ..models import JobStatus
from ..store import Store
from ..text import duration_text, size_text
from . import engine, track
from .analysis import Analysis
from .steps import Workflow

#: the throughput is measured over the last this many jobs that became Done
RATE_WINDOW = 500
DONE = "done"


@dataclass
class TaskView:
    """One task (a step, for a particle or for the whole analysis)."""

    step: str
    particle: str
    kind: str
    #: the engine's state: finished, running, ready, waiting, blocked
    state: str
    #: what ``run`` will do next, or why it waits
    next: str
    #: the jobs of a grid step by state
    jobs: dict[str, int] = field(default_factory=dict)
    #: failed attempts by failure class
    failures: dict[str, int] = field(default_factory=dict)
    #: outputs in the catalog (Done jobs) and their bytes
    outputs: int = 0
    output_bytes: int = 0
    #: outputs downloaded here, verified, and their bytes
    downloaded: int = 0
    downloaded_bytes: int = 0

    @property
    def outputs_text(self) -> str:
        """Its outputs as people read them: "3 in catalog (210 kB); 3 here (210 kB)"."""
        parts = []
        if self.outputs:
            parts.append(f"{self.outputs} in catalog ({size_text(self.output_bytes)})")
        if self.downloaded:
            parts.append(f"{self.downloaded} here ({size_text(self.downloaded_bytes)})")
        return "; ".join(parts)


@dataclass
class SiteView:
    """One site: attempts that ended Done or failed there, and its ban."""

    site: str
    done: int
    failed: int
    banned: str = ""

    @property
    def success_rate(self) -> float | None:
        ended = self.done + self.failed
        return self.done / ended if ended else None


@dataclass
class Overview:
    """The whole analysis at one moment."""

    analysis: str
    backend: str
    generated: str
    tasks: list[TaskView]
    sites: list[SiteView]
    jobs_total: int
    jobs_done: int
    #: jobs that became Done per hour, over the last :data:`RATE_WINDOW` (None: too few)
    rate_per_hour: float | None
    #: the grid jobs not Done yet at that rate (None: no estimate)
    seconds_left: float | None

    @property
    def finished(self) -> bool:
        return bool(self.tasks) and all(t.state == "finished" for t in self.tasks)

    @property
    def progress(self) -> str:
        """One line: jobs done, the throughput, the time left, the blocked steps."""
        if self.finished:
            return f"finished: {self.jobs_done} grid job(s) done"
        line = f"{self.jobs_done} of {self.jobs_total} grid job(s) done"
        if self.rate_per_hour:
            line += f", {self.rate_per_hour:.3g} per hour (the last {RATE_WINDOW} at most)"
        if self.seconds_left is not None:
            line += f", about {duration_text(self.seconds_left)} left"
        blocked = sum(t.state == "blocked" for t in self.tasks)
        return line + (f"; {blocked} step(s) blocked" if blocked else "")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for site, view in zip(data["sites"], self.sites, strict=True):
            site["success_rate"] = view.success_rate
        for task, of in zip(data["tasks"], self.tasks, strict=True):
            task["outputs_text"] = of.outputs_text
        data["finished"], data["progress"] = self.finished, self.progress
        return data


def counts_text(counts: dict[str, int]) -> str:
    """Counts by what they count: "2 Done, 1 Running"."""
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))


def build(analysis: Analysis, store: Store, backend: Backend, workflow: Workflow,
          refresh: bool = True) -> Overview:
    """The analysis' overview (see the module docstring)."""
    if refresh:
        track.refresh_active(store, backend)
    runner = engine.Engine(analysis, store, backend, workflow,
                           engine.RunOptions(Path(), dry_run=True))
    states = runner.iterate().tasks
    jobs: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    outputs: dict[tuple[str, str], int] = defaultdict(int)
    # the jobs the dry run read (canaries left out), counted here rather than read again
    for (of_stage, of_particle), rows in (runner.grouped or
                                          engine.group(store.job_rows())).items():
        key = (of_stage.value, of_particle.value)
        counts = Counter(row.status.value for row in rows)
        jobs[key] = dict(sorted(counts.items()))
        outputs[key] = sum(row.output_size or 0 for row in rows)
    failures: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    by_site: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for stage, particle, site, outcome, count in store.outcome_counts():
        if outcome != DONE:
            found = failures[stage, particle]
            found[outcome] = found.get(outcome, 0) + count
        if site:
            by_site[site][outcome != DONE] += count
    downloads = {(s, p): (n, size) for s, p, n, size in store.download_counts()}
    tasks = []
    for state in states:
        step, of = state.task.step, state.task.particle
        view = TaskView(step.name, of.value if of else "", step.kind, state.state,
                        state.detail)
        if step.stage is not None and of is not None:
            key = (step.stage.value, of.value)
            if step.kind == "grid":
                view.jobs = jobs.get(key, {})
                view.failures = failures.get(key, {})
                view.outputs = view.jobs.get(JobStatus.DONE.value, 0)
                view.output_bytes = outputs.get(key, 0)
            elif step.kind == "collect":
                view.downloaded, view.downloaded_bytes = downloads.get(key, (0, 0))
        tasks.append(view)
    bans = store.bans()
    sites = [SiteView(site, done, failed, bans.get(site, ("", ""))[0])
             for site, (done, failed) in sorted(by_site.items())]
    sites += [SiteView(site, 0, 0, reason) for site, (reason, _) in bans.items()
              if site not in by_site]
    total = sum(sum(counts.values()) for counts in jobs.values())
    done = sum(counts.get(JobStatus.DONE.value, 0) for counts in jobs.values())
    rate = rate_per_hour(store.done_times())
    left = (total - done) / rate * 3600 if rate and total > done else None
    return Overview(analysis.tree.name, backend.name,
                    datetime.now(UTC).isoformat(timespec="seconds"), tasks, sites, total, done,
                    rate, left)


def rate_per_hour(done_times: list[str]) -> float | None:
    """Jobs per hour over the last :data:`RATE_WINDOW` Done times (None: fewer than two, or
    all at one instant)."""
    last = done_times[-RATE_WINDOW:]
    if len(last) < 2:
        return None
    span = (datetime.fromisoformat(last[-1]) - datetime.fromisoformat(last[0])).total_seconds()
    return (len(last) - 1) / span * 3600 if span > 0 else None
