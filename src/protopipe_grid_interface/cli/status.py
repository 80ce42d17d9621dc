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

from ..workflow import engine, overview
from ..workflow.overview import Overview, counts_text
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
        failures = counts_text(task.failures)
        table.add_row(task.step, task.particle, Text(task.state, STATE_STYLE[task.state]),
                      counts_text(task.jobs), Text(failures, "red" if failures else ""),
                      task.outputs_text, "" if task.state == "finished" else task.next)
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
    return Text(view.progress, "green" if view.finished else "")


def write_report(args: argparse.Namespace) -> int:
    from .. import report  # matplotlib: imported when a report is written

    with session(args) as s:
        path = report.write(s.analysis, s.store, s.backend, args.output)
    console.print(f"report: {path}")
    return 0
