"""Tables people read: plans, job states, summaries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.table import Table

from ..models import JobSpec, JobStatus
from ..store import JobRecord
from ..workflow.collect import CollectReport, MergeResult
from ..workflow.split import StageList
from ..workflow.track import UNCONFIRMED_LIMIT, Stuck
from ..workflow.verify import FileCheck, Verdict, VerifyReport
from .common import console

#: rows of the table of bad files shown on a terminal (--json has them all)
MAX_BAD_ROWS = 50
VERDICT_STYLE = {Verdict.OK: "green", Verdict.MISSING: "red", Verdict.WRONG_SIZE: "red",
                 Verdict.WRONG_CHECKSUM: "red", Verdict.EXTRA: "yellow"}
STATUS_STYLE = {"Done": "green", "Failed": "red", "Killed": "red", "Running": "cyan",
                "Waiting": "yellow", "Planned": "dim"}


def plan_table(specs: Sequence[JobSpec], backend: str) -> None:
    """The whole plan: every job, its files, its output path."""
    table = Table(title=f"plan: {len(specs)} job(s) on the {backend} backend", show_lines=False)
    for column in ("job", "files", "first input", "output LFN"):
        table.add_column(column, overflow="fold")
    for spec in specs:
        table.add_row(spec.name, str(len(spec.input_lfns)), spec.input_lfns[0], spec.output_lfn)
    console.print(table)
    if specs:
        extra = sorted({lfn for spec in specs for lfn in spec.input_data})
        console.print(f"steps per job: up to {max(len(s.steps) for s in specs)}; input data "
                      f"besides simulations: {', '.join(extra) or 'none'}; output SE: "
                      f"{specs[0].output_se}; CPU time: {specs[0].cpu_time} s", markup=False,
                      soft_wrap=True)


def status_table(records: Sequence[JobRecord]) -> None:
    """Jobs per stage, particle and state."""
    counts = Counter((r.stage.value, r.particle.value, r.status.value) for r in records)
    states = sorted({state for _, _, state in counts})
    table = Table(title="jobs by stage, particle and state")
    table.add_column("stage")
    table.add_column("particle")
    for state in states:
        table.add_column(state, justify="right", style=STATUS_STYLE.get(state))
    table.add_column("total", justify="right")
    for stage, particle in sorted({(s, p) for s, p, _ in counts}):
        row = [counts.get((stage, particle, state), 0) for state in states]
        table.add_row(stage, particle, *[str(n) if n else "" for n in row], str(sum(row)))
    console.print(table)


def collect_lines(reports: Sequence[CollectReport]) -> list[str]:
    """Per particle: outputs, what was fetched, what failed, the merge."""
    lines = []
    for r in reports:
        waiting = f"; {plural(r.unfinished, 'job')} not finished yet" if r.unfinished else ""
        lines.append(f"{r.particle.value}: {len(r.download.fetched)} fetched, "
                     f"{len(r.download.present)} already present, {len(r.download.failed)} "
                     f"failed -> {r.outdir}{waiting}")
        lines += [f"  FAILED {lfn}: {problem}" for lfn, problem in r.download.failed.items()]
        lines += merge_lines([r.merged] if r.merged else [])
    return lines


def merge_lines(results: Sequence[MergeResult]) -> list[str]:
    """Each merged file, its inputs and simulated showers, and what the merge noted."""
    lines = []
    for m in results:
        done = "up to date" if m.up_to_date else "merged"
        lines.append(f"{m.path}: {m.files} of {m.inputs} file(s) {done}, {m.showers} simulated "
                     "showers")
        lines += [f"  note: {note}" for note in m.notes]
    return lines


def plural(count: int, noun: str) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def split_lines(results: Sequence[tuple[StageList, bool]]) -> list[str]:
    """One line per list a split wrote: its path, its size, whether grid.yaml names it."""
    return [f"{stage_list.path}: {len(stage_list.lfns)} file(s)"
            + (" (set in grid.yaml)" if named else "") for stage_list, named in results]


def status_line(records: Sequence[JobRecord]) -> str:
    """One line for logs: the time, then how many jobs are in each state."""
    counts = Counter(r.status for r in records)
    states = ", ".join(f"{counts[s]} {s.value}" for s in JobStatus if counts[s])
    return f"{datetime.now().strftime('%H:%M:%S')} {len(records)} job(s): {states}"


def names_text(records: Sequence[JobRecord], shown: int = 5) -> str:
    """The first ``shown`` job names, and how many more."""
    names = ", ".join(r.name for r in records[:shown])
    return names + (f" and {len(records) - shown} more" if len(records) > shown else "")


def stuck_lines(cause: Stuck, records: Sequence[JobRecord], metadata: Path,
                stuck_after: float) -> list[str]:
    """One line per stage: which jobs cannot progress, and the command that moves them on."""
    lines = []
    for stage in sorted({r.stage for r in records}):
        mine = [r for r in records if r.stage == stage]
        states = ", ".join(sorted({f"{r.status.value} / {r.minor_status}".rstrip(" /")
                                   for r in mine}))
        submit = f"protopipe-grid jobs submit -m {metadata} --stage {stage.value}"
        if cause == Stuck.NOT_SUBMITTED:
            what, todo = "not submitted yet", f"submit them: {submit}"
        elif cause == Stuck.UNCONFIRMED:
            what = (f"created by an interrupted submission and never confirmed "
                    f"(for more than {minutes(min(stuck_after, UNCONFIRMED_LIMIT))})")
            todo = f"confirm them: {submit}"
        else:
            what = f"without a change of state for more than {minutes(stuck_after)}"
            todo = (f"look at them (protopipe-grid jobs status -m {metadata}), then kill and "
                    "resubmit them (jobs kill, jobs resubmit)")
        lines.append(f"{len(mine)} {stage.value} job(s) {what} ({states}): {names_text(mine)}; "
                     f"{todo}")
    return lines


def minutes(seconds: float) -> str:
    """A duration as people say it: 45 s, 5 min, 24 h."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def failures_table(records: Sequence[JobRecord], tails: dict[str, str]) -> None:
    """Failed jobs with their statuses and the end of their log."""
    table = Table(title="failed jobs")
    for column in ("job", "id", "minor status", "application status", "log tail"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(r.name, str(r.backend_id), r.minor_status, r.application_status,
                      tails.get(r.name, ""))
    console.print(table)


def records_json(records: Sequence[JobRecord]) -> str:
    return json.dumps([{
        "name": r.name, "stage": r.stage.value, "particle": r.particle.value,
        "backend": r.backend, "backend_id": r.backend_id, "status": r.status.value,
        "minor_status": r.minor_status, "application_status": r.application_status,
        "site": r.site, "attempts": r.attempts, "output_lfn": r.spec.output_lfn,
        "output_size": r.output_size, "output_checksum": r.output_checksum,
    } for r in records], indent=2)


def verify_tables(reports: Sequence[VerifyReport]) -> None:
    """Verdicts per checked folder, then every bad or extra file (the first MAX_BAD_ROWS)."""
    table = Table(title="downloaded files against the catalog")
    table.add_column("set")
    table.add_column("folder", overflow="fold")
    table.add_column("in catalog", justify="right")
    for verdict in Verdict:
        table.add_column(verdict.value, justify="right", style=VERDICT_STYLE[verdict])
    for report in reports:
        counts = report.counts
        table.add_row(report.label, str(report.folder), str(report.catalogued),
                      *[str(counts[v]) if counts[v] else "" for v in Verdict])
    console.print(table)
    problems = [(report.label, check) for report in reports
                for check in report.bad + report.extra]
    if not problems:
        return
    table = Table(title="files that are not ok")
    for column in ("set", "file", "state", "expected", "found"):
        table.add_column(column, overflow="fold")
    for label, check in problems[:MAX_BAD_ROWS]:
        table.add_row(label, check.path.name, check.verdict.value, expected_text(check),
                      found_text(check), style=VERDICT_STYLE[check.verdict])
    console.print(table)
    if len(problems) > MAX_BAD_ROWS:
        console.print(f"... and {len(problems) - MAX_BAD_ROWS} more (--json lists them all)",
                      markup=False)


def expected_text(check: FileCheck) -> str:
    if check.lfn is None:
        return ""
    return f"{check.expected_size} B, adler32 {check.expected_checksum}"


def found_text(check: FileCheck) -> str:
    if check.verdict == Verdict.MISSING:
        return "no file"
    found = f"{check.size} B"
    return f"{found}, adler32 {check.checksum}" if check.checksum else found


def verify_json(reports: Sequence[VerifyReport]) -> str:
    return json.dumps({
        "complete": all(r.complete for r in reports),
        "sets": [{
            "label": r.label, "folder": str(r.folder), "source": r.source,
            "catalogued": r.catalogued, "complete": r.complete,
            "counts": {verdict.value: n for verdict, n in r.counts.items()},
            "files": [{
                "path": str(c.path), "state": c.verdict.value, "lfn": c.lfn,
                "expected_size": c.expected_size, "size": c.size,
                "expected_adler32": c.expected_checksum, "adler32": c.checksum,
            } for c in r.checks],
        } for r in reports],
    }, indent=2)
