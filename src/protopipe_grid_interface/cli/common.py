"""What every command shares: error handling, backends, output, progress bars, confirmation."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..backends.base import Backend
from ..exceptions import INTERRUPTED, DataError, InputError, PipelineError
from ..software import default_payload_env
from ..workflow.session import BackendChoice, Session, backend_for
from ..workflow.session import attach as attach_backend
from ..workflow.session import payload_env as session_payload_env
from ..workflow.session import session as open_session

if TYPE_CHECKING:
    from ..workflow.analysis import Analysis
    from ..workflow.collect import Tracker

#: width of output that is not a terminal (a pipe, a log): lines are never cut, and a table is
#: as wide as its content, so paths and LFNs stay whole for grep and for people
PIPE_WIDTH = 10_000


def make_console(stderr: bool) -> Console:
    """Rich output on a terminal; elsewhere the same text, never wrapped."""
    terminal = Console(stderr=stderr).is_terminal
    return Console(stderr=stderr, highlight=False, soft_wrap=True,
                   width=None if terminal else PIPE_WIDTH)


console, errors = make_console(stderr=False), make_console(stderr=True)

BACKENDS = ("local", "dirac")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, naming the command."""

    def error(self, message: str) -> NoReturn:
        errors.print(f"{self.prog}: error: {message}", markup=False, soft_wrap=True)
        sys.exit(2)


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str) -> int:
    """Call ``func``; turn every failure into one line on stderr and an exit code."""
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s" if debug
                        else "%(levelname)s: %(message)s")
    try:
        return func(args)
    except PipelineError as exc:  # a message of several lines: one problem a line
        for line in str(exc).splitlines():
            errors.print(f"{prog}: error: {line}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        errors.print(f"{prog}: interrupted", markup=False)
        return INTERRUPTED
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        errors.print(f"{prog}: error: {where}{exc.strerror or exc}", markup=False, soft_wrap=True)
        return 1
    except Exception as exc:  # the one place that catches everything: no traceback for users
        if getattr(args, "debug", False):
            traceback.print_exc()
        errors.print(f"{prog}: internal error: {type(exc).__name__}: {exc} (rerun with --debug "
                     "for details)", markup=False, soft_wrap=True)
        return 1


def add_backend_choice(parser: argparse._ActionsContainer,
                       what: str = "where jobs run and files live") -> None:
    """``--backend``; without it, ``$PGI_BACKEND``, else local (see :func:`backend_name`)."""
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help=f"{what} (default: $PGI_BACKEND, else local)")


def backend_name(args: argparse.Namespace) -> str:
    """The backend a command uses: ``--backend``, else ``$PGI_BACKEND``, else local."""
    from ..settings import environment

    return getattr(args, "backend", None) or environment().backend


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("backend")
    add_backend_choice(group)
    group.add_argument("--local-root", type=Path, default=None,
                       help="local backend folder (default: $PGI_LOCAL_ROOT or "
                            "~/.local/share/protopipe-grid-interface/local-grid)")
    group.add_argument("--payload-env", type=Path, default=None,
                       help="Python environment with protopipe, for the local backend")


def backend_choice(args: argparse.Namespace) -> BackendChoice:
    """``--backend``, ``--local-root`` and ``--payload-env``, where the command has them."""
    return BackendChoice(getattr(args, "backend", None), getattr(args, "local_root", None),
                         getattr(args, "payload_env", None))


def make_backend(args: argparse.Namespace, analysis: Analysis | None = None) -> Backend:
    """The backend of the command (see :func:`workflow.session.backend_for`)."""
    return backend_for(backend_choice(args), analysis)


def attach(args: argparse.Namespace, analysis: Analysis) -> tuple[Analysis, Backend]:
    """The analysis' backend, and the analysis with the backend's grid home."""
    return attach_backend(analysis, backend_choice(args))


def session(args: argparse.Namespace) -> AbstractContextManager[Session]:
    """The analysis of ``--metadata``, its backend and state database, the command recorded."""
    return open_session(args.metadata, backend_choice(args))


def payload_env(args: argparse.Namespace, analysis: Analysis) -> Path:
    """Where protopipe runs on this machine: ``--payload-env``, else grid.yaml's
    ``Software.local_env``, else the installed payload environment."""
    return session_payload_env(backend_choice(args), analysis)


def templates(env: Path | None) -> Path:
    """protopipe's example configurations (the analysis templates) in ``env``."""
    from ..software import check_payload_env, example_configs

    return example_configs(check_payload_env(env or default_payload_env()))


def get_files(backend: Backend, path: str, outdir: Path, workers: int) -> int:
    """Download the file ``path`` or the files of the folder ``path``, verified."""
    from ..workflow.collect import download
    from ..workflow.files import remote_files

    remote = remote_files(backend, path)
    with tracker() as progress:
        report = download(backend, remote, outdir, workers=workers,
                          progress=progress("downloading", len(remote)))
    print_lines([f"{len(report.fetched)} fetched, {len(report.present)} already present, "
                 f"{len(report.failed)} failed"])
    if report.failed:
        raise DataError(f"{len(report.failed)} file(s) not downloaded: "
                        f"{next(iter(report.failed))}")
    return 0


def remove_files(backend: Backend, path: str, yes: bool, dry_run: bool) -> int:
    """Show the file ``path`` or the files of the folder ``path``, ask, remove them."""
    from ..workflow.files import remote_files, remove

    remote = remote_files(backend, path)
    print_lines([f"{f.lfn} ({f.size} B, {','.join(f.replicas)})" for f in remote])
    if dry_run:
        return 0
    if not confirm(f"remove these {len(remote)} file(s) and all their replicas?", yes):
        return 1
    remove(backend, remote)
    print_lines([f"{len(remote)} file(s) removed"])
    return 0


def key_values(items: Sequence[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a mapping; anything else is a one-line error."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{option} {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def print_lines(lines: Sequence[str]) -> None:
    """Plain lines on standard output, never wrapped (paths and LFNs stay whole)."""
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask before destroying anything; ``--yes`` answers for the user; no terminal means no."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        errors.print(f"{question} [y/N] refused: no terminal to ask on (use --yes)",
                     markup=False)
        return False
    answer = console.input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


@contextmanager
def tracker() -> Iterator[Tracker]:
    """Rich progress bars on a terminal, one per task the work starts; silence elsewhere.
    Yields ``start(what, total)``, which returns ``advance(n)``."""
    if not console.is_terminal:
        yield lambda what, total: lambda n: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                  transient=False) as bars:

        def start(what: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(what, total=total)
            return lambda n: bars.advance(task, n)

        yield start


def version() -> str:
    """This package's version (read when asked: see the package's ``__getattr__``)."""
    from .. import __version__

    return __version__


def version_text(verbose: bool) -> str:
    from ..software import COMPATIBILITY

    lines = [f"protopipe-grid-interface {version()}"]
    if verbose:
        lines.append("protopipe compatibility:")
        lines += [f"  protopipe {pp}: {iface}" for pp, iface in COMPATIBILITY.items()]
    return "\n".join(lines)


def comma_list(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: str) -> float:
    """Seconds of a duration written ``90``, ``90s``, ``30m``, ``24h`` or ``2d``."""
    text = value.strip().lower()
    unit = DURATION_UNITS.get(text[-1:], 0)
    try:
        seconds = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        seconds = -1
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90s, 30m or 24h, got {value!r}")
    return seconds
