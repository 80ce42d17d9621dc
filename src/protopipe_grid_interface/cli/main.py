"""``protopipe-grid``: one command, noun-verb subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..models import Particle, Stage
from . import commands
from . import run as run_command
from . import status as status_command
from .common import ArgumentParser, add_backend_options, duration, positive_int, run, version_text
from .doctor import register as register_doctor

Handler = Callable[[argparse.Namespace], int]


def group(nouns: argparse._SubParsersAction[ArgumentParser], name: str, text: str
          ) -> argparse._SubParsersAction[ArgumentParser]:
    """A noun whose verbs are subcommands (``jobs submit``)."""
    return nouns.add_parser(name, help=text).add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=ArgumentParser)


def verb(parent: argparse._SubParsersAction[ArgumentParser], name: str, text: str,
         func: Handler, analysis: bool = True, stage: bool | None = None,
         backend: bool = True) -> ArgumentParser:
    """A subcommand running ``func``, with ``--metadata`` (``analysis``), ``--stage`` and
    ``--particle`` (``stage``: required or not; None: no such option) and the backend
    options."""
    p = parent.add_parser(name, help=text)
    if analysis:
        p.add_argument("--metadata", "-m", type=Path, required=True,
                       help="the analysis' analysis_metadata.yaml (or its folder)")
    if stage is not None:
        p.add_argument("--stage", type=Stage, choices=list(Stage), required=stage,
                       help="grid stage")
        p.add_argument("--particle", type=Particle, choices=list(Particle), action="append",
                       help="particle (repeatable; default: all of the stage)")
    if backend:
        add_backend_options(p)
    p.set_defaults(func=func)
    return p


def flags(p: ArgumentParser, **texts: str) -> None:
    """On/off options: ``flags(p, dry_run="...")`` adds ``--dry-run``."""
    for name, text in texts.items():
        p.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=text)


def wait_options(p: ArgumentParser) -> None:
    p.add_argument("--stuck-after", type=duration, default=duration("24h"), metavar="DURATION",
                   help="stop waiting for a job whose state has not changed for this long "
                        "while not running (default: 24h; unconfirmed jobs: 5m at most)")
    p.add_argument("--status-every", type=duration, default=duration("1m"), metavar="DURATION",
                   help="when the output is not a terminal, print a status line this often "
                        "(default: 1m)")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="protopipe-grid", description=__doc__)
    flags(parser, version="print the version and exit",
          verbose="with --version: also the protopipe compatibility table",
          debug="log details; tracebacks on bugs")
    nouns = parser.add_subparsers(dest="noun", metavar="COMMAND", parser_class=ArgumentParser)
    register_doctor(nouns)

    analysis = group(nouns, "analysis", "create an analysis")
    p = verb(analysis, "create", "analysis tree, metadata and filled config templates",
             commands.analysis_create, analysis=False)
    p.add_argument("name", help="analysis name (letters, digits, _ . + -)")
    p.add_argument("--output-path", type=Path, default=Path.home(),
                   help="where shared_folder/ is (default: your home)")
    p.add_argument("--grid-home", default="", help="your LFN home, /vo.cta.in2p3.fr/user/x/xyz")
    p.add_argument("--path-from-home", default="", help="analyses folder below the grid home")
    p.add_argument("--pipeline", choices=["protopipe", "ctapipe"], default="protopipe",
                   help="the payload: protopipe 0.5, or ctapipe 0.32's tools (default: protopipe)")
    p.add_argument("--contact", nargs=3, metavar=("NAME", "EMAIL", "ORGANISATION"),
                   help="ctapipe: who the configurations name as their contact")
    flags(p, overwrite="fill an existing analysis again")

    dataset = group(nouns, "dataset", "dataset lists")
    p = verb(dataset, "split", "split list files by fractions into stage lists",
             commands.dataset_split, backend=False)
    for particle, default in (("gammas", [10, 10, 80]), ("protons", [40, 60]),
                              ("electrons", [100])):
        p.add_argument(f"--{particle}", type=Path, help=f"list file of {particle}")
        p.add_argument(f"--split-{particle}", type=int, nargs="+", default=default,
                       help=f"percentages (default: {' '.join(map(str, default))})")
    p.add_argument("--seed", type=int, help="shuffle first, with this seed")
    flags(p, overwrite="replace stage lists that exist with a different content")
    p = verb(dataset, "split-catalog", "stage lists from the catalog's split metadata "
             "(train_en, train_cl, test: CTADIRAC's cta-prod-split-dataset)",
             commands.dataset_split_catalog)
    p.add_argument("--path", required=True, help="catalog folder to search below")
    p.add_argument("--query", action="append", default=[], metavar="KEY=VALUE",
                   help="more catalog metadata to match (repeatable), e.g. MCCampaign=PROD6")
    flags(p, overwrite="replace stage lists that exist with a different content")
    p = verb(dataset, "dump", "write the LFNs of a catalog folder or metadata query to a list "
             "file (with replica sites beside it)", commands.dataset_dump, analysis=False)
    p.add_argument("--path", required=True, help="catalog folder to search below")
    p.add_argument("--query", action="append", default=[], metavar="KEY=VALUE",
                   help="catalog metadata to match (repeatable)")
    p.add_argument("-o", "--output", type=Path, required=True, help="list file to write")
    p = verb(dataset, "register", "register local files as a production (local backend), and "
             "write their list file", commands.dataset_register, analysis=False)
    p.add_argument("files", nargs="+", type=Path, help="files to register")
    p.add_argument("--lfn-dir", required=True, help="catalog folder to put them in")
    p.add_argument("--se", default="LOCAL-SE", help="storage element")
    p.add_argument("--list", type=Path, required=True, help="list file to write")
    flags(p, dry_run="show the LFNs, register nothing")

    jobs = group(nouns, "jobs", "submit and follow grid jobs")
    p = verb(jobs, "submit", "plan and submit a stage (never twice the same job)",
             commands.jobs_submit, stage=True)
    p.add_argument("--list", type=Path, help="list file (default: from grid.yaml; needs a "
                   "single --particle)")
    p.add_argument("--files-per-job", type=positive_int, help="override GRID.n_file_per_job")
    p.add_argument("--max-events", type=positive_int, help="events per file")
    flags(p, dry_run="show the whole plan, submit nothing",
          wait="wait until every job is final",
          force="submit even if the grid proxy may expire before the submission ends",
          replan="plan stale jobs again (their inputs changed): kill them, remove their "
          "outputs from the catalog, submit them anew",
          keep_stale="keep stale jobs as they are, and accept their inputs' change",
          yes="do not ask before --replan removes outputs",
          no_canary="submit the stage without running one of its jobs first (GRID.canary)")
    wait_options(p)
    p = verb(jobs, "status", "job states by stage and particle", commands.jobs_status,
             stage=False)
    flags(p, json="machine-readable output", no_refresh="do not ask the backend")
    p = verb(jobs, "wait", "wait until every job of a stage is final", commands.jobs_wait,
             stage=False)
    p.add_argument("--timeout", type=duration, metavar="DURATION",
                   help="stop waiting after this long (e.g. 600, 10m)")
    wait_options(p)
    p = verb(jobs, "resubmit", "submit again the Failed and Killed jobs",
             commands.jobs_resubmit, stage=False)
    flags(p, dry_run="list them, submit nothing")
    for name, what, func in (("kill", "the active jobs", commands.jobs_kill),
                             ("delete", "the jobs (active ones killed)", commands.jobs_delete)):
        p = verb(jobs, name, f"{name} {what} of a selection", func, stage=False)
        flags(p, yes="do not ask for confirmation", dry_run=f"list them, {name} nothing")
    p = verb(jobs, "log", "a job's output (by name or backend id)", commands.jobs_log)
    p.add_argument("job", help="job name or backend id")
    p = verb(jobs, "input-lfns", "the input LFNs of a job (by backend id)",
             commands.jobs_input_lfns, analysis=False)
    p.add_argument("job_id", type=int)
    p.add_argument("--output-file", type=Path, help="write them here (one per line)")

    data = group(nouns, "data", "download and merge outputs")
    p = verb(data, "download", "verified, resumable download of a stage's outputs (and merge)",
             commands.data_download, stage=True)
    p.add_argument("--workers", type=positive_int, default=4, help="parallel transfers")
    flags(p, overwrite="replace merged files", no_merge="download only",
          dry_run="list files, fetch nothing")
    p = verb(data, "merge", "merge downloaded outputs", commands.data_merge, stage=True,
             backend=False)
    flags(p, overwrite="replace merged files")
    p = verb(data, "verify", "check downloaded files against the catalog: missing, wrong size, "
             "wrong adler32, not in the catalog", commands.data_verify, analysis=False,
             stage=False)
    p.add_argument("--metadata", "-m", type=Path, help="the analysis' analysis_metadata.yaml")
    p.add_argument("--local-dir", type=Path, help="a download folder (instead of --stage)")
    p.add_argument("--lfn-path", help="with --local-dir: the catalog folder (and its "
                   "subfolders, as files get) or file it was downloaded from")
    p.add_argument("--workers", type=positive_int, default=4, help="files checked in parallel")
    flags(p, json="machine-readable output")

    models = group(nouns, "models", "build and upload models")
    p = verb(models, "build", "run protopipe-MODEL on the merged training data",
             commands.models_build, backend=False)
    p.add_argument("--type", choices=["regressor", "classifier"], required=True)
    p.add_argument("--payload-env", type=Path, help="Python environment with protopipe")
    p = verb(models, "upload", "upload models + config and replicate them",
             commands.models_upload)
    p.add_argument("--type", choices=["regressor", "classifier"], required=True)
    p.add_argument("--ses", help="comma-separated SEs (default: GRID.upload_sites on the "
                   "backend, or all of the backend's)")
    flags(p, overwrite="replace different files", dry_run="list what would be uploaded")
    p = verb(nouns, "performance", "IRFs with protopipe-DL3-EventDisplay", commands.performance,
             backend=False)
    p.add_argument("--payload-env", type=Path, help="Python environment with protopipe")

    files = group(nouns, "files", "catalog files")
    p = verb(files, "list", "files in a catalog folder", commands.files_list, analysis=False)
    p.add_argument("path")
    p = verb(files, "put", "upload a file", commands.files_put, analysis=False)
    p.add_argument("path", type=Path)
    p.add_argument("lfn")
    p.add_argument("--se", help="storage element (default: the backend's first)")
    flags(p, overwrite="replace a different file", dry_run="say what would happen")
    p = verb(files, "get", "download files or a folder, verified", commands.files_get,
             analysis=False)
    p.add_argument("path", help="LFN of a file or a catalog folder")
    p.add_argument("--outdir", type=Path, default=Path("."))
    p.add_argument("--workers", type=positive_int, default=4)
    p = verb(files, "remove", "remove files or a whole catalog folder", commands.files_remove,
             analysis=False)
    p.add_argument("path", help="LFN of a file or a catalog folder")
    flags(p, yes="do not ask for confirmation", dry_run="list them, remove nothing")
    p = verb(files, "filter-replicas", "keep the LFNs with a replica on an SE",
             commands.files_filter_replicas, analysis=False)
    p.add_argument("--input-list", type=Path, required=True)
    p.add_argument("--se", required=True)
    p.add_argument("--outfile", type=Path, default=Path("outfile.list"))

    p = verb(nouns, "run", "the whole analysis, step after step of its workflow.yaml; "
             "failures handled by their cause", run_command.run)
    run_command.register(p)

    p = verb(nouns, "status", "where the analysis stands: each step's jobs, failures by class, "
             "sites, outputs, what run does next, the time left", status_command.status)
    status_command.register(p)
    p = verb(nouns, "report", "write the analysis' report: one HTML file, plots included, "
             "that opens offline", status_command.write_report)
    p.add_argument("--output", "-o", type=Path, help="where (default: report.html in the "
                   "analysis folder)")

    p = verb(nouns, "demo", "a whole analysis on the local backend, real protopipe (or ctapipe)",
             commands.demo, analysis=False, backend=False)
    p.add_argument("--workdir", type=Path, default=Path("demo-analysis"))
    p.add_argument("--payload-env", type=Path)
    p.add_argument("--data", type=Path, help="folder with the sim_telarray files")
    p.add_argument("--backend", choices=["local", "dirac"], default="local",
                   help="dirac: a DIRAC test site whose workers are this machine")
    p.add_argument("--pipeline", choices=["protopipe", "ctapipe"], default="protopipe",
                   help="ctapipe: the same analysis with ctapipe 0.32's tools")
    flags(p, fresh="start again from nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_text(args.verbose))
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run(args.func, args, f"protopipe-grid {args.noun} {getattr(args, 'verb', '')}".strip())


if __name__ == "__main__":
    sys.exit(main())
