"""``protopipe-grid status`` and ``protopipe-grid report``: the adapters (parse, call the
workflow, render)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..text import duration_text, size_text
from ..workflow import engine, overview
from ..workflow.overview import Overview
from .common import console, session
from .run import STATE_STYLE


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--poll", type=float, default=30.0, metavar="SECONDS",
                   help="with --watch: seconds between refreshes (default: 30)")
    for flag, text in (("json", "machine-readable output"),
                       ("watch", "refresh the screen until the analysis is finished (or Ctrl-C)"),
                       ("no-refresh", "do not ask the backend for the active jobs' states")):
        p.add_argument(f"--{flag}", action="store_true", help=text)
    p.set_defaults(func=status)


def status(args: argparse.Namespace) -> int:
    with session(args) as s:
        workflow = engine.open_workflow(s.analysis)

        def look() -> Overview:
            return overview.build(s.analysis, s.store, s.backend, workflow,
                                  refresh=not args.no_refresh)

        if args.json:
            print(json.dumps(look().to_json(), indent=1))
        elif args.watch:
            watch(look, args.poll)
        else:
            console.print(screen(look()))
    return 0


def watch(look: Callable[[], Overview], poll: float) -> None:
    """The screen, redrawn in place after each refresh, until the analysis is finished or
    Ctrl-C."""
    view = look()
    with Live(screen(view), console=console, auto_refresh=False) as live:
        while not view.finished:
            time.sleep(poll)
            view = look()
            live.update(screen(view), refresh=True)


def screen(view: Overview) -> Group:
    """The status screen: the tasks, the sites, and one line of progress."""
    parts: list[Table | Text] = [tasks_table(view)]
    if view.sites:
        parts.append(sites_table(view))
    parts.append(progress_line(view))
    return Group(*parts)


def tasks_table(view: Overview) -> Table:
    table = Table(title=f"analysis {view.analysis} ({view.backend} backend, {view.generated})")
    for column in ("step", "particle", "state", "jobs", "failures", "outputs", "next"):
        table.add_column(column, overflow="fold")
    for task in view.tasks:
        jobs = ", ".join(f"{n} {state}" for state, n in sorted(task.jobs.items()))
        failures = ", ".join(f"{n} {kind}" for kind, n in sorted(task.failures.items()))
        outputs = ""
        if task.outputs:
            outputs = f"{task.outputs} in catalog ({size_text(task.output_bytes)})"
        if task.downloaded:
            outputs = f"{task.downloaded} here ({size_text(task.downloaded_bytes)})"
        table.add_row(task.step, task.particle, Text(task.state, STATE_STYLE[task.state]),
                      jobs, Text(failures, "red" if failures else ""), outputs,
                      "" if task.state == "finished" else task.next)
    return table


def sites_table(view: Overview) -> Table:
    table = Table(title="sites")
    for column in ("site", "done", "failed", "success", "ban"):
        table.add_column(column)
    for site in view.sites:
        rate = site.success_rate
        table.add_row(site.site, str(site.done), str(site.failed),
                      "" if rate is None else f"{rate:.0%}", Text(site.banned, "red"))
    return table


def progress_line(view: Overview) -> Text:
    if view.finished:
        return Text(f"finished: {view.jobs_done} grid job(s) done", "green")
    line = f"{view.jobs_done} of {view.jobs_total} grid job(s) done"
    if view.rate_per_hour:
        line += f", {view.rate_per_hour:.3g} per hour (the last {overview.RATE_WINDOW} at most)"
    if view.seconds_left is not None:
        line += f", about {duration_text(view.seconds_left)} left"
    return Text(line)


def write_report(args: argparse.Namespace) -> int:
    from .. import report  # matplotlib: imported when a report is written

    with session(args) as s:
        path = report.write(s.analysis, s.store, s.backend, args.output)
    console.print(f"report: {path}")
    return 0
