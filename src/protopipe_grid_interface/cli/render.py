"""Tables people read: plans, job states, summaries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from rich.table import Table

from ..models import JobSpec
from ..store import JobRecord
from .common import console

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
