"""``protopipe-grid doctor`` and ``protopipe-grid dirac configure``: parse, call, render."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table
from rich.text import Text

from .common import ArgumentParser, add_backend_choice, backend_name, console

VERDICT_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return number


def register(nouns: argparse._SubParsersAction[ArgumentParser]) -> None:
    """Add ``doctor`` and ``dirac configure`` to the ``protopipe-grid`` subcommands."""
    from ..setup import DEFAULT_NEEDED_HOURS, DEFAULT_TIMEOUT  # light: no proxy reading

    p = nouns.add_parser("doctor", help="check this machine's set-up: protopipe, and for the "
                         "dirac backend VOMS variables, proxy, dirac.cfg, servers, clock")
    add_backend_choice(p, "the backend to check for: dirac checks the grid set-up too")
    p.add_argument("--needed-hours", type=positive_float, default=DEFAULT_NEEDED_HOURS,
                   help="hours the planned submission needs the proxy for (default: "
                        f"{DEFAULT_NEEDED_HOURS:g})")
    p.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT,
                   help=f"seconds to reach each configuration server (default: "
                        f"{DEFAULT_TIMEOUT:g})")
    p.add_argument("--payload-env", type=Path, default=None,
                   help="Python environment with protopipe (default: the installed one)")
    p.add_argument("--settings", type=Path, default=None,
                   help="DIRAC settings expected (default: CTA production, package data)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=doctor)

    dirac = nouns.add_parser("dirac", help="the DIRAC client's set-up").add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=ArgumentParser)
    p = dirac.add_parser("configure", help="write or repair dirac.cfg with the CTA production "
                         "settings, keeping every other setting (backup + diff)")
    p.add_argument("--file", type=Path, default=None,
                   help="the dirac.cfg to write (default: the one DIRAC reads first, else "
                        "<DIRAC root>/etc/dirac.cfg)")
    p.add_argument("--settings", type=Path, default=None,
                   help="settings to write: YAML of option paths, or a .cfg file (default: "
                        "CTA production, package data)")
    p.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    p.set_defaults(func=dirac_configure)


def doctor(args: argparse.Namespace) -> int:
    from ..setup.checks import DoctorOptions, run_checks
    from ..setup.diraccfg import load_settings

    options = DoctorOptions(grid=backend_name(args) == "dirac", needed_hours=args.needed_hours,
                            timeout=args.timeout,
                            payload_env=args.payload_env,
                            settings=load_settings(args.settings))
    report = run_checks(options=options)
    if args.json:
        print(report.to_json())
        return report.exit_code
    table = Table(title="protopipe-grid doctor", show_lines=True, expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("what was seen", overflow="fold", ratio=1)
    table.add_column("fix", overflow="fold", ratio=1)
    for check in report.checks:
        table.add_row(Text(check.name), Text(check.verdict.value,
                                             style=VERDICT_STYLE[check.verdict.value]),
                      Text(check.detail), Text(check.fix))
    console.print(table)
    counts = {v: sum(1 for c in report.checks if c.verdict.value == v) for v in VERDICT_STYLE}
    console.print(Text(", ".join(f"{n} {v}" for v, n in counts.items()),
                       style=VERDICT_STYLE[report.verdict.value]))
    return report.exit_code


def dirac_configure(args: argparse.Namespace) -> int:
    from ..setup.dirac_client import default_target
    from ..setup.diraccfg import load_settings, plan_configure, write_configure
    from ..setup.machine import Machine

    settings = load_settings(args.settings)
    machine = Machine.current()
    target = args.file or default_target(machine.env, machine.home)
    plan = plan_configure(target, settings)
    if not plan.changed:
        console.print(f"{target} already has these settings: nothing to do", markup=False,
                      soft_wrap=True)
        return 0
    for line in plan.diff.splitlines():
        style = ("bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+")
                 else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        console.print(Text(line, style=style), soft_wrap=True)
    if args.dry_run:
        console.print("dry run: nothing written", markup=False)
        return 0
    backup = write_configure(plan)
    console.print(f"wrote {target}" + (f" (the old file is {backup})" if backup else ""),
                  markup=False, soft_wrap=True)
    return 0
