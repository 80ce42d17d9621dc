"""``protopipe-grid run``: the adapter (parse, call the engine, render what it did)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from ..workflow import engine
from ..workflow.engine import Event, Iteration, TaskState
from .common import console, payload_env, session

STYLE = {"info": "", "warning": "yellow", "error": "red"}
STATE_STYLE = {"finished": "green", "running": "cyan", "ready": "cyan", "waiting": "dim",
               "blocked": "red"}


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--until", metavar="STEP", help="stop after this step of workflow.yaml "
                   "(and the steps it needs)")
    p.add_argument("--poll", type=float, metavar="SECONDS",
                   help="with --watch: seconds between status checks (default: Run.poll_seconds "
                   "of grid.yaml)")
    p.add_argument("--unban", metavar="SITE", action="append", default=[],
                   help="lift the ban of a black-hole site (repeatable)")
    for flag, text in (("watch", "keep going until the analysis is finished or blocked"),
                       ("dry-run", "show what would be done next, and why; change nothing"),
                       ("restart-held", "kill and submit again the jobs held too long in a "
                        "state (Run.held_after), after a preview; with --yes"),
                       ("yes", "approve what removes outputs: planning stale jobs again, "
                        "restarting held jobs")):
        p.add_argument(f"--{flag}", action="store_true", help=text)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with session(args) as s:
        options = engine.RunOptions(payload_env(args, s.analysis), args.until, args.dry_run,
                                    args.yes, args.restart_held)
        shown: dict[str, str] = {}
        last = engine.run_analysis(s.analysis, s.store, s.backend, options, args.watch,
                                   args.poll, lambda it: show(it, shown), args.unban)
    for site in args.unban:
        console.print(f"ban of {site} lifted")
    if args.restart_held and last.held and not args.yes:
        console.print("nothing restarted: add --yes to kill and submit them again")
    if args.dry_run:
        for state in last.tasks:
            text = f"{state.task}: {state.state}" + (f": {state.detail}" if state.detail else "")
            console.print(Text(text, style=STATE_STYLE[state.state]), soft_wrap=True)
    else:
        task_table(last.tasks)
    engine.check_moving(last)
    if last.finished:
        console.print("[green]the analysis is finished[/green]")
    return 0


def show(it: Iteration, shown: dict[str, str]) -> None:
    """Print what an iteration did, and the tasks whose state changed since the last one."""
    for event in it.events:
        event_line(event)
    for state in it.tasks:
        text = f"{state.state} {state.detail}".strip()
        if state.state in ("running", "blocked") and shown.get(str(state.task)) != text:
            console.print(Text(f"{state.task}: {text}", style=STATE_STYLE[state.state]),
                          soft_wrap=True)
        shown[str(state.task)] = text


def event_line(event: Event) -> None:
    where = f"{event.task}: " if event.task else ""
    console.print(Text(f"{where}{event.message}", style=STYLE[event.level]), soft_wrap=True)


def task_table(tasks: Sequence[TaskState]) -> None:
    table = Table(title="workflow", show_lines=False)
    for column in ("step", "particle", "state", "detail"):
        table.add_column(column)
    for state in tasks:
        style = STATE_STYLE[state.state]
        table.add_row(state.task.step.name,
                      state.task.particle.value if state.task.particle else "",
                      Text(state.state, style=style), Text(state.detail))
    console.print(table)
